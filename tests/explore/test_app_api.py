"""The page through its API, as a browser drives it (``gradio_client`` against the app served on
a free local port): a question explored, a choice and a path drawn, a QA-file question picked,
runs loaded, the graph searched; bad inputs answer with a message, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gradio", reason="kelm explore needs gradio (the explore extra)")
pytest.importorskip("pyvis", reason="kelm explore needs pyvis (the explore extra)")
from gradio_client import Client  # noqa: E402

from kelm.explore import Explorer  # noqa: E402
from kelm.explore.app import launch  # noqa: E402


@pytest.fixture(scope="module")
def page_explorer(tiny: dict[str, Path]) -> Explorer:
    return Explorer(tiny["graph"], runs=[tiny["qagnn"], tiny["kagnet"]], qa_file=tiny["qa"])


@pytest.fixture(scope="module")
def served(page_explorer: Explorer) -> Iterator[Any]:
    app = launch(page_explorer, port=None, block=False)
    try:
        assert app.local_url.startswith("http://127.0.0.1:")  # this machine only by default
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def client(served: Any, tmp_path_factory: pytest.TempPathFactory) -> Client:
    downloads = tmp_path_factory.mktemp("gradio-client")
    return Client(
        served.local_url, verbose=False, download_files=str(downloads), analytics_enabled=False
    )


def explore(client: Client, question: str, choices: str, gold: str = "") -> tuple:
    return client.predict(question, choices, gold, api_name="/explore")


def test_explore_a_question(client: Client) -> None:
    status, linked, scores, which, path, graph, concepts, paths, attention = explore(
        client, "where does a dog live", "house\nsky\nocean", "A"
    )
    assert "gold **A**" in status and "qagnn (run-qagnn) picks" in status
    labelled = {seg["token"]: seg["class_or_confidence"] for seg in linked}
    assert labelled["dog"] == "dog" and labelled["house"] == "house"
    assert scores["headers"] == [
        "choice",
        "text",
        "gold",
        "qagnn (run-qagnn)",
        "kagnet (run-kagnet)",
    ]
    assert [row[:3] for row in scores["data"]] == [
        ["A", "house", "gold"],
        ["B", "sky", ""],
        ["C", "ocean", ""],
    ]
    assert sum(row[3].endswith("*") for row in scores["data"]) == 1  # one pick per run
    drawn = json.loads(graph)
    assert {n["label"] for n in drawn["nodes"]} >= {"dog"}
    colours = {n["label"]: n["color"] for n in drawn["nodes"]}
    assert colours["dog"] == "#4C72B0"  # a question concept, coloured as `kelm show` does
    assert drawn["options"]["layout"]["hierarchical"]["enabled"]
    assert "question concepts dog" in concepts
    kinds = {row[2] for row in attention["data"]}
    assert kinds == {"node", "path"}  # QA-GNN nodes and KagNet paths


def test_a_choice_and_a_path_are_drawn(client: Client) -> None:
    explore(client, "where does a dog live", "house\nsky\nocean")
    # the first output, the status line, is left as it was (a Gradio update without value)
    _, graph, concepts, paths, path_choices = client.predict("A", api_name="/show_choice")
    assert path_choices["choices"] == [["1. dog --atlocation--> house", 0]]
    assert "**A. house**" in concepts
    assert paths["data"] == [[1, "dog --atlocation--> house", None]]
    drawn = json.loads(graph)
    hot = [e for e in drawn["edges"] if e["width"] > 1]
    assert [e["label"] for e in hot] == ["atlocation"]  # the top paths, highlighted
    _, graph, _, _ = client.predict("A", 0, api_name="/show_path")
    assert any(e["width"] > 1 for e in json.loads(graph)["edges"])
    _, graph, concepts, _, _ = client.predict("B", api_name="/show_choice")
    assert "**B. sky**" in concepts and "0 paths" in concepts


def test_bad_questions_show_a_message(client: Client) -> None:
    assert "type a question" in explore(client, "", "house\nsky")[0]
    assert "at least two choices" in explore(client, "where does a dog live", "house")[0]
    status = explore(client, "where does a dog live", "house\nsky", "E")[0]
    assert status.startswith("**error:**") and "one of the labels A, B" in status


def test_a_question_is_picked_from_the_qa_file(client: Client) -> None:
    status, question, choices, gold = client.predict(1, api_name="/pick")
    assert (status, question, choices, gold) == (
        "picked q1",
        "where does a fish live",
        "water\nstreet\nsky",
        "A",
    )


def test_runs_are_loaded_from_the_page(
    client: Client, tiny: dict[str, Path], page_explorer: Explorer
) -> None:
    status, listed = client.predict(str(tiny["root"] / "nowhere"), api_name="/load_run")
    assert status.startswith("**error:**") and "no such run directory" in status
    try:
        status, listed = client.predict(str(tiny["ernie"]), api_name="/load_run")
        assert status == "loaded ernie (run-ernie)" and "run-ernie" in listed
        *_, attention = explore(client, "where does a dog live", "house\nsky")
        assert ["ernie (run-ernie)", "A", "entities", "dog, house", None] in attention["data"]
    finally:  # the other tests of the page (in any order) see the two runs it started with
        del page_explorer.runs[2:]


def test_the_graph_browser(client: Client) -> None:
    status, found = client.predict("do", api_name="/search")
    assert status == "1 matching node"
    assert (found["choices"], found["value"]) == ([["dog", "dog"]], "dog")
    status, neighbours = client.predict("dog", api_name="/neighbours")
    assert status == "**dog**: 3 neighbours"
    assert neighbours["data"] == [
        ["atlocation", "house"],
        ["isa", "animal"],
        ["~desires", "person"],
    ]
    assert client.predict("unicorn", api_name="/search")[0] == "no node matches 'unicorn'"
    status, _ = client.predict("unicorn", api_name="/neighbours")
    assert "no node named 'unicorn'" in status


def test_link_api(client: Client) -> None:
    got = client.predict("a dog and a cat", "concept", api_name="/link")
    assert [s["text"] for s in got["spans"]] == ["dog", "cat"]
    assert client.predict("a dog", "words", api_name="/link") == {
        "error": "linking mode must be concept or entity, not 'words'"
    }


def test_link_tab_lists_each_spans_scored_candidates(client: Client) -> None:
    """The Link tab: spans highlighted, and each span's candidates with score, prior and
    context (entity mode); an empty text is a message in the page."""
    status, spans, table = client.predict("a dog and a cat", "entity", api_name="/link_page")
    assert status == "2 linked spans"
    assert {seg["token"] for seg in spans if seg["class_or_confidence"]} == {"dog", "cat"}
    assert table["headers"] == ["span", "rank", "node", "score", "prior", "context"]
    rows = {row[0]: row for row in table["data"]}
    assert rows["dog"][1:3] == [1, "dog"] and rows["cat"][2] == "cat"
    assert all(row[4] is not None for row in table["data"])  # entity mode scores the prior
    status, _, _ = client.predict("  ", "entity", api_name="/link_page")
    assert status == "**error:** type a text to link"
    got = client.predict("a dog", "entity", api_name="/link")
    assert set(got["spans"][0]["candidates"][0]) == {"node_id", "name", "score", "prior", "context"}
    # concept mode: kelm link --json gives names only, and so does the table
    _, _, table = client.predict("a dog", "concept", api_name="/link_page")
    assert table["data"] and all(row[3:] == [None, None, None] for row in table["data"])

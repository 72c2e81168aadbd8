"""The ``kelm_linker`` spaCy component and the ``kelm link`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from kelm.cli import app
from kelm.errors import KelmError
from kelm.graph.build import build_index
from kelm.graph.sources.base import BuildOptions
from kelm.linking.component import link_text, spans_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "linking"


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "graph"
    build_index([FIXTURES / "tiny.tsv"], out, BuildOptions(format="tsv"), progress=False)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def nlp(graph_dir, cache):
    pipeline = spacy.blank("en")
    pipeline.add_pipe("kelm_linker", config={"graph": str(graph_dir), "cache_dir": cache})
    return pipeline


def test_factory_is_an_entry_point():
    found = {ep.name: ep.value for ep in entry_points(group="spacy_factories")}
    assert found.get("kelm_linker") == "kelm.linking.component:make_kelm_linker"


def test_add_pipe_without_importing_kelm(graph_dir, cache):
    """spaCy finds the factory through the entry point alone."""
    code = (
        "import json, spacy\n"
        "nlp = spacy.blank('en')\n"
        f"nlp.add_pipe('kelm_linker', config={{'graph': {str(graph_dir)!r}, "
        f"'cache_dir': {cache!r}}})\n"
        "print(json.dumps(nlp('a big cat')._.kelm_names))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["big cat", "cat"]


def test_spans_and_extensions(nlp):
    doc = nlp("The Dogs ran to the bus stop.")
    spans = doc.spans["kelm"]
    assert [(s.text, s.label_) for s in spans] == [
        ("Dogs", "CONCEPT"),
        ("ran", "CONCEPT"),
        ("bus", "CONCEPT"),
        ("bus stop", "CONCEPT"),
        ("stop", "CONCEPT"),
    ]
    bus_stop = spans[3]
    assert bus_stop._.kelm_names == ["bus stop"]
    assert bus_stop._.kelm_name == "bus stop"
    assert bus_stop._.kelm_scores == [1.0]
    assert bus_stop._.kelm_node_id == bus_stop._.kelm_node_ids[0]
    assert doc._.kelm_names == ["bus", "bus stop", "dog", "run", "stop"]
    assert doc._.kelm_node_ids == sorted(doc._.kelm_node_ids)


def test_pipe_matches_call(nlp):
    texts = ["big cat", "", "lantern for sale", "nothing here"]
    piped = [d._.kelm_names for d in nlp.pipe(texts, batch_size=2)]
    assert piped == [nlp(t)._.kelm_names for t in texts]
    assert piped == [["big cat", "cat"], [], ["lantern", "sale"], []]


@pytest.mark.parametrize("text", ["", " ", "😀😀", "Ελληνικά и русский 中文", "\n\t"])
def test_texts_without_concepts(nlp, text):
    doc = nlp(text)
    assert list(doc.spans["kelm"]) == [] and doc._.kelm_node_ids == []


def test_offsets_survive_other_scripts(nlp):
    doc = nlp("😀 日本 a dog")
    (span,) = doc.spans["kelm"]
    assert doc.text[span.start_char : span.end_char] == "dog"


def test_hundred_thousand_characters(nlp):
    text = ("a dog " * 16_667)[:100_000]
    doc = nlp(text)
    assert len(doc.spans["kelm"]) == text.count("dog")


def test_entity_mode_labels(graph_dir, cache):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "kelm_linker",
        config={"graph": str(graph_dir), "mode": "entity", "cache_dir": cache, "span_key": "ents"},
    )
    doc = nlp("a big cat at the bus stop")
    assert [(s.text, s.label_) for s in doc.spans["ents"]] == [
        ("big cat", "ENTITY"),
        ("bus stop", "ENTITY"),
    ]
    assert doc._.kelm_names == ["big cat", "bus stop"]


def test_pipeline_lemmas(graph_dir, cache):
    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.add_pipe(
        "kelm_linker", config={"graph": str(graph_dir), "lemmas": "pipeline", "cache_dir": cache}
    )
    nlp.initialize()
    assert nlp("dogs were running")._.kelm_names == ["dog", "run"]


def test_missing_graph_config():
    with pytest.raises(KelmError, match="needs a graph"):
        spacy.blank("en").add_pipe("kelm_linker")


def test_missing_graph_directory(tmp_path):
    with pytest.raises(KelmError, match="does not exist"):
        spacy.blank("en").add_pipe("kelm_linker", config={"graph": str(tmp_path / "none")})


def test_unknown_format_version(graph_dir, tmp_path):
    import shutil

    copy = tmp_path / "graph"
    shutil.copytree(graph_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KelmError, match="format version 99"):
        spacy.blank("en").add_pipe("kelm_linker", config={"graph": str(copy)})


def test_spans_json_and_link_text(graph_dir, cache, nlp):
    assert spans_json(nlp("a big cat")) == link_text(graph_dir, "a big cat", cache_dir=cache)
    result = link_text(graph_dir, "a big cat", cache_dir=cache)
    assert result["text"] == "a big cat"
    assert [(s["start"], s["end"], s["text"], s["names"]) for s in result["spans"]] == [
        (2, 9, "big cat", ["big cat"]),
        (6, 9, "cat", ["cat"]),
    ]
    assert set(result["spans"][0]) == {"start", "end", "text", "node_ids", "names"}


# ---------------------------------------------------------------------------------- CLI
def test_cli_link_json(graph_dir, cache, monkeypatch):
    monkeypatch.setenv("KELM_CACHE", cache)
    result = CliRunner().invoke(
        app, ["link", "--graph", str(graph_dir), "--json", "Where is the lantern? 😀"]
    )
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert obj["text"] == "Where is the lantern? 😀"
    assert [s["names"] for s in obj["spans"]] == [["lantern"]]


def test_cli_link_text_lines(graph_dir, cache, monkeypatch):
    monkeypatch.setenv("KELM_CACHE", cache)
    result = CliRunner().invoke(app, ["link", "--graph", str(graph_dir), "bus stop"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "0\t3\tbus\tbus",
        "0\t8\tbus stop\tbus stop",
        "4\t8\tstop\tstop",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--graph", "/nonexistent/graph", "text"], "does not exist"),
        (["--mode", "fuzzy", "text"], "linker mode"),
        (["--mode", "entity", "--context-weight", "1.5", "text"], "context_weight"),
        (["--mode", "entity", "--context-weight", "nan", "text"], "context_weight"),
        (["--context-weight", "0.5", "text"], "entity mode only"),
        (["--mode", "entity", "--context-window", "0", "text"], "context_window"),
        (["--mode", "entity", "--encoder", "/no/such/model", "text"], "encoder folder"),
    ],
)
def test_cli_link_errors_are_one_line(graph_dir, args, message):
    if args[0] != "--graph":
        args = ["--graph", str(graph_dir), *args]
    result = CliRunner().invoke(app, ["link", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output


def test_cli_link_entity_mode_reads_the_context(wordnet_excerpt, cache, monkeypatch):
    """The issue's sentences with a tagger: "sat" is a verb (no Saturday), the bank is the
    river's, and the JSON keeps every candidate's scores."""
    monkeypatch.setenv("KELM_CACHE", cache)
    text = "We sat on the river bank. She poured water from the glass pitcher."
    args = ["link", "-g", str(wordnet_excerpt), "--mode", "entity", "--json", text]
    result = CliRunner().invoke(app, [*args, "--pipeline", "en_core_web_sm"])
    assert result.exit_code == 0, result.output
    spans = {s["text"]: s for s in json.loads(result.stdout)["spans"]}
    assert all(".v." in name for name in spans["sat"]["names"])
    assert spans["bank"]["names"][0] == "bank.n.01"
    assert spans["pitcher"]["names"][0] == "pitcher.n.02"  # the jug, not the baseball player
    assert set(spans["bank"]["candidates"][0]) == {"node_id", "name", "score", "prior", "context"}
    # the prior alone, as before: no context scores
    prior = CliRunner().invoke(app, [*args, "--context-weight", "0"])
    assert prior.exit_code == 0, prior.output
    spans = {s["text"]: s for s in json.loads(prior.stdout)["spans"]}
    assert all(c["context"] is None for c in spans["bank"]["candidates"])
    assert "saturday.n.01" in spans["sat"]["names"]  # no tagger: no part-of-speech filter

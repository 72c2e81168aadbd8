"""The linked-entity cache (:func:`~kelm.pipeline.entities.cached_link_entities`): reused when
it is what was written, linked again (with a warning) when its file is not what its sidecar
sha256 records or has no sidecar."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kelm.data.qa import Choice, QAItem
from kelm.graph.index import GraphIndex
from kelm.pipeline import entities
from kelm.pipeline.entities import cached_link_entities

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import build_graph  # noqa: E402

ITEMS = [
    QAItem("q0", "where does a dog live", (Choice("A", "house"), Choice("B", "sky"))),
    QAItem("q1", "what can a bird do", (Choice("A", "fly"), Choice("B", "swim"))),
]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> GraphIndex:
    return GraphIndex.load(build_graph(tmp_path_factory.mktemp("entities")))


def test_a_modified_cache_is_linked_again(graph, tmp_path: Path, monkeypatch, caplog) -> None:
    first = cached_link_entities(ITEMS, graph, tmp_path, cache_dir=tmp_path / "linker")
    assert any(question for question, _ in first)
    (cached,) = tmp_path.glob("*.json")
    assert (tmp_path / (cached.name + ".sha256")).is_file()

    linked: list[int] = []
    real = entities._link_texts

    def counting(ordered, *args, **kwargs):
        linked.append(len(ordered))
        return real(ordered, *args, **kwargs)

    monkeypatch.setattr(entities, "_link_texts", counting)
    assert cached_link_entities(ITEMS, graph, tmp_path, cache_dir=tmp_path / "linker") == first
    assert linked == []  # reused

    # a node id edited in the cached mentions: linked again, not used
    text = cached.read_text()
    node = first[0][0][0][2]
    other = (node + 1) % graph.num_nodes
    cached.write_text(text.replace(f", {node}]", f", {other}]", 1))
    assert cached.read_text() != text
    assert cached_link_entities(ITEMS, graph, tmp_path, cache_dir=tmp_path / "linker") == first
    assert linked == [len(entities._texts(ITEMS))]
    assert "linked-entity cache" in caplog.text and "linking again" in caplog.text

    # a cache without its sidecar (an older kelm): linked again
    (tmp_path / (cached.name + ".sha256")).unlink()
    assert cached_link_entities(ITEMS, graph, tmp_path, cache_dir=tmp_path / "linker") == first
    assert len(linked) == 2

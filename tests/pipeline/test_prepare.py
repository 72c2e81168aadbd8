"""``prepare_examples``: the one data path of training, evaluation and distillation. Items stay in
memory (no QA file is written for grounding), the graph index is loaded once, and each family
gets exactly the inputs its record asks for."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from kelm.config import GraphSourceConfig
from kelm.graph.index import GraphIndex
from kelm.modeling import get_family, load_tokenizer
from kelm.pipeline import GraphResources, prepare_examples, read_items
from kelm.retrieval.retrieve import RetrieveOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    tiny_config(root)  # writes the encoder, the graph and the questions
    return root


def test_families_get_what_they_need(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Path] = []
    real_load = GraphIndex.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls: type, path: Path, **kwargs: object) -> GraphIndex:
        loads.append(Path(path))
        return real_load(cls, path, **kwargs)

    monkeypatch.setattr(GraphIndex, "load", classmethod(counting_load))
    cache = root / "cache-prepare"
    graph = GraphResources.open(GraphSourceConfig(index=str(root / "kg" / "graph")), cache)
    items = read_items(root / "qa.jsonl", need_answers=True)[:4]
    tokenizer = load_tokenizer(str(root / "encoder"))
    options = RetrieveOptions(max_nodes=8, hops=2, paths=4, scorer="none")
    kwargs = {"max_length": 16, "graph": graph, "retrieve_options": options}

    kagnet, counts = prepare_examples(items, get_family("kagnet"), tokenizer, **kwargs)
    assert counts["statements"] == 12 and counts["missing_graphs"] == 0
    assert all(e.graphs and e.paths is not None and e.entity_ids is None for e in kagnet)
    assert any(g.num_nodes > 0 for e in kagnet for g in e.graphs)

    qagnn, _ = prepare_examples(items, get_family("qagnn"), tokenizer, **kwargs)
    assert all(e.graphs and e.paths is None for e in qagnn)

    ernie, counts = prepare_examples(items, get_family("ernie"), tokenizer, **kwargs)
    assert all(e.graphs is None and e.entity_ids for e in ernie) and counts["entities"] > 0

    lm, _ = prepare_examples(items, get_family("lm"), tokenizer, max_length=16)
    assert all(e.graphs is None and e.entity_ids is None for e in lm)
    assert [e.input_ids for e in lm] == [e.input_ids for e in qagnn]

    assert loads == [root / "kg" / "graph"]  # one load for grounding, retrieval and linking
    assert not (cache / "qa").exists()  # the items were never written back to a QA file
    assert len(list((cache / "grounded").glob("*.jsonl"))) == 1  # one grounding, reused


def test_missing_graph_and_empty_items(root: Path) -> None:
    tokenizer = load_tokenizer(str(root / "encoder"))
    items = read_items(root / "qa.jsonl", need_answers=True)[:1]
    with pytest.raises(ValueError, match="'qagnn' family needs a graph"):
        prepare_examples(items, get_family("qagnn"), tokenizer, max_length=16)
    graph = GraphResources.open(GraphSourceConfig(index=str(root / "kg" / "graph")), root / "c2")
    with pytest.raises(ValueError, match="needs retrieval options"):
        prepare_examples(items, get_family("qagnn"), tokenizer, max_length=16, graph=graph)
    examples, counts = prepare_examples([], get_family("qagnn"), tokenizer, max_length=16)
    assert examples == [] and counts["statements"] == 0


def test_linked_entities_are_cached_and_reused_without_spacy(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ERNIE's entity links are cached under the graph cache (a GPU machine without spaCy reads
    them); without spaCy and without a cached result the error says what is missing."""
    from kelm.errors import KelmError
    from kelm.pipeline import entities

    cache = root / "cache-entities"
    graph = GraphResources.open(GraphSourceConfig(index=str(root / "kg" / "graph")), cache)
    items = read_items(root / "qa.jsonl", need_answers=True)
    linked = graph.link_entities(items[:5])
    assert linked == entities.link_entities(items[:5], graph.index)  # the uncached result
    assert any(q or c for q, c in linked)
    [saved] = (cache / "entities").glob("*.json")

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("linked again")

    monkeypatch.setattr(entities, "_link_texts", fail)
    assert graph.link_entities(items[:5]) == linked  # cached, spaCy present
    monkeypatch.setitem(sys.modules, "spacy", None)  # `import spacy` raises ImportError
    assert graph.link_entities(items[:5]) == linked
    with pytest.raises(KelmError, match="needs spaCy, which is not installed"):
        graph.link_entities(items[:6])
    assert list((cache / "entities").glob("*.json")) == [saved]


def test_a_corrupted_cached_retrieval_is_recomputed(root: Path) -> None:
    """Training used to open its cached retrieval unverified: a flipped byte was read as data."""
    cache = root / "cache-corrupt"
    graph = GraphResources.open(GraphSourceConfig(index=str(root / "kg" / "graph")), cache)
    items = read_items(root / "qa.jsonl", need_answers=True)[:4]
    options = RetrieveOptions(max_nodes=8, hops=2, paths=4, scorer="none", shard_size=4)
    first = graph.retrieve(items, options)
    expected = [first.arrays(i) for i in range(len(first))]
    shard = first.path / "shard-00001.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0x01
    shard.write_bytes(bytes(raw))
    again = graph.retrieve(items, options)
    assert again.path == first.path and shard.read_bytes() != bytes(raw)  # written anew
    for i, arrays in enumerate(expected):
        for name, value in arrays.items():
            assert np.array_equal(again.arrays(i)[name], value)


def test_one_spacy_pipeline_per_graph_for_every_grounding_and_linking(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The explorer grounds one question at a time: the pipeline is built once per graph (it
    cost more than a model's forward pass), and grounds as a pipeline of its own would."""
    from kelm.linking import ground

    built: list[str | None] = []
    real_make_nlp = ground.make_nlp

    def counting(pipeline: str | None = None) -> object:
        built.append(pipeline)
        return real_make_nlp(pipeline)

    monkeypatch.setattr(ground, "make_nlp", counting)
    cache = tmp_path / "cache"
    graph = GraphResources.open(GraphSourceConfig(index=str(root / "kg" / "graph")), cache)
    items = read_items(root / "qa.jsonl", need_answers=True)
    options = RetrieveOptions(max_nodes=8, hops=2, paths=4, scorer="none")
    for i in range(3):
        graph.retrieve(items[i : i + 1], options)
    graph.link_entities(items[:2])
    graph.link_entities(items[2:4])
    graph.retrieve(items[:3], options)
    assert built == [None]

    name = f"{graph.index.checksum[:16]}-{ground.items_sha256(items[:3])[:20]}-blank.jsonl"
    own = ground.ground_file(graph.index, items[:3], tmp_path / "own.jsonl", progress=False)
    assert len(built) == 2  # ground_file without a pipeline builds its own
    assert own.out.read_text() == (cache / "grounded" / name).read_text()

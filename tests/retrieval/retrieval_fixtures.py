"""Shared helpers of the retrieval tests: small graphs, random graphs, grounded files and a
tiny offline encoder (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kelm.graph import GraphIndex, build_index
from kelm.graph.sources.base import BuildOptions

# animal 0, bark 1, cat 2, dog 3, house 4, person 5, street 6, zoo 7 (ids are name order)
HAND_TSV = """\
dog\tisa\tanimal
cat\tisa\tanimal
dog\tatlocation\thouse
cat\tatlocation\thouse
cat\thasa\thouse
house\tpartof\tstreet
person\tdesires\tdog
person\tdesires\tcat
animal\tatlocation\tzoo
animal\tatlocation\thouse
dog\tcapableof\tbark
bark\trelatedto\tcat
"""


def build_graph(directory: Path, text: str = HAND_TSV) -> GraphIndex:
    """Build a TSV graph index in ``directory/graph`` and load it."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "edges.tsv"
    source.write_text(text, encoding="utf-8")
    out = directory / "graph"
    build_index([source], out, BuildOptions(format="tsv"), progress=False)
    return GraphIndex.load(out)


class ArrayGraph:
    """The parts of a GraphIndex the retrieval code and the networkx reference read."""

    def __init__(self, heads, rels, tails, num_nodes: int, num_relations: int) -> None:
        self.heads = np.asarray(heads, dtype=np.int64)
        self.rels = np.asarray(rels, dtype=np.int64)
        self.tails = np.asarray(tails, dtype=np.int64)
        self.num_nodes = num_nodes
        self.num_relations = num_relations

    def edges(self):
        return self.heads, self.rels, self.tails, np.ones(self.heads.shape[0], np.float32)


def random_graph(rng: np.random.Generator, *, dense: bool = False) -> ArrayGraph:
    """A random multigraph: repeated edges, self-loops and parallel relations included."""
    n = int(rng.integers(2, 30 if dense else 60))
    e = int(rng.integers(0, 4 * n if dense else 2 * n))
    r = int(rng.integers(1, 4))
    heads = rng.integers(0, n, e)
    tails = rng.integers(0, n, e)
    # a few hubs, as in real graphs
    hub = rng.random(e) < 0.3
    heads = np.where(hub, rng.integers(0, max(n // 8, 1), e), heads)
    return ArrayGraph(heads, rng.integers(0, r, e), tails, n, r)


def grounded_record(sid, choice, question, answer, q_ids, a_ids) -> dict:
    return {
        "id": sid,
        "choice": choice,
        "question": question,
        "answer": answer,
        "question_concepts": list(q_ids),
        "answer_concepts": list(a_ids),
        "question_names": [],
        "answer_names": [],
    }


def write_grounded(path: Path, records: list[dict], graph_checksum: str | None) -> Path:
    """Write a grounded JSONL and (unless ``graph_checksum`` is None) its sidecar manifest."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if graph_checksum is not None:
        sidecar = path.with_name(path.name + ".manifest.json")
        sidecar.write_text(json.dumps({"graph_checksum": graph_checksum}), encoding="utf-8")
    return path


def hand_records(index: GraphIndex) -> list[dict]:
    ids = index.node_id
    return [
        grounded_record("q1", 0, "Where does a dog live?", "house", [ids("dog")], [ids("house")]),
        grounded_record("q1", 1, "Where does a dog live?", "cat", [ids("dog")], [ids("cat")]),
        grounded_record("q2", 0, "Nothing matches here", "xyz", [], []),
        grounded_record(
            "q3",
            0,
            "A person and an animal",
            "zoo",
            [ids("person"), ids("animal"), ids("zoo")],
            [ids("zoo")],
        ),
        grounded_record("q4", 2, "bark", "street", [ids("bark")], [ids("street")]),
    ]


_WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] dog cat animal house street bark zoo person the a "
    "is where does live nothing matches here and an what do"
)
VOCAB = _WORDS.split()


def tiny_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})


def tiny_encoder(seed: int = 0):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def save_tiny_encoder(directory: Path) -> Path:
    """A tiny random BERT encoder folder (model + tokenizer), loadable offline."""
    model = tiny_encoder()
    model.save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory

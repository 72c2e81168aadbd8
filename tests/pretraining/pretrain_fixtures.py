"""Tiny inputs for the pretraining tests: a word-level tokenizer and random BERT (hidden 32,
2 layers), a hand-made concept graph, a few text documents and a config writer. Everything is
written under a test's temporary directory; nothing is downloaded.

A plain module (imported by the tests), not a conftest: ``tests/conftest.py`` owns that name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

GRAPH_TSV = """\
dog\tisa\tanimal
cat\tisa\tanimal
dog\tatlocation\thouse
cat\tatlocation\thouse
bird\tcapableof\tfly
fish\tcapableof\tswim
fish\tatlocation\twater
bird\tatlocation\tsky
"""

_WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] . , : dog cat animal house bird fish fly swim water sky "
    "a the is in can lives and an likely to find you are used for it"
)
WORDS = _WORDS.split()

DOCS = {
    "a.txt": "the dog is an animal .\nthe dog lives in a house .\n\na cat is an animal .\n",
    "b.txt": "a bird can fly .\nthe bird is in the sky .\n",
    "c.txt": "a fish can swim .\nthe fish lives in the water .\nit is an animal .\n",
    "d.txt": "the cat lives in a house and the dog lives in a house .\n",
    "e.txt": "you are likely to find a fish in the water .\n",
    "f.txt": "a dog can swim and a bird can fly .\nthe sky is a house for a bird .\n",
}

PROBE = "IsA\tdog\tanimal\nAtLocation\tfish\twater\nCapableOf\tbird\tfly\nIsA\tcat\tzebra\n"


def save_encoder(directory: Path, seed: int = 0) -> Path:
    """A tiny random BERT (hidden 32, 2 layers, no MLM head) and its tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(directory)
    return directory


def build_graph(directory: Path) -> Path:
    from kelm.graph import build_index
    from kelm.graph.sources.base import BuildOptions

    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "edges.tsv"
    source.write_text(GRAPH_TSV, encoding="utf-8")
    out = directory / "graph"
    build_index([source], out, BuildOptions(format="tsv"), progress=False)
    return out


def write_corpus(directory: Path, docs: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (docs or DOCS).items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def tiny_config(root: Path, objective: str = "mlm", **sections: Any) -> dict[str, Any]:
    """A pretraining config dict over the tiny inputs (created under ``root`` once)."""
    root.mkdir(parents=True, exist_ok=True)
    encoder = root / "encoder"
    if not (encoder / "config.json").is_file():
        save_encoder(encoder)
    graph = root / "kg" / "graph"
    if not (graph / "manifest.json").is_file():
        build_graph(root / "kg")
    corpus = root / "corpus"
    if not corpus.is_dir():
        write_corpus(corpus)
    probe = root / "probe.txt"
    if not probe.is_file():
        probe.write_text(PROBE, encoding="utf-8")
    cfg: dict[str, Any] = {
        "run_dir": str(root / f"run-{objective}"),
        "seed": 1,
        "objective": objective,
        "max_steps": 4,
        "batch_size": 2,
        "eval_batch_size": 4,
        "threads": 1,
        "mixed_precision": "no",
        "corpus": {"kind": "text", "paths": [str(corpus)]},
        "data": {"max_length": 16, "holdout": 0.2, "cache_dir": str(root / "cache")},
        "knowledge": {"index": str(graph), "entity_init": "random"},
        "model": {"encoder": str(encoder)},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "probe": {"enabled": True, "files": [str(probe)]},
    }
    if objective == "ernie":
        cfg["objective_options"] = {
            "num_knowledge_layers": 1,
            "entity_dim": 8,
            "entity_attention_heads": 2,
            "entity_dropout": 0.0,
        }
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(cfg.get(name), dict):
            cfg[name] = {**cfg[name], **values}
        else:
            cfg[name] = values
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def one_line_error(result: Any, *fragments: str) -> str:
    """Assert a CLI result is exit 2 with one ``error: ...`` line naming ``fragments``."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]

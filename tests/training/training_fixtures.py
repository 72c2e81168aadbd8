"""Tiny inputs for the training and evaluation tests: a hand-made concept graph, a tiny random
BERT encoder with its word-level tokenizer, a dozen CommonsenseQA-style questions and a config
writer. Everything is written under a test's temporary directory; nothing is downloaded.

A plain module (imported by the tests), not a conftest: ``tests/conftest.py`` owns that name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

GRAPH_TSV = """\
dog\tisa\tanimal
cat\tisa\tanimal
dog\tatlocation\thouse
cat\tatlocation\thouse
house\tpartof\tstreet
person\tdesires\tdog
animal\tatlocation\tzoo
fish\tatlocation\twater
bird\tcapableof\tfly
fish\tcapableof\tswim
bird\tatlocation\tsky
water\tpartof\tocean
"""

_WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] dog cat animal house street person zoo fish water bird fly "
    "swim sky ocean where does a the live what can do is in"
)
WORDS = _WORDS.split()

# (stem, [choices], answer index): answerable from the graph; some choices have no concept.
QUESTIONS = [
    ("where does a dog live", ["house", "sky", "ocean"], 0),
    ("where does a fish live", ["water", "street", "sky"], 0),
    ("what can a bird do", ["swim", "fly", "live"], 1),
    ("what can a fish do", ["fly", "swim", "street"], 1),
    ("where is a bird", ["sky", "house", "water"], 0),
    ("what is a dog", ["animal", "street", "ocean"], 0),
    ("what is a cat", ["sky", "animal", "water"], 1),
    ("where does a cat live", ["ocean", "zoo", "house"], 2),
    ("where is the water", ["ocean", "house", "sky"], 0),
    ("what does a person do", ["dog", "fly", "swim"], 0),
    ("where is a animal", ["zoo", "sky", "ocean"], 0),
    ("what can a dog do", ["live", "fly", "swim"], 0),
]


def build_graph(directory: Path) -> Path:
    """A TSV graph index in ``directory/graph``."""
    from kelm.graph import build_index
    from kelm.graph.sources.base import BuildOptions

    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "edges.tsv"
    source.write_text(GRAPH_TSV, encoding="utf-8")
    out = directory / "graph"
    build_index([source], out, BuildOptions(format="tsv"), progress=False)
    return out


def save_encoder(directory: Path, seed: int = 0) -> Path:
    """A tiny random BERT (hidden 16, 1 layer) and its tokenizer, saved as a model folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(directory)
    return directory


def qa_record(i: int, stem: str, choices: list[str], answer: int | None) -> dict[str, Any]:
    labels = "ABCDE"
    return {
        "id": f"q{i}",
        "question": {
            "stem": stem,
            "choices": [{"label": labels[j], "text": t} for j, t in enumerate(choices)],
        },
        "answerKey": labels[answer] if answer is not None else "",
    }


def write_qa(path: Path, records: list[dict[str, Any]] | None = None) -> Path:
    """CommonsenseQA-form JSONL (default: :data:`QUESTIONS` with answer keys)."""
    if records is None:
        records = [qa_record(i, s, c, a) for i, (s, c, a) in enumerate(QUESTIONS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def tiny_config(root: Path, model_type: str = "lm", **sections: dict[str, Any]) -> dict[str, Any]:
    """A training config dict over the tiny inputs (created under ``root`` once)."""
    root.mkdir(parents=True, exist_ok=True)
    encoder = root / "encoder"
    if not (encoder / "config.json").is_file():
        save_encoder(encoder)
    graph = root / "kg" / "graph"
    if not (graph / "manifest.json").is_file():
        build_graph(root / "kg")
    qa = root / "qa.jsonl"
    if not qa.is_file():
        write_qa(qa)
    cfg: dict[str, Any] = {
        "run_dir": str(root / f"run-{model_type}"),
        "seed": 3,
        "epochs": 2,
        "batch_size": 4,
        "eval_batch_size": 8,
        "threads": 1,
        "data": {"train": str(qa), "holdout": 0.25, "split_seed": 1, "max_length": 16},
        "graph": {
            "index": str(graph),
            "max_nodes": 8,
            "hops": 2,
            "paths": 4,
            "scorer": "none",
            "cache_dir": str(root / "cache"),
        },
        "model": {
            "type": model_type,
            "encoder": str(encoder),
            "classifier_dropout": 0.1,
            "gnn_dim": 8,
            "gnn_layers": 1,
            "gnn_dropout": 0.1,
            "fc_dim": 8,
            "path_dim": 8,
            "max_paths": 4,
        },
        "optim": {"lm_lr": 1e-3, "gnn_lr": 3e-3, "warmup_steps": 1, "freeze_lm_steps": 2},
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


def train_run(root: Path, model_type: str = "lm", **sections: Any) -> Path:
    """Train a tiny run once under ``root`` (reused when its metrics exist); its directory."""
    from kelm.training import load_train_config, train

    cfg = tiny_config(root, model_type, **sections)
    run = Path(cfg["run_dir"])
    if not (run / "metrics.json").is_file():
        path = write_config(root / f"{run.name}.yaml", cfg)
        train(load_train_config(path), overwrite=True, progress=False)
    return run


def one_line_error(result: Any, *fragments: str) -> str:
    """Assert a CLI result is exit 2 with one ``error: ...`` line naming ``fragments``."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]

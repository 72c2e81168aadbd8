"""``kelm train`` / ``evaluate`` / ``compare`` with ``model.type: ernie`` on the tiny fixtures:
entity linking and alignment, the run directory, exact resume, the entity table from KG
embeddings, and one-line errors for bad ERNIE settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from training_fixtures import (
    QUESTIONS,
    one_line_error,
    qa_record,
    tiny_config,
    write_config,
    write_qa,
)
from typer.testing import CliRunner

from kelm.cli import app
from kelm.training import load_train_config, train

runner = CliRunner()
# the fixture encoder has one layer; the default entity table (TransE trained on the graph) small
ERNIE = {"knowledge_layers": 1, "entity_heads": 2, "kge_dim": 8, "kge_epochs": 2}


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("training-ernie")


def ernie_config(root: Path, name: str, **sections: Any) -> dict[str, Any]:
    model = {**ERNIE, **sections.pop("model", {})}
    return tiny_config(root, "ernie", run_dir=str(root / name), model=model, **sections)


def test_entity_alignment_on_first_wordpiece(root: Path) -> None:
    from kelm.graph.index import GraphIndex
    from kelm.modeling import load_tokenizer
    from kelm.pipeline import Collator, build_examples, read_items
    from kelm.pipeline.entities import link_entities

    cfg = ernie_config(root, "unused")
    items = read_items(cfg["data"]["train"], need_answers=True)[:2]
    index = GraphIndex.load(cfg["graph"]["index"])
    mentions = link_entities(items, index, cache_dir=root / "linker")
    tokenizer = load_tokenizer(cfg["model"]["encoder"])
    examples, counts = build_examples(items, tokenizer, 16, mentions=mentions)
    names = index.names.to_list()
    tokens = tokenizer.convert_ids_to_tokens(examples[0].input_ids[0])
    linked = {
        tok: names[n] for tok, n in zip(tokens, examples[0].entity_ids[0], strict=True) if n >= 0
    }
    assert linked == {"dog": "dog", "house": "house"}  # "where does a dog live" / "house"
    assert counts["entities"] == 12 and counts["statements_without_entities"] == 0
    batch = Collator(tokenizer.pad_token_id)(examples)
    assert batch["entity_ids"].shape == batch["input_ids"].shape
    assert (batch["entity_ids"][batch["attention_mask"] == 0] == -1).all()


def test_train_evaluate_compare(root: Path) -> None:
    qa = root / "with-unknown.jsonl"
    records = [qa_record(i, s, c, a) for i, (s, c, a) in enumerate(QUESTIONS)]
    records.append(qa_record(99, "qwerty zxcv", ["plugh", "xyzzy", "frob"], 2))
    write_qa(qa, records)
    cfg = ernie_config(root, "run", data={"train": str(qa)})
    path = write_config(root / "run.yaml", cfg)
    result = invoke("train", "--config", path, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "trained ernie for 2 epochs" in result.output
    run = root / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "ernie" and 0.0 <= metrics["accuracy"] <= 1.0
    data = metrics["data"]
    assert data["train_entities"] + data["eval_entities"] > 20
    assert data["train_statements_without_entities"] + data["eval_statements_without_entities"] >= 3
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["model_type"] == "kelm_ernie" and saved["graph_checksum"]
    # the default entity table: TransE trained on the run's graph (kge_dim), cached
    assert saved["entity_dim"] == 8 and saved["freeze_entity_embeddings"]
    assert list((root / "cache").glob("kge/transe-*/manifest.json"))
    assert (run / "checkpoints" / "epoch-0002" / "manifest.json").is_file()

    out = root / "run-eval"
    result = invoke("evaluate", "--model", run, "--qa", qa, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    evaluated = json.loads((out / "metrics.json").read_text())
    assert evaluated["model"] == "ernie" and evaluated["n"] == len(records)
    result = invoke("compare", run, out, "--json")
    assert result.exit_code == 0, result.output
    assert [row["model"] for row in json.loads(result.output)] == ["ernie", "ernie"]


def test_entities_off_is_the_text_ablation(root: Path) -> None:
    """``model.entities: false``: no training statement carries an entity (the K-Encoder reads
    the text alone) and the run still evaluates; with entities the same run links many."""
    cfg = ernie_config(root, "no-entities", model={"entities": False})
    result = train(load_train_config(write_config(root / "no-entities.yaml", cfg)), progress=False)
    data = result.metrics["data"]
    assert data["train_entities"] + data["eval_entities"] == 0
    assert data["train_statements_without_entities"] == data["train_statements"]
    with_entities = ernie_config(root, "with-entities")
    linked = train(
        load_train_config(write_config(root / "with.yaml", with_entities)), progress=False
    )
    assert linked.metrics["data"]["train_entities"] > 10
    # same seed and settings but the switch: were it ignored, the two runs would be identical
    losses = [[s["loss"] for s in r.history["steps"]] for r in (result, linked)]
    assert len(losses[0]) == len(losses[1]) > 0
    assert losses[0] != pytest.approx(losses[1], abs=1e-6)
    qa = cfg["data"]["train"]
    out = root / "no-entities-eval"
    result = invoke("evaluate", "--model", root / "no-entities", "--qa", qa, "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["n"] == len(QUESTIONS)


def test_resume_equals_uninterrupted(root: Path) -> None:
    cfg = ernie_config(root, "straight", model={"classifier_dropout": 0.1})
    a = train(load_train_config(write_config(root / "straight.yaml", cfg)), progress=False)
    split = load_train_config(
        write_config(root / "split.yaml", {**cfg, "run_dir": str(root / "split")})
    )
    assert not train(split, stop_after_epochs=1, progress=False).completed
    b = train(split, resume=True, progress=False)
    assert b.completed and b.resumed_from is not None
    assert [s["loss"] for s in b.history["steps"]] == pytest.approx(
        [s["loss"] for s in a.history["steps"]], abs=1e-6
    )
    assert b.metrics["accuracy"] == pytest.approx(a.metrics["accuracy"], abs=1e-6)


def test_entity_table_from_kg_embeddings(root: Path) -> None:
    import torch
    from torch_geometric.nn.kge import TransE

    from kelm.graph.index import GraphIndex
    from kelm.kge import save_embeddings
    from kelm.training.runs import load_run_model

    cfg = ernie_config(root, "kge", epochs=1)
    index = GraphIndex.load(cfg["graph"]["index"])
    torch.manual_seed(0)
    kge = TransE(index.num_nodes, index.num_relations, 6)
    emb = save_embeddings(
        root / "kge-emb", kge, {"graph": {"checksum": index.checksum, "path": str(index.path)}}
    )
    cfg["model"] = {**cfg["model"], "kge_dir": str(emb), "entity_hidden_size": 4}
    result = train(load_train_config(write_config(root / "kge.yaml", cfg)), progress=False)
    model, _, family = load_run_model(result.run_dir)
    assert family.name == "ernie" and model.config.entity_dim == 6
    assert model.config.entity_width == 4  # projected 6 -> 4
    # frozen: still TransE's rows as it scores them (L1-normalised), standardised
    unit = torch.nn.functional.normalize(kge.node_emb.weight.detach(), p=1.0, dim=-1)
    expected = (unit - unit.mean(0)) / (unit - unit.mean(0)).std()
    torch.testing.assert_close(model.entity_embedding.weight, expected)


def test_entity_table_options_graph_names(root: Path) -> None:
    """``node_init: graph`` trains TransE once per (graph, settings) and reuses it; ``names``
    keeps the name embeddings (the encoder's width)."""
    import torch

    from kelm.training.runs import load_run_model

    tables = {}
    for name, model in [
        ("graph-a", {"node_init": "graph"}),
        ("graph-b", {"node_init": "graph"}),
        ("graph-c", {"node_init": "graph", "kge_dim": 6}),
        ("names", {"node_init": "names"}),
    ]:
        cfg = ernie_config(root, name, epochs=1, model=model)
        result = train(load_train_config(write_config(root / f"{name}.yaml", cfg)), progress=False)
        tables[name] = load_run_model(result.run_dir)[0].entity_embedding.weight.detach()
    assert torch.equal(tables["graph-a"], tables["graph-b"])  # the cached embeddings
    assert tables["graph-c"].shape[1] == 6  # other settings, other embeddings
    assert tables["names"].shape[1] == 16  # the fixture encoder's hidden size
    assert len(list((root / "cache").glob("kge/transe-*/manifest.json"))) >= 2


def test_frozen_t_encoder_warm_up_resumes_exactly(root: Path) -> None:
    """ERNIE with ``unfreeze_epoch: 1``: epoch 1 trains the fusion on T-Encoder states computed
    once (the T-Encoder does not move, the K-Encoder does); 2 epochs straight vs 1 + resume."""
    import torch
    from transformers import BertModel

    from kelm.training.runs import load_run_model

    cfg = ernie_config(root, "warm", optim={"unfreeze_epoch": 1, "freeze_lm_steps": 0})
    a = train(load_train_config(write_config(root / "warm.yaml", cfg)), progress=False)
    per_epoch = len(a.history["steps"]) // 2
    assert [s["lm_frozen"] for s in a.history["steps"]] == [True] * per_epoch + [False] * per_epoch
    one = {**cfg, "run_dir": str(root / "warm-1"), "epochs": 1}
    first = train(load_train_config(write_config(root / "warm-1.yaml", one)), progress=False)
    start = BertModel.from_pretrained(cfg["model"]["encoder"]).state_dict()  # the fixture encoder
    after_one = dict(load_run_model(first.run_dir)[0].named_parameters())
    after_two = dict(load_run_model(a.run_dir)[0].named_parameters())
    t_enc, k_enc = "embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight"
    assert torch.equal(after_one[f"text_encoder.{t_enc}"], start[t_enc])  # frozen in epoch 1
    assert not torch.equal(after_one[f"text_encoder.{k_enc}"], start[k_enc])  # K-Encoder trains
    assert not torch.equal(after_two[f"text_encoder.{t_enc}"], start[t_enc])  # then all of it
    split = load_train_config(
        write_config(root / "warm-split.yaml", {**cfg, "run_dir": str(root / "warm-split")})
    )
    train(split, stop_after_epochs=1, progress=False)
    b = train(split, resume=True, progress=False)
    assert [s["loss"] for s in b.history["steps"]] == pytest.approx(
        [s["loss"] for s in a.history["steps"]], abs=1e-6
    )


def test_bad_ernie_settings_are_one_line_errors(root: Path) -> None:
    cfg = ernie_config(root, "bad", model={"knowledge_layers": 2})  # the encoder has 1 layer
    path = write_config(root / "bad.yaml", cfg)
    one_line_error(invoke("train", "-c", path, "--no-progress"), "num_knowledge_layers")
    one_line_error(
        invoke("train", "-c", path, "--overwrite", "--set", "model.knowledge_layers=0"),
        "model.knowledge_layers",
    )
    no_graph = {**cfg, "graph": {}}
    one_line_error(
        invoke("train", "-c", write_config(root / "nograph.yaml", no_graph)), "needs a graph"
    )


def test_cached_or_trained_entity_table_gives_the_same_run(root: Path, tmp_path: Path) -> None:
    """Training the default entity table (TransE seeds its own generators) must not change the
    run's random streams: a run with an empty graph cache equals one with the cache filled."""
    cfg = ernie_config(root, "rng-a", epochs=1)
    cfg["graph"] = {**cfg["graph"], "cache_dir": str(tmp_path / "cache")}
    a = train(load_train_config(write_config(tmp_path / "a.yaml", cfg)), progress=False)
    b_cfg = {**cfg, "run_dir": str(root / "rng-b")}
    b = train(load_train_config(write_config(tmp_path / "b.yaml", b_cfg)), progress=False)
    assert [s["loss"] for s in b.history["steps"]] == [s["loss"] for s in a.history["steps"]]


def test_kge_epochs_auto_gives_small_graphs_enough_steps() -> None:
    from kelm.training.model_factory import kge_auto_epochs

    assert kge_auto_epochs(100_000) == 30  # CN-100K: 100 batches an epoch
    assert kge_auto_epochs(3_000) == 667  # the 1-hop knowledge task: 3 batches an epoch
    assert kge_auto_epochs(3_000_000) == 30

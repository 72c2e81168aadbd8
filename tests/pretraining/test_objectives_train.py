"""The plain-family objectives (``clm``, ``sop``, ``rtd``, ``distill``, ``tinybert``, ``mlm`` with
NSP and a preset) through ``kelm pretrain`` on tiny random models: a short run of each (finite
losses, the kept model saved and loadable), an overfit check on one repeated batch, exact resume
for ``rtd``, and the one-line errors (vocabulary mismatch, unknown objective)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from pretrain_fixtures import WORDS, one_line_error, tiny_config, write_config
from typer.testing import CliRunner

from kelm.cli import app
from kelm.errors import KelmError
from kelm.pretraining import load_pretrain_config, pretrain
from kelm.pretraining.objectives import get_objective
from kelm.pretraining.objectives.base import load_tokenizer_for
from kelm.pretraining.run_data import prepare_data

runner = CliRunner()

# objective -> config sections of its tiny run
CASES: dict[str, dict[str, Any]] = {
    "clm": {"model": {"from_scratch": True}, "probe": {"enabled": False}},
    "clm-gpt1": {
        "objective": "clm",
        "objective_options": {"architecture": "openai-gpt"},
        "model": {"from_scratch": True},
        "probe": {"enabled": False},
    },
    "sop": {"model": {"from_scratch": True}, "objective_options": {"embedding_size": 16}},
    "sop-ffn": {
        "objective": "sop",
        "model": {"from_scratch": True},
        "objective_options": {"sharing": "ffn", "embedding_size": 16},
    },
    "rtd": {"model": {"from_scratch": True}, "probe": {"enabled": False}},
    "distill": {},
    "distill-head": {"objective": "distill", "objective_options": {"teacher": "TEACHER"}},
    "tinybert": {"objective_options": {"student_overrides": {"hidden_size": 16}}},
    "tinybert-task": {
        "objective": "tinybert",
        "objective_options": {"stage": "task", "teacher": "TEACHER"},
    },
    "mlm-nsp": {
        "objective": "mlm",
        "objective_options": {"nsp": True, "preset": "bert-tiny"},
        "model": {"from_scratch": True, "config_overrides": {"hidden_size": 32}},
    },
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("objectives")
    tiny_config(root)  # the encoder, corpus and graph
    _save_teacher(root / "teacher")
    return root


def _save_teacher(directory: Path) -> Path:
    """A tiny BERT *with* an MLM head (the fixture encoder has none), same vocabulary."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    torch.manual_seed(3)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertForMaskedLM(config).save_pretrained(directory)
    BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(directory)
    return directory


def _config(root: Path, case: str, **extra: Any) -> dict[str, Any]:
    sections = json.loads(json.dumps(CASES[case]).replace("TEACHER", str(root / "teacher")))
    objective = sections.pop("objective", case)
    cfg = tiny_config(root, objective, run_dir=str(root / f"run-{case}"), **sections)
    for key, value in extra.items():
        cfg[key] = value
    return cfg


def _run(root: Path, case: str, **extra: Any):
    cfg = _config(root, case, **extra)
    path = write_config(root / f"{Path(cfg['run_dir']).name}.yaml", cfg)
    with pytest.warns(UserWarning) if case == "distill" else _nothing():
        result = pretrain(load_pretrain_config(path), overwrite=True, progress=False)
    return result, cfg


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("case", list(CASES))
def test_short_run_saves_the_kept_model(root: Path, case: str) -> None:
    result, cfg = _run(root, case)
    steps = result.history["steps"]
    assert len(steps) == 4 and all(math.isfinite(s["loss"]) for s in steps)
    run = Path(cfg["run_dir"])
    config = json.loads((run / "model" / "config.json").read_text())
    m = result.metrics
    expected = {
        "clm": ("gpt2", "lm_accuracy"),
        "clm-gpt1": ("openai-gpt", "perplexity"),
        "sop": ("albert", "sop_accuracy"),
        "sop-ffn": ("albert", "sop_accuracy"),
        "rtd": ("electra", "rtd_accuracy"),
        "distill": ("bert", "teacher_mlm_accuracy"),
        "distill-head": ("bert", "mlm_accuracy"),
        "tinybert": ("bert", "attention_loss"),
        "tinybert-task": ("bert", "mlm_accuracy"),
        "mlm-nsp": ("bert", "nsp_accuracy"),
    }[case]
    assert config["model_type"] == expected[0]
    assert math.isfinite(m[expected[1]])
    objective = get_objective(cfg["objective"])
    loaded_cfg = load_pretrain_config(root / f"{run.name}.yaml")
    obj = objective(loaded_cfg, loaded_cfg.options(), load_tokenizer_for(loaded_cfg))
    assert obj.load_kept_model(run / "model") is not None
    if case == "rtd":  # the discriminator is what is kept, not the generator
        assert config["architectures"] == ["ElectraForPreTraining"]
    if case.startswith("distill") or case.startswith("tinybert"):
        layers = {"distill": 1, "distill-head": 2, "tinybert": 1, "tinybert-task": 2}
        assert config["num_hidden_layers"] == layers[case]
        assert m["objective"]["name"] == cfg["objective"]
    if case == "distill-head":
        assert m["objective"]["teacher_has_mlm_head"] is True
        assert result.history["steps"][0]["ce_loss"] > 0
    if case == "mlm-nsp":
        assert config["num_hidden_layers"] == 2 and config["hidden_size"] == 32  # override wins
        assert config["intermediate_size"] == 512  # from the preset
    if case == "clm":
        tok = json.loads((run / "model" / "tokenizer_config.json").read_text())
        assert "<|extract|>" in json.dumps(tok)
        assert config["vocab_size"] == len(WORDS) + 3


def _overfit(root: Path, case: str, steps: int = 12) -> list[float]:
    cfg_dict = _config(root, case)
    path = write_config(root / f"overfit-{case}.yaml", cfg_dict)
    cfg = load_pretrain_config(path)
    cls, options = cfg.objective_class(), cfg.options()
    tokenizer = load_tokenizer_for(cfg)
    store = prepare_data(cfg, cls, options, tokenizer, None)
    objective = cls(cfg, options, tokenizer)
    torch.manual_seed(0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = objective.build_model()
    model.train()
    optimizer = torch.optim.AdamW(objective.param_groups(model), lr=3e-3)
    instances = [store[i] for i in range(min(4, len(store)))]
    losses = []
    for _ in range(steps):
        batch = objective.collate(instances, torch.Generator().manual_seed(0))
        torch.manual_seed(1)  # the same dropout draws every step
        loss = objective.losses(model(**objective.model_inputs(batch)), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("case", ["clm", "sop-ffn", "rtd", "distill", "tinybert", "tinybert-task"])
def test_loss_decreases_on_a_repeated_batch(root: Path, case: str) -> None:
    losses = _overfit(root, case)
    assert all(math.isfinite(x) for x in losses)
    assert min(losses[-3:]) < 0.9 * losses[0], losses


def test_rtd_resume_equals_uninterrupted(root: Path) -> None:
    full, _ = _run(root, "rtd", run_dir=str(root / "full-rtd"), save_every=2)
    cfg = _config(root, "rtd", run_dir=str(root / "cut-rtd"), save_every=2)
    path = write_config(root / "cut-rtd.yaml", cfg)
    half = pretrain(load_pretrain_config(path), stop_after_steps=2, progress=False)
    assert not half.completed
    done = pretrain(load_pretrain_config(path), resume=True, progress=False)
    assert [s["loss"] for s in done.history["steps"]] == [s["loss"] for s in full.history["steps"]]
    assert done.metrics["rtd_accuracy"] == full.metrics["rtd_accuracy"]
    from safetensors.torch import load_file

    a = load_file(str(root / "full-rtd" / "model" / "model.safetensors"))
    b = load_file(str(root / "cut-rtd" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_vocabulary_mismatch_is_one_line(root: Path, tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    other = tmp_path / "student"
    BertForMaskedLM(
        BertConfig(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
    ).save_pretrained(other)
    for objective in ("distill", "tinybert"):
        cfg = tiny_config(
            root,
            objective,
            run_dir=str(tmp_path / f"run-{objective}"),
            objective_options={"student": str(other)},
        )
        path = write_config(tmp_path / f"{objective}.yaml", cfg)
        line = one_line_error(
            runner.invoke(app, ["pretrain", "--config", str(path), "--no-progress"]),
            "vocabulary",
        )
        assert "50" in line


def test_task_stage_needs_a_teacher_head_and_probe_needs_mlm(root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(
        root, "tinybert", run_dir=str(tmp_path / "t"), objective_options={"stage": "task"}
    )
    path = write_config(tmp_path / "t.yaml", cfg)
    one_line_error(
        runner.invoke(app, ["pretrain", "--config", str(path), "--no-progress"]),
        "no trained MLM head",
    )
    cfg = tiny_config(root, "rtd", run_dir=str(tmp_path / "r"), model={"from_scratch": True})
    path = write_config(tmp_path / "r.yaml", cfg)
    one_line_error(
        runner.invoke(app, ["pretrain", "--config", str(path), "--no-progress"]), "probe.enabled"
    )
    cfg = tiny_config(root, "sop", run_dir=str(tmp_path / "s"), objective_options={"preset": "x"})
    path = write_config(tmp_path / "s.yaml", cfg)
    one_line_error(
        runner.invoke(app, ["pretrain", "--config", str(path), "--no-progress"]), "from_scratch"
    )


def test_unknown_objective_lists_the_new_ones() -> None:
    with pytest.raises(KelmError) as err:
        get_objective("bert")
    for name in ("clm", "distill", "mlm", "rtd", "sop", "tinybert"):
        assert name in str(err.value)
    assert "_common" not in str(err.value)


def test_cli_summary_shows_the_objectives_own_metrics(root: Path) -> None:
    cfg = _config(root, "sop", run_dir=str(root / "cli-sop"))
    path = write_config(root / "cli-sop.yaml", cfg)
    result = runner.invoke(app, ["pretrain", "--config", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "pretrained sop for 4 steps" in result.output and "sop_accuracy" in result.output


@pytest.mark.parametrize(("objective", "loads"), [("sop", "ALBERT"), ("rtd", "ELECTRA")])
def test_a_checkpoint_of_another_family_is_one_line(
    root: Path, tmp_path: Path, objective: str, loads: str
) -> None:
    """The tiny BERT as the encoder of an ALBERT / ELECTRA objective: named before its
    weights are loaded (transformers raises a RuntimeError on the mismatched sizes)."""
    cfg = tiny_config(root, objective, run_dir=str(tmp_path / "r"), probe={"enabled": False})
    path = write_config(tmp_path / "c.yaml", cfg)
    one_line_error(
        runner.invoke(app, ["pretrain", "--config", str(path), "--no-progress"]),
        "is a bert checkpoint",
        loads,
    )

"""The model families through ``kelm train`` / ``kelm compare`` on tiny random models: ``gpt``
(GPT-1 transfer format, auxiliary LM loss), ``gsc`` (the graph soft counter) and ``lm`` over
ALBERT, ELECTRA and DistilBERT encoders built from config-only preset folders; the
DistilBERT-style halved student; the shipped family configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from training_fixtures import WORDS, one_line_error, tiny_config, write_config
from transformers import (
    AlbertConfig,
    AutoTokenizer,
    BertConfig,
    BertModel,
    DistilBertConfig,
    ElectraConfig,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)
from typer.testing import CliRunner

from kelm.cli import app
from kelm.errors import KelmError
from kelm.modeling import halve_encoder
from kelm.modeling.modeling_gpt import TRANSFER_TOKENS
from kelm.pipeline import build_examples, read_items
from kelm.training import load_train_config, train

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:text encoder .* a config without weights")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module")
def cli_results(root: Path) -> dict[str, Any]:
    """The CLI runs of this module by name, each made once by whichever test needs it first:
    ``kelm compare`` reads them all, and tests run in any order."""
    return {}


def save_tiny_gpt(directory: Path) -> Path:
    """A tiny random GPT-2 with a word-level tokenizer over the fixture words."""
    vocab = {"<|endoftext|>": 0, **{w: i + 1 for i, w in enumerate(WORDS[5:])}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    ).save_pretrained(directory)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=32, n_embd=16, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


PRESETS = {
    "albert": lambda v: AlbertConfig(
        vocab_size=v, embedding_size=8, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
    ),
    "electra": lambda v: ElectraConfig(
        vocab_size=v, embedding_size=8, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
    ),
    "distilbert": lambda v: DistilBertConfig(
        vocab_size=v, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=64
    ),
}  # fmt: skip


def gpt_run(root: Path, name: str, **model: object) -> Path:
    gpt = root / "gpt"
    if not (gpt / "config.json").is_file():
        save_tiny_gpt(gpt)
    cfg = tiny_config(
        root,
        "gpt",
        run_dir=str(root / name),
        epochs=1,
        model={"encoder": str(gpt), **model},
        optim={"freeze_lm_steps": 0},  # the LM loss trains the backbone only
    )
    return write_config(root / f"{name}.yaml", cfg)


def train_gpt(root: Path, results: dict[str, Any]) -> Any:
    """``kelm train`` of the tiny GPT: its CLI result (made once per module)."""
    if "run-gpt" not in results:
        results["run-gpt"] = invoke("train", "--config", gpt_run(root, "run-gpt"), "--no-progress")
    return results["run-gpt"]


def test_gpt_train_end_to_end(root: Path, cli_results: dict[str, Any]) -> None:
    result = train_gpt(root, cli_results)
    assert result.exit_code == 0, result.output
    assert "trained gpt for 1 epochs" in result.output
    run = root / "run-gpt"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "gpt" and metrics["n"] == 3 and 0.0 <= metrics["accuracy"] <= 1.0
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["model_type"] == "kelm_gpt" and saved["encoder_config"]["model_type"] == "gpt2"
    assert saved["lm_loss_weight"] == 0.5
    # the saved tokenizer carries the transfer tokens: statements come out in that format
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    vocab = tokenizer.get_vocab()
    ids = {role: vocab[t] for role, t in TRANSFER_TOKENS.items()}
    assert saved["extract_token_id"] == ids["extract"]
    items = read_items(root / "qa.jsonl", need_answers=True)[:2]
    examples, _ = build_examples(items, tokenizer, 16)
    first = examples[0].input_ids[0]
    assert first[0] == ids["start"] and first[-1] == ids["extract"]
    assert first.count(ids["delimiter"]) == 1 and examples[0].token_type_ids is None
    words = tokenizer.convert_ids_to_tokens(first[1 : first.index(ids["delimiter"])])
    assert " ".join(words) == items[0].question
    # `kelm evaluate` reads the run back and scores the same questions the same way
    evaluated = invoke(
        "evaluate", "--model", str(run), "--qa", str(root / "qa.jsonl"), "--out", str(root / "ev")
    )
    assert evaluated.exit_code == 0, evaluated.output
    again = json.loads((root / "ev" / "metrics.json").read_text())
    assert again["model"] == "gpt" and again["n"] == len(
        read_items(root / "qa.jsonl", need_answers=True)
    )


def test_gsc_train_and_evaluate(root: Path) -> None:
    cfg = tiny_config(root, "gsc", run_dir=str(root / "run-gsc"), epochs=1)
    result = invoke("train", "--config", write_config(root / "gsc.yaml", cfg), "--no-progress")
    assert result.exit_code == 0, result.output
    run = root / "run-gsc"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "gsc" and metrics["data"]["train_empty_graphs"] < 9
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["model_type"] == "kelm_gsc" and saved["gsc_layers"] == 1  # model.gnn_layers
    evaluated = invoke(
        "evaluate", "--model", str(run), "--qa", str(root / "qa.jsonl"), "--out", str(root / "g")
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((root / "g" / "metrics.json").read_text())["model"] == "gsc"


def test_gpt_aux_loss_changes_training(root: Path) -> None:
    """Same seed and data: the auxiliary LM loss (weight 0.5 vs 0) changes the updates, so the
    choice losses logged after the first step differ."""
    losses = {}
    for weight in (0.0, 0.5):
        path = gpt_run(root, f"aux-{weight}", lm_loss_weight=weight)
        result = train(load_train_config(path), progress=False)
        losses[weight] = [s["loss"] for s in result.history["steps"]]
    assert losses[0.0][0] == pytest.approx(losses[0.5][0], abs=1e-6)  # before any update
    assert losses[0.0][1:] != pytest.approx(losses[0.5][1:], abs=1e-6)


def train_preset(root: Path, results: dict[str, Any], family: str) -> tuple[Any, Any]:
    """``kelm train`` of ``lm`` over a preset folder, then ``kelm evaluate`` of the run: the two
    CLI results (made once per module)."""
    run = root / f"run-{family}"
    if run.name not in results:
        preset = root / f"preset-{family}"
        PRESETS[family](len(WORDS)).save_pretrained(preset)
        assert not (preset / "model.safetensors").exists()
        cfg = tiny_config(
            root,
            "lm",
            run_dir=str(run),
            epochs=1,
            model={"encoder": str(preset), "tokenizer": str(root / "encoder")},
        )
        trained = invoke(
            "train", "--config", write_config(root / f"{family}.yaml", cfg), "--no-progress"
        )
        evaluated = invoke(
            "evaluate", "--model", run, "--qa", root / "qa.jsonl", "--out", root / f"eval-{family}",
            "--no-progress",
        )  # fmt: skip
        results[run.name] = (trained, evaluated)
    return results[run.name]


@pytest.mark.parametrize("family", sorted(PRESETS))
def test_lm_over_encoder_presets(root: Path, cli_results: dict[str, Any], family: str) -> None:
    """``lm`` over ALBERT / ELECTRA / DistilBERT built from a folder holding only a
    config.json (random weights), the fixture BERT tokenizer."""
    result, evaluated = train_preset(root, cli_results, family)
    assert result.exit_code == 0, result.output
    run = root / f"run-{family}"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "lm" and 0.0 <= metrics["accuracy"] <= 1.0
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["encoder_config"]["model_type"] == family
    assert evaluated.exit_code == 0, evaluated.output


def test_compare_lists_families(root: Path, cli_results: dict[str, Any]) -> None:
    # The runs are made here when this test comes first (tests run in random order).
    made = [train_gpt(root, cli_results)]
    for family in sorted(PRESETS):
        made += train_preset(root, cli_results, family)
    assert all(result.exit_code == 0 for result in made), [r.output for r in made]
    runs = [root / "run-gpt", *(root / f"run-{f}" for f in sorted(PRESETS))]
    runs += [root / "eval-albert"]
    result = invoke("compare", *runs)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["run", "model", "seed", "n", "accuracy"]
    assert "gpt (gpt2 L2 H16)" in lines[1]
    assert "lm (albert L2 H16)" in lines[2]
    assert "lm (distilbert L2 H16)" in lines[3]
    assert "lm (electra L2 H16)" in lines[4]
    assert "lm (albert L2 H16)" in lines[5]  # an evaluation: the backbone of its run
    rows = json.loads(invoke("compare", *runs, "--json").output)
    assert [(r["model"], r["encoder"]) for r in rows] == [
        ("gpt", "gpt2"),
        ("lm", "albert"),
        ("lm", "distilbert"),
        ("lm", "electra"),
        ("lm", "albert"),
    ]


def test_missing_pretraining_output_is_one_line(root: Path) -> None:
    cfg = tiny_config(root, "lm", run_dir=str(root / "x"), model={"encoder": "runs/nope/model"})
    result = invoke("train", "--config", write_config(root / "x.yaml", cfg), "--no-progress")
    one_line_error(result, "model.encoder", "runs/nope/model", "does not exist")


def test_halve_encoder_takes_every_other_layer() -> None:
    torch.manual_seed(0)
    teacher = BertModel(
        BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
            intermediate_size=32,
        ),
        add_pooling_layer=False,
    ).eval()  # fmt: skip
    student = halve_encoder(teacher)
    assert type(student) is BertModel and student.config.num_hidden_layers == 2
    assert teacher.config.num_hidden_layers == 4  # the teacher's config is untouched
    assert not student.training
    t, s = teacher.state_dict(), student.state_dict()
    per_layer = sum(k.startswith("encoder.layer.0.") for k in t)
    assert len(s) == len(t) - 2 * per_layer
    for key, value in s.items():
        source = key.replace("encoder.layer.1.", "encoder.layer.2.")
        assert torch.equal(value, t[source]), key
    ids = torch.randint(0, 50, (2, 6))
    assert student(input_ids=ids).last_hidden_state.shape == (2, 6, 16)
    assert halve_encoder(teacher, layers=[3]).config.num_hidden_layers == 1
    with pytest.raises(KelmError, match="distinct indices"):
        halve_encoder(teacher, layers=[0, 0])
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=3, n_head=2))
    assert halve_encoder(gpt.transformer).config.n_layer == 2  # layers 0 and 2
    albert = AlbertConfig(vocab_size=50, hidden_size=16, num_attention_heads=2, intermediate_size=8)
    from transformers import AlbertModel

    with pytest.raises(KelmError, match="ALBERT shares"):
        halve_encoder(AlbertModel(albert))


@pytest.mark.parametrize("family", ["bert", "gpt", "albert", "electra", "distil", "tinybert"])
def test_shipped_family_configs(family: str) -> None:
    cfg = load_train_config(REPO / "configs" / f"csqa-{family}.yaml")
    assert cfg.model.type == ("gpt" if family == "gpt" else "lm")
    assert cfg.run_dir == f"runs/csqa-{family}"
    if family in ("albert", "electra", "distil", "tinybert"):  # no offline weights: pretrain
        assert cfg.model.encoder == f"runs/pretrain-{family}/model"

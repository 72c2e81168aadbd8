"""Model cards: every ``kelm train`` / ``kelm pretrain`` run writes ``model/README.md`` in the
Hugging Face format (YAML front matter, what it is, data, metrics, config, how to load)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pretraining"))
import pretrain_fixtures  # noqa: E402
from training_fixtures import train_run  # noqa: E402

from kelm.engine.model_card import auto_class, model_card  # noqa: E402


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_a_training_run_writes_its_card(tmp_path: Path) -> None:
    run = train_run(tmp_path, "qagnn")
    card = (run / "model" / "README.md").read_text(encoding="utf-8")
    front = front_matter(card)
    assert front["library_name"] == "transformers"
    assert {"kelm", "qagnn", "multiple-choice"} <= set(front["tags"])
    assert front["metrics"] == ["accuracy", "loss"]
    assert "datasets" not in front and "base_model" not in front  # local files only
    assert "# run-qagnn: kelm qagnn" in card and "QA-GNN-style joint reasoning" in card
    assert "- train: `" in card and "qa.jsonl" in card and "hops 2" in card
    assert "| accuracy | " in card
    assert "import kelm.modeling" in card and "AutoModelForMultipleChoice.from_pretrained" in card
    assert "kelm explore --graph" in card
    config = (run / "config.resolved.yaml").read_text(encoding="utf-8").rstrip()
    assert config in card

    # what the card says to do works
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    import kelm.modeling  # noqa: F401

    assert type(AutoModelForMultipleChoice.from_pretrained(run / "model")).__name__ == (
        "QAGNNForMultipleChoice"
    )
    AutoTokenizer.from_pretrained(run / "model")


def test_a_pretraining_run_writes_its_card(tmp_path: Path) -> None:
    from kelm.pretraining import load_pretrain_config, pretrain

    cfg = pretrain_fixtures.tiny_config(tmp_path, "mlm")
    path = pretrain_fixtures.write_config(tmp_path / "mlm.yaml", cfg)
    pretrain(load_pretrain_config(path), overwrite=True, progress=False)
    card = (Path(cfg["run_dir"]) / "model" / "README.md").read_text(encoding="utf-8")
    front = front_matter(card)
    assert "pretraining" in front["tags"] and "multiple-choice" not in front["tags"]
    assert "`kelm pretrain`" in card and "| mlm_accuracy | " in card


class _Config:
    model_type = "kelm_lm"
    encoder_name_or_path = "sentence-transformers/all-MiniLM-L6-v2"


class KelmLMForMultipleChoice:
    config = _Config()


def test_hub_data_and_encoder_are_named(tmp_path: Path) -> None:
    run = tmp_path / "csqa-lm"
    run.mkdir()
    (run / "config.resolved.yaml").write_text(
        "data:\n  train: data/qa/csqa/train_rand_split.jsonl\n  eval: null\nmodel:\n  type: lm\n"
    )
    card = model_card(KelmLMForMultipleChoice(), run, {"accuracy": 0.5, "n": 3}, kind="train")
    front = front_matter(card)
    assert front["datasets"] == ["tau/commonsense_qa"]
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "kelm explore" not in card  # a text model needs no graph


@pytest.mark.parametrize(
    ("name", "auto"),
    [
        ("QAGNNForMultipleChoice", "AutoModelForMultipleChoice"),
        ("KelmErnieForPreTraining", "AutoModelForPreTraining"),
        ("BertForMaskedLM", "AutoModelForMaskedLM"),
        ("BertModel", "AutoModel"),
    ],
)
def test_auto_class(name: str, auto: str) -> None:
    assert auto_class(type(name, (), {})()) == auto

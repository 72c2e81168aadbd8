"""The model-family registry: kelm's own records, refused records, and a new family that is one
record away from ``kelm train`` and ``kelm evaluate``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kelm.errors import KelmError
from kelm.modeling import (
    KelmLMConfig,
    KelmLMForMultipleChoice,
    ModelFamily,
    family_names,
    family_of,
    get_family,
    register_family,
)
from kelm.modeling import families as registry
from kelm.modeling.family_records import TEXT_INPUTS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import train_run  # noqa: E402


class ToyConfig(KelmLMConfig):
    model_type = "kelm_test_toy"


class ToyForMultipleChoice(KelmLMForMultipleChoice):
    config_class = ToyConfig


def toy_family(**changes: Any) -> ModelFamily:
    fields: dict[str, Any] = {
        "name": "toy",
        "config_class": ToyConfig,
        "model_class": ToyForMultipleChoice,
        "inputs": TEXT_INPUTS,
        "needs": frozenset({"entities"}),
        "build": lambda settings, context: ToyForMultipleChoice.from_text_encoder(
            context.encoder, pooling=settings.pooling
        ),
        "load_tokenizer": get_family("lm").load_tokenizer,
    }
    fields.update(changes)
    return ModelFamily(**fields)


@pytest.fixture
def toy() -> Iterator[ModelFamily]:
    family = register_family(toy_family())
    try:
        yield family
    finally:
        registry._FAMILIES.pop("toy", None)  # leave the registry as other tests expect it


def test_kelm_families_are_registered() -> None:
    assert set(family_names()) >= {"lm", "kagnet", "qagnn", "gsc", "ernie", "gpt"}
    kagnet = get_family("kagnet")
    assert kagnet.uses_retrieval and kagnet.needs_graph and "paths" in kagnet.needs
    assert get_family("ernie").uses_entities and not get_family("ernie").uses_retrieval
    assert not get_family("lm").needs_graph and not get_family("gpt").needs_graph
    assert family_of("kelm_qagnn") is get_family("qagnn") and family_of("bert") is None
    batch = {"input_ids": 1, "attention_mask": 2, "graphs": 3, "entity_ids": 4}
    assert get_family("qagnn").model_inputs(batch) == {
        "input_ids": 1,
        "attention_mask": 2,
        "graphs": 3,
    }


def test_unknown_and_malformed_families_are_refused() -> None:
    with pytest.raises(KelmError, match=r"unknown model family 'nope' \(known: lm, "):
        get_family("nope")
    with pytest.raises(ValueError, match="unknown needs"):
        toy_family(needs=frozenset({"subgraphs"}))
    with pytest.raises(ValueError, match="'paths' come with 'subgraph'"):
        toy_family(needs=frozenset({"paths"}))
    with pytest.raises(ValueError, match="belongs to 'lm'"):
        register_family(toy_family(config_class=KelmLMConfig, model_class=KelmLMForMultipleChoice))
    assert "toy" not in family_names()


def test_a_new_family_is_one_record(toy: ModelFamily, tmp_path: Path) -> None:
    """Registered, the family trains with ``model.type: toy`` (its examples carry the entities
    its ``needs`` ask for) and loads back as itself."""
    from kelm.training.runs import load_run_model, predict_run

    run = train_run(tmp_path, "toy", epochs=1)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "toy" and metrics["data"]["train_entities"] > 0
    model, _, family = load_run_model(run)
    assert family is toy and isinstance(model, ToyForMultipleChoice)
    from kelm.pipeline import read_items

    items = read_items(tmp_path / "qa.jsonl", need_answers=False)[:2]
    predictions = predict_run(run, items)
    assert predictions.model_type == "toy" and len(predictions.logits) == 2

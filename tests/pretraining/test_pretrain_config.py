"""The pretraining config's value ranges (declared with the fields, objective options
included) and the run kind: no model is trained here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kelm.config import dump_config, unbounded_numbers
from kelm.errors import KelmError
from kelm.pretraining.config import load_pretrain_config
from kelm.pretraining.objectives import get_objective, objective_names
from kelm.training.config import QADataConfig, TrainConfig


def test_every_numeric_option_has_a_declared_range() -> None:
    from kelm.pretraining.config import PretrainConfig

    assert unbounded_numbers(PretrainConfig) == []
    for name in objective_names():
        assert unbounded_numbers(get_objective(name).Options) == [], name


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"corpus": {"paths": [str(tmp_path)]}}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seed=-1"], "seed must be in [0, 2**32), got -1"),
        (["optim.lr=.inf"], "optim.lr must be > 0, got inf"),
        (["optim.max_grad_norm=-1"], "optim.max_grad_norm must be > 0 (null: no clipping), got -1"),
        (["optim.betas=[2,3]"], "optim.betas must be in [0, 1), got 2"),
        (["masking.probability=1"], "masking.probability must be in (0, 1), got 1"),
        (["eval_batch_size=0"], "eval_batch_size must be >= 1, got 0"),
        (["data.holdout=-0.1"], "data.holdout must be in [0, 1), got -0.1"),
        (
            ["objective_options.nsp_probability=2"],
            "objective_options.nsp_probability must be in [0, 1], got 2",
        ),
        (
            ["objective=distill", "objective_options.temperature=0"],
            "objective_options.temperature must be > 0, got 0",
        ),
        (
            ["objective=rtd", "objective_options.generator_fraction=0"],
            "objective_options.generator_fraction must be in (0, 1], got 0",
        ),
        (
            ["objective=ernie", "knowledge.index=x", "objective_options.entity_dropout=1"],
            "objective_options.entity_dropout must be in [0, 1), got 1",
        ),
    ],
)
def test_out_of_range_values_name_the_key(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(KelmError) as err:
        load_pretrain_config(_config(tmp_path), overrides)
    assert str(err.value) == f"config: {message}"


def test_a_training_run_is_named_as_such(tmp_path: Path) -> None:
    run = tmp_path / "run"
    dump_config(TrainConfig(data=QADataConfig(train="qa.jsonl")), run / "config.resolved.yaml")
    with pytest.raises(KelmError) as err:
        load_pretrain_config(run / "config.resolved.yaml")
    assert str(err.value) == (
        f"{run}: a `kelm train` run directory, not a `kelm pretrain` run (its config has "
        "epochs and distill)"
    )

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kelm.config import dump_config, load_config
from kelm.errors import KelmError


@dataclass
class Optim:
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Cfg:
    name: str = "run"
    seed: int = 0
    frozen: bool = False
    out: Path | None = None
    optim: Optim = field(default_factory=Optim)


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: a\noptim:\n  lr: 0.1\n")
    cfg = load_config(Cfg, path, ["optim.lr=2e-5", "seed=3", "out=runs/x", "frozen=true"])
    assert cfg.name == "a" and cfg.seed == 3 and cfg.frozen is True
    assert cfg.optim.lr == pytest.approx(2e-5) and cfg.out == Path("runs/x")
    dump_config(cfg, tmp_path / "resolved.yaml")
    back = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    assert back["optim"] == {"lr": 2e-5, "betas": [0.9, 0.999]} and back["out"] == "runs/x"
    assert load_config(Cfg, tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["optim.momentum=0.9"],
            "unknown key 'optim.momentum' (valid keys: optim.lr, optim.betas)",
        ),
        (["nosuch=1"], "unknown key 'nosuch'"),
        (["seed=abc"], "'seed' must be int"),
        (["frozen=3"], "'frozen' must be true or false"),
        (["optim=3"], "'optim' must be a section"),
        (["seed"], "must look like key.sub=value"),
    ],
)
def test_bad_keys_and_values(overrides: list[str], message: str) -> None:
    with pytest.raises(KelmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(Cfg, None, overrides)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(KelmError, match="not found"):
        load_config(Cfg, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(KelmError, match="invalid YAML"):
        load_config(Cfg, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(KelmError, match="must be a mapping"):
        load_config(Cfg, listy)

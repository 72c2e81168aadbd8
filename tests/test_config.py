from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kelm.config import (
    MAX_CONFIG_BYTES,
    SEED_LIMIT,
    bounded,
    check_bounds,
    dump_config,
    load_config,
    unbounded_numbers,
)
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
    with pytest.raises(KelmError, match="none.yaml: no such file \\(the config file\\)"):
        load_config(Cfg, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(KelmError, match="invalid YAML"):
        load_config(Cfg, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(KelmError, match="must be a mapping"):
        load_config(Cfg, listy)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"seed: 1\nname: caf\xe9\n", "the config file is not UTF-8 text (byte 0xe9 at offset 17)"),
        (b"seed: \x00\x01\x02\x03", "invalid YAML (unacceptable character #x0000"),
        (b"[" * 5000, "invalid YAML"),
        (b"1: 2\n", "unknown key '1'"),
    ],
)
def test_unreadable_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(KelmError) as err:
        load_config(Cfg, path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(KelmError, match="is a directory, not a config file"):
        load_config(Cfg, tmp_path)
    with pytest.raises(KelmError, match="/dev/zero: not a regular file"):
        load_config(Cfg, "/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")
    with pytest.raises(KelmError, match="big.yaml: 1,048,579 bytes is too large for a config file"):
        load_config(Cfg, big)


@pytest.mark.parametrize("item", ["seed=[1,{", "optim.betas=[0.9", "name={a: [}"])
def test_set_values_that_are_not_yaml_name_the_item(item: str) -> None:
    with pytest.raises(KelmError) as err:
        load_config(Cfg, None, [item])
    assert str(err.value).startswith(f"--set {item!r}: invalid YAML (")
    assert "\n" not in str(err.value)


@dataclass
class Ranged:
    seed: int = bounded(0, ge=0, lt=SEED_LIMIT)
    lr: float = bounded(1e-3, gt=0)
    dropout: float = bounded(0.1, ge=0, lt=1)
    limit: int | None = bounded(None, ge=1, note="null: all")
    betas: list[float] = bounded(factory=lambda: [0.9, 0.999], ge=0, lt=1)
    hops: int = bounded(2, ge=1, le=5)
    free: float = 1.0
    optim: Optim = field(default_factory=Optim)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "config: seed must be in [0, 2**32), got -1"),
        ("seed=4294967296", "config: seed must be in [0, 2**32), got 4294967296"),
        ("lr=0", "config: lr must be > 0, got 0"),
        ("lr=.inf", "config: lr must be > 0, got inf"),
        ("lr=.nan", "config: lr must be > 0, got nan"),
        ("dropout=1", "config: dropout must be in [0, 1), got 1"),
        ("limit=0", "config: limit must be >= 1 (null: all), got 0"),
        ("betas=[0.9, 2]", "config: betas must be in [0, 1), got 2"),
        ("hops=6", "config: hops must be in [1, 5], got 6"),
        ("free=-.inf", "config: free must be a finite number, got -inf"),
        ("optim.lr=.nan", "config: optim.lr must be a finite number, got nan"),
    ],
)
def test_bounds_name_the_key_the_range_and_the_value(override: str, message: str) -> None:
    cfg = load_config(Ranged, None, [override])
    with pytest.raises(KelmError) as err:
        check_bounds(cfg)
    assert str(err.value) == message


def test_values_in_range_and_null_pass() -> None:
    check_bounds(load_config(Ranged, None, ["seed=4294967295", "limit=null", "dropout=0"]))
    assert unbounded_numbers(Ranged) == ["free", "optim.lr", "optim.betas"]


def test_aliases_of_lists_are_refused_and_of_values_allowed(tmp_path: Path) -> None:
    """Nested aliases are a few hundred bytes that expand to billions of values when the
    config is copied (dump_config hung on one)."""
    lines = ["optim:", "  lr: &lr 0.5", "nest:", "  l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(KelmError) as err:
        load_config(Cfg, bomb)
    assert str(err.value) == (
        f"{bomb}:5: invalid YAML (an alias of a list or mapping (*l0) is not allowed in a config)"
    )
    values = tmp_path / "values.yaml"
    values.write_text("seed: &s 7\noptim:\n  lr: *s\n")
    cfg = load_config(Cfg, values)
    assert cfg.seed == 7 and cfg.optim.lr == 7.0

"""``kelm embed-kg --config FILE.yaml --set key=value``: the YAML holds the KGEConfig settings;
defaults < YAML < --set < flags given on the command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cli_fixtures import REPO, assert_one_line_error, invoke, tiny_graph
from typer.main import get_command

from kelm.cli import app
from kelm.config import load_config
from kelm.kge import train as kge_train
from kelm.kge.train import EmbedReport, KGEConfig


@pytest.fixture()
def graph(tmp_path: Path) -> Path:
    return tiny_graph(tmp_path)


@pytest.fixture()
def captured(monkeypatch) -> list[KGEConfig]:
    """The config `kelm embed-kg` passes to the library (which then trains nothing)."""
    seen: list[KGEConfig] = []

    def fake_embed_kg(graph, out, config, **kwargs):
        seen.append(config)
        return EmbedReport(Path(out), {}, {}, [], 0.0, 0.0)

    monkeypatch.setattr(kge_train, "embed_kg", fake_embed_kg)
    return seen


def config_of(tmp_path: Path, captured: list, *args) -> KGEConfig:
    result = invoke("embed-kg", "-g", tmp_path / "g", "-o", tmp_path / "o", *args)
    assert result.exit_code == 0, result.output
    return captured[-1]


def test_flag_defaults_are_the_dataclass_defaults() -> None:
    params = {p.name: p for p in get_command(app).commands["embed-kg"].params}
    fields = [f for f in dataclasses.fields(KGEConfig) if f.name != "p_norm"]  # YAML only
    for field in fields:
        assert params[field.name].default == field.default, field.name


def test_yaml_config_equals_the_same_flags(graph: Path, tmp_path: Path) -> None:
    flags = ("--model", "transe", "--dim", "4", "--epochs", "1", "--negatives", "2", "--seed", "3")
    common = ("embed-kg", "--graph", graph, "--no-progress", "--json")
    result = invoke(*common, "--out", tmp_path / "flags", *flags)
    assert result.exit_code == 0, result.output
    by_flags = json.loads(result.output)
    yaml = tmp_path / "k.yaml"
    yaml.write_text("model: transe\ndim: 4\nepochs: 1\nnegatives: 2\nseed: 3\n")
    result = invoke(*common, "--out", tmp_path / "yaml", "--config", yaml)
    assert result.exit_code == 0, result.output
    by_yaml = json.loads(result.output)
    shown = ("model", "dim", "epochs")
    assert [by_yaml[k] for k in shown] == [by_flags[k] for k in shown] == ["transe", 4, 1]
    # every setting the manifest records is the same
    manifests = [
        json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("flags", "yaml")
    ]
    assert manifests[0]["options"] == manifests[1]["options"]


def test_set_overrides_yaml_and_flags_override_set(tmp_path: Path, captured) -> None:
    yaml = tmp_path / "k.yaml"
    yaml.write_text("model: rotate\ndim: 8\nepochs: 2\nlr: 0.01\np_norm: 2\n")
    config = config_of(tmp_path, captured, "--config", yaml)
    assert config == KGEConfig(model="rotate", dim=8, epochs=2, lr=0.01, p_norm=2.0)
    config = config_of(tmp_path, captured, "-c", yaml, "--set", "dim=16", "--set", "lr=2e-3")
    assert (config.dim, config.lr, config.epochs) == (16, 0.002, 2)
    # a flag given on the command line wins, even at its default value
    config = config_of(tmp_path, captured, "-c", yaml, "--set", "dim=16", "--dim", "100")
    assert config.dim == 100 and config.model == "rotate"
    assert config_of(tmp_path, captured, "--set", "threads=2").threads == 2


@pytest.mark.parametrize(
    ("yaml", "args", "message"),
    [
        ("modle: transe\n", [], "unknown key 'modle'"),
        ("epochs: many\n", [], "'epochs' must be int"),
        (None, ["--set", "valid=x.txt"], "unknown key 'valid'"),
        ("model: bert\n", [], "unknown --model 'bert'"),
    ],
)
def test_bad_config_is_one_line(graph: Path, tmp_path: Path, yaml, args, message) -> None:
    if yaml is not None:
        (tmp_path / "k.yaml").write_text(yaml)
        args = ["--config", tmp_path / "k.yaml", *args]
    out = tmp_path / "emb"
    result = invoke("embed-kg", "-g", graph, "-o", out, "--no-progress", *args)
    assert_one_line_error(result, message)
    assert not out.exists()


def test_example_config_is_the_readme_command() -> None:
    config = load_config(KGEConfig, REPO / "configs/embed-kg-cn100k.yaml").validate()
    assert config == KGEConfig(model="distmult", dim=100, epochs=30)

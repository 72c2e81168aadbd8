"""Training config (env expansion, unknown keys, shipped configs) and the data layer (reading,
splitting, collation) on tiny inputs; no model is trained here (the batch order:
tests/engine/test_batching.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from training_fixtures import QUESTIONS, qa_record, write_config, write_qa

from kelm.config import RUN_KINDS, dump_config, expand_env, unbounded_numbers
from kelm.data.qa import Choice, QAItem
from kelm.errors import InputError, KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pipeline import Collator, Example, read_items, split_items
from kelm.pipeline.examples import empty_graph
from kelm.pretraining.config import CorpusConfig, PretrainConfig
from kelm.training.config import TrainConfig, load_train_config

REPO = Path(__file__).resolve().parents[2]


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KELM_X", "/data/x")
    monkeypatch.delenv("KELM_MISSING", raising=False)
    assert expand_env("${KELM_X}/qa.jsonl") == "/data/x/qa.jsonl"
    assert expand_env("${KELM_MISSING:-fallback}/a") == "fallback/a"
    with pytest.raises(KelmError, match="KELM_MISSING is not set"):
        expand_env("${KELM_MISSING}/a")
    monkeypatch.delenv("KELM_DATA", raising=False)
    assert expand_env("${KELM_DATA}/qa").endswith("/qa")  # falls back to the data directory


def test_shipped_configs_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KELM_DATA", str(tmp_path))
    for name in ("lm", "kagnet", "qagnn", "gsc", "ernie"):
        cfg = load_train_config(REPO / "configs" / f"csqa-{name}.yaml", ["seed=4"])
        assert cfg.model.type == name and cfg.seed == 4
        assert cfg.data.train == f"{tmp_path}/qa/csqa/train_rand_split_v1.0.jsonl"
        assert cfg.data.holdout == pytest.approx(0.1)
        if name != "lm":
            assert cfg.graph.source == f"{tmp_path}/kg/conceptnet100k/train.txt"


def test_unknown_key_names_it_and_lists_valid_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", {"data": {"train": "x.jsonl"}})
    listed = r"unknown key 'optim.lr' \(valid keys: optim\.\w+.*optim.lm_lr"
    with pytest.raises(KelmError, match=listed):
        load_train_config(path, ["optim.lr=1e-3"])
    with pytest.raises(KelmError, match=r"data.holdout must be in \[0, 1\), got 1.5"):
        load_train_config(path, ["data.holdout=1.5"])
    with pytest.raises(KelmError, match="needs a graph"):
        load_train_config(path, ["model.type=qagnn"])
    with pytest.raises(KelmError, match="'data.train'"):
        load_train_config(None, [])


def test_read_items_checks(tmp_path: Path) -> None:
    records = [qa_record(i, s, c, a) for i, (s, c, a) in enumerate(QUESTIONS[:3])]
    good = write_qa(tmp_path / "good.jsonl", records)
    assert [i.id for i in read_items(good, need_answers=True)] == ["q0", "q1", "q2"]
    dup = write_qa(tmp_path / "dup.jsonl", [*records, records[1]])
    with pytest.raises(InputError, match="duplicate id 'q1'"):
        read_items(dup, need_answers=False)
    unlabelled = write_qa(tmp_path / "nokey.jsonl", [*records, qa_record(7, "a", ["b", "c"], None)])
    assert read_items(unlabelled, need_answers=False)[-1].answer is None
    with pytest.raises(InputError, match="'q7'.*no answer key"):
        read_items(unlabelled, need_answers=True)


def test_split_is_seeded_disjoint_and_complete() -> None:
    items = [QAItem(f"q{i}", "?", [Choice("A", "a")], "A") for i in range(50)]
    train, held = split_items(items, 0.1, split_seed=7)
    assert len(held) == 5 and len(train) == 45
    assert {i.id for i in train}.isdisjoint({i.id for i in held})
    again, held_again = split_items(items, 0.1, split_seed=7)
    assert held_again == held and again == train
    assert split_items(items, 0.1, split_seed=8)[1] != held
    subset, held_sub = split_items(items, 0.1, split_seed=7, max_train=10)
    assert held_sub == held and len(subset) == 10
    assert {i.id for i in subset} <= {i.id for i in train}


def _example(num_choices: int, label: int, with_graph: bool = True) -> Example:
    graphs = [empty_graph() for _ in range(num_choices)] if with_graph else None
    return Example(
        id=f"x{num_choices}",
        labels=list("ABCD"[:num_choices]),
        input_ids=[[2] + [5 + j] * (j + 1) + [3] for j in range(num_choices)],
        token_type_ids=[[0] * (j + 3) for j in range(num_choices)],
        label=label,
        graphs=graphs,
        paths=[[([1, 2], [0])] for _ in range(num_choices)],
    )


def test_collator_pads_choices_tokens_graphs_and_paths() -> None:
    batch = Collator(pad_token_id=0, max_hops=2, max_paths=3)(
        [_example(2, 1), _example(4, IGNORE_INDEX)]
    )
    assert batch["input_ids"].shape == (2, 4, 6)  # B, C, L
    assert batch["choice_mask"].tolist() == [[True, True, False, False], [True] * 4]
    assert batch["labels"].tolist() == [1, IGNORE_INDEX]
    assert torch.equal(batch["input_ids"][0, 2], batch["input_ids"][0, 0])  # padding choice
    assert batch["attention_mask"][1, 3].sum() == 6
    assert batch["graphs"].num_graphs == 8
    assert batch["path_nodes"].shape == (8, 1, 3) and batch["path_rels"].shape == (8, 1, 2)


def test_every_numeric_option_has_a_declared_range() -> None:
    assert unbounded_numbers(TrainConfig) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # values that passed validation and then failed in torch or numpy
        ("model.classifier_dropout=5", "model.classifier_dropout must be in [0, 1), got 5"),
        ("seed=-1", "seed must be in [0, 2**32), got -1"),
        ("optim.betas=[2,3]", "optim.betas must be in [0, 1), got 2"),
        # values that trained silently wrong
        ("optim.max_grad_norm=-1", "optim.max_grad_norm must be > 0 (null: no clipping), got -1"),
        ("optim.lm_lr=.inf", "optim.lm_lr must be > 0, got inf"),
        ("optim.gnn_lr=0", "optim.gnn_lr must be > 0, got 0"),
        ("optim.eps=0", "optim.eps must be > 0, got 0"),
        ("optim.weight_decay=-0.1", "optim.weight_decay must be >= 0, got -0.1"),
        (
            "optim.gnn_weight_decay=-1",
            "optim.gnn_weight_decay must be >= 0 (null: weight_decay), got -1",
        ),
        ("model.gnn_dropout=1", "model.gnn_dropout must be in [0, 1), got 1"),
        ("model.gnn_layers=0", "model.gnn_layers must be >= 1, got 0"),
        ("model.lm_loss_weight=.nan", "model.lm_loss_weight must be >= 0, got nan"),
        ("data.split_seed=4294967296", "data.split_seed must be in [0, 2**32), got 4294967296"),
        ("distill.temperature=0", "distill.temperature must be > 0, got 0"),
        ("optim.betas=[0.9]", "optim.betas must be a list of two numbers"),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    path = write_config(tmp_path / "c.yaml", {"data": {"train": "x.jsonl"}})
    with pytest.raises(KelmError) as err:
        load_train_config(path, [override])
    assert str(err.value) == f"config: {message}"


def test_run_kinds_match_the_config_classes() -> None:
    """The keys that tell a `kelm pretrain` run from a `kelm train` one are top-level keys of
    one config class and not of the other."""
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    pretrain = {f.name for f in dataclasses.fields(PretrainConfig)}
    assert set(RUN_KINDS["kelm train"]) <= train - pretrain
    assert set(RUN_KINDS["kelm pretrain"]) <= pretrain - train
    assert TrainConfig.command == "kelm train" and PretrainConfig.command == "kelm pretrain"


def test_a_pretraining_config_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    dump_config(PretrainConfig(corpus=CorpusConfig(paths=["x"])), path)
    with pytest.raises(KelmError) as err:
        load_train_config(path)
    assert str(err.value) == (
        f"{path}: a `kelm pretrain` config, not a `kelm train` one (it has objective and corpus)"
    )


@pytest.mark.parametrize(("gnn_weight_decay", "expected"), [(None, 0.01), (0.3, 0.3)])
def test_graph_parts_take_their_own_weight_decay(
    tmp_path: Path, gnn_weight_decay: float | None, expected: float
) -> None:
    """The encoder keeps ``weight_decay``; the rest takes ``gnn_weight_decay`` when set;
    biases and norms none in either."""
    from kelm.training.loop import make_optimizer

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text_encoder = torch.nn.Linear(2, 2)
            self.head = torch.nn.Linear(2, 1)

    path = write_config(tmp_path / "c.yaml", {"data": {"train": "x.jsonl"}})
    sets = ["optim.weight_decay=0.01"]
    if gnn_weight_decay is not None:
        sets.append(f"optim.gnn_weight_decay={gnn_weight_decay}")
    optimizer = make_optimizer(Tiny(), load_train_config(path, sets))
    decay = {g["name"]: g["weight_decay"] for g in optimizer.param_groups}
    assert decay == {"lm": 0.01, "lm_no_decay": 0.0, "gnn": expected, "gnn_no_decay": 0.0}

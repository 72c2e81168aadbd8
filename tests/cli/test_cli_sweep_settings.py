"""The hostile-input sweep (see ``test_cli_sweep.py``): numbers out of range (zero, negative,
past int64, NaN and infinities) as flags and as ``--set`` values, ``--set`` values that are
not YAML or name a wrong kind of artifact, and devices or pipes where a file belongs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sweep_fixtures import Case, Inputs, case, run_case

HUGE = str(10**30)  # past int64: numpy and torch overflow on it
Q = "--no-progress"
BIG_IS_ALL = "a count larger than the input means all of it"

# ------------------------------------------------------------------------------- flags
FLAG_BASES = {
    "data-synthetic": "data synthetic --out {d}/task --train-questions 8 --test-questions 4",
    "retrieve": f"retrieve -g {{graph}} --grounded {{grounded}} -o {{d}}/r --scorer none {Q}",
    "embed-kg": f"embed-kg -g {{graph}} -o {{d}}/k --epochs 1 --dim 4 {Q}",
    "ground": f"ground -g {{graph}} --qa {{qa}} -o {{d}}/o.jsonl {Q}",
    "graph-build": f"graph build -f tsv {{graph}}/manifest.json -o {{d}}/g {Q}",
    "evaluate": f"evaluate --qa {{qa}} -m {{run}} -o {{d}}/ev {Q}",
    # the checks come before the model is loaded: it is never read
    "zero-shot": f"evaluate --zero-shot --qa {{qa}} --lm {{d}}/no-model -o {{d}}/ev {Q}",
    "zero-shot-kg": (
        "evaluate --zero-shot --qa {qa} --lm {d}/no-model -o {d}/ev --knowledge {graph} " + Q
    ),
    "probe": f"probe --run {{pretrain_run}} {Q}",
    "show": "show -g {graph} --question {question} --choice house -o {d}/x.png",
    "link": "link dog -g {graph} --mode entity",
    "train": f"train -c {{train_config}} --run-dir {{d}}/run {Q}",
    "pretrain": f"pretrain -c {{pretrain_config}} --run-dir {{d}}/run {Q}",
}
# (base, option): values refused, values that may succeed
FLAGS: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("data-synthetic", "--hops"): (["0", "3", "-1", HUGE], []),
    ("data-synthetic", "--train-questions"): (["0", "-1", HUGE], []),
    ("data-synthetic", "--test-questions"): (["0", HUGE], []),
    ("data-synthetic", "--choices"): (["1", "11", HUGE], []),
    ("data-synthetic", "--linked-distractors"): (["-1", "5", HUGE], []),
    ("data-synthetic", "--seed"): (["-1"], [HUGE]),
    ("retrieve", "--max-nodes"): (["0", "-1"], [HUGE]),
    ("retrieve", "--hops"): (["-1", "6", HUGE], []),
    ("retrieve", "--paths"): (["-1", HUGE], []),
    ("retrieve", "--shard-size"): (["0"], [HUGE]),
    ("retrieve", "--batch-size"): (["0"], [HUGE]),
    ("embed-kg", "--dim"): (["0", "70000", HUGE], []),
    ("embed-kg", "--epochs"): (["-1", HUGE], []),
    ("embed-kg", "--batch-size"): (["0"], [HUGE]),
    ("embed-kg", "--negatives"): (["0", HUGE], []),
    ("embed-kg", "--seed"): (["-1", HUGE], []),
    ("embed-kg", "--threads"): (["0", "2000", HUGE], []),
    ("embed-kg", "--lr"): (["nan", "inf", "-inf", "0", "-1"], []),
    ("embed-kg", "--margin"): (["nan", "inf", "-inf", "-1"], []),
    ("embed-kg", "--reg"): (["nan", "inf", "-1"], []),
    ("ground", "--processes"): (["0", "-1"], [HUGE]),
    ("ground", "--batch-size"): (["0"], []),
    ("ground", "--partition-size"): (["0", "-1"], []),
    ("ground", "--workers"): (["0", "-1"], []),
    ("graph-build", "--workers"): (["0", "-1"], []),
    ("graph-build", "--partition-mb"): (["0", "-1"], []),
    ("evaluate", "--batch-size"): (["0", "-1"], [HUGE]),
    ("zero-shot", "--shots"): (["-1"], []),
    ("zero-shot", "--max-length"): (["0", "1"], []),
    ("zero-shot", "--max-questions"): (["0"], []),
    ("zero-shot", "--batch-size"): (["0"], []),
    ("zero-shot-kg", "--facts"): (["-1"], []),
    ("zero-shot-kg", "--fact-hops"): (["0", "4", HUGE], []),
    ("probe", "--max-triples"): (["0", "-1"], [HUGE]),
    ("show", "--max-nodes"): (["0"], [HUGE]),
    ("show", "--hops"): (["6", HUGE], []),
    ("show", "--paths"): (["-1", HUGE], []),
    ("show", "--highlight"): (["-1"], [HUGE]),
    ("link", "--context-weight"): (["nan", "inf", "-1", "1.5"], []),
    ("link", "--context-window"): (["0", "-1", "257", HUGE], []),
    ("train", "--stop-after-epochs"): (["0", "-1"], []),
    ("pretrain", "--stop-after-steps"): (["0", "-1"], []),
}
# Before their check, these never ended (words drawn until 10**30 distinct ones are found):
# a child process, which a time limit stops.
NEVER_ENDED = {("data-synthetic", "--train-questions"), ("data-synthetic", "--test-questions")}


def flag_case(base: str, option: str, value: str, may_succeed: str = "") -> Case:
    """``FLAG_BASES[base]`` with ``option value`` last (the last of a repeated option wins);
    the error names the option, as a flag or as the setting it fills."""
    return case(
        f"{base}{option}={'huge' if value == HUGE else value}",
        f"{FLAG_BASES[base]} {option} {value}",
        option,
        option.lstrip("-").replace("-", "_"),
        may_succeed=may_succeed,
        subprocess=(base, option) in NEVER_ENDED and value == HUGE,
    )


CASES = [flag_case(b, o, v) for (b, o), (bad, _) in FLAGS.items() for v in bad]
CASES += [flag_case(b, o, v, BIG_IS_ALL) for (b, o), (_, fine) in FLAGS.items() for v in fine]

# ---------------------------------------------------------------------------- --set values
SET_BASES = {
    # no --scorer flag: a flag given on the command line overrides the --set value
    "retrieve": f"retrieve -g {{graph}} --grounded {{grounded}} -o {{d}}/r --set scorer=none {Q}",
    "embed-kg": f"embed-kg -g {{graph}} -o {{d}}/k --set epochs=1 --set dim=4 {Q}",
    "train": FLAG_BASES["train"],
    "pretrain": FLAG_BASES["pretrain"],
}
# base: [(--set item, what the error names)]
SETS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "retrieve": [
        ("max_nodes=0", ("max-nodes", "max_nodes")),
        ("hops=99", ("hops",)),
        ("paths=-1", ("paths",)),
        (f"paths={HUGE}", ("paths",)),
        ("shard_size=0", ("shard-size", "shard_size")),
        ("scorer=bm25", ("scorer",)),
        ("hops=1.5", ("hops",)),
        ("max_nodes=.inf", ("max_nodes",)),
        ("context=maybe", ("context",)),
        ("colour=red", ("colour",)),
        ("hops", ("hops",)),
        ("kge={graph}", ("graph",)),
        ("hops=[1,{{", ("hops",)),
    ],
    "embed-kg": [
        ("dim=0", ("dim",)),
        (f"dim={HUGE}", ("dim",)),
        ("epochs=-1", ("epochs",)),
        ("lr=.inf", ("lr",)),
        ("margin=-1", ("margin",)),
        ("reg=-1", ("reg",)),
        ("reg=.nan", ("reg",)),
        ("p_norm=3", ("p-norm", "p_norm")),
        ("seed=-1", ("seed",)),
        (f"threads={HUGE}", ("threads",)),
        ("negatives=0", ("negatives",)),
        ("model=bogus", ("model",)),
        ("epochs=[1,{{", ("epochs",)),
    ],
    "train": [
        ("epochs=0", ("epochs",)),
        ("batch_size=0", ("batch_size",)),
        ("optim.lm_lr=-1", ("optim.lm_lr",)),
        ("data.holdout=1.5", ("data.holdout",)),
        ("data.max_length=0", ("data.max_length",)),
        ("graph.hops=99", ("graph.hops",)),
        ("graph.max_nodes=0", ("graph.max_nodes",)),
        ("model.classifier_dropout=5", ("classifier_dropout",)),
        ("optim.lm_lr=.inf", ("optim.lm_lr",)),
        ("optim.max_grad_norm=-1", ("optim.max_grad_norm",)),
        ("seed=-1", ("seed",)),
        (f"seed={HUGE}", ("seed",)),
        ("optim.betas=[2,3]", ("optim.betas",)),
        ("epochs=[1,{{", ("epochs",)),
        ("model.encoder={run}", ("run-lm",)),
        ("model.encoder={graph}", ("graph",)),
    ],
    "pretrain": [
        ("max_steps=0", ("max_steps",)),
        ("batch_size=-1", ("batch_size",)),
        ("optim.lr=.nan", ("optim.lr",)),
        ("data.holdout=2", ("data.holdout",)),
        ("objective=bogus", ("objective",)),
        ("max_steps=[1,{{", ("max_steps",)),
        ("seed=-1", ("seed",)),
        ("data.max_length=100000", ("data.max_length",)),
        ("model.encoder={pretrain_run}", ("run-mlm",)),
        ("model.encoder={graph}", ("graph",)),
    ],
}


def set_case(base: str, item: str, names: tuple[str, ...], **kw: Any) -> Case:
    shown = item.replace(HUGE, "huge").replace("{{", "{").replace("{", "").replace("}", "")
    return case(f"{base}--set-{shown}", f"{SET_BASES[base]} --set {item}", *names, **kw)


CASES += [set_case(base, item, names) for base, items in SETS.items() for item, names in items]
# 100000 threads brought the whole process down (the tokenizer's thread pool): a child process.
CASES += [set_case("train", "threads=100000", ("threads",), subprocess=True)]


# ------------------------------------------------------------------- devices and pipes
def _fifo(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
    """A pipe of the case's own where an output file goes: the atomic rename replaced it (as
    root, ``-o /dev/null`` replaced the device by a regular file; the pipe stands in for it,
    so that the case damages nothing when it fails)."""
    os.mkfifo(folder / "out.fifo")
    return {"fifo": folder / "out.fifo"}


CASES += [
    # /dev/zero never ends: before the check it was read until memory ran out (a child
    # process, under a memory limit)
    case("relation-map-dev-zero", "graph build {fixtures}/conceptnet/good.csv --relation-map "
         f"/dev/zero -o {{d}}/g {Q}", "/dev/zero", subprocess=True),
    case("probe-templates-dev-zero", f"probe --run {{pretrain_run}} --templates /dev/zero {Q}",
         "/dev/zero", subprocess=True),
    case("ground-out-a-pipe", f"ground -g {{graph}} --qa {{qa}} -o {{fifo}} {Q}", "{fifo}",
         values=_fifo),
    case("graph-export-out-a-pipe", "graph export {graph} --to edgelist -o {fifo}", "{fifo}",
         values=_fifo),
    case("show-out-a-pipe", "show -g {graph} --question {question} --choice house -o {fifo}",
         "{fifo}", values=_fifo),
]  # fmt: skip


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_settings(case: Case, sweep_inputs: Inputs, tmp_path: Path) -> None:
    run_case(case, sweep_inputs, tmp_path)

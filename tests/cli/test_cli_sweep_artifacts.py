"""The hostile-input sweep (see ``test_cli_sweep.py``): artifact directories where a command
reads one (graph index, KG embeddings, grounded file, training and pretraining runs,
evaluations): another kind of artifact, a file, an empty or missing directory, a copy with a
random bit flipped (by a seeded RNG), a damaged manifest, a damaged file of a run."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sweep_fixtures import (
    MUTATIONS,
    Case,
    Inputs,
    case,
    copy_artifact,
    flip_in,
    flipped,
    random_bytes,
    rng_for,
    run_case,
    truncated,
)

Q = "--no-progress"
Values = Callable[[Inputs, Path, str], dict[str, Any]]


def _own(name: str) -> Values:
    """The inputs' own artifact ``name`` (another kind than the one the command reads)."""
    return lambda inputs, folder, case_id: {"x": getattr(inputs, name)}


def _copy(name: str, damage: Callable[[Path, random.Random], Any] | None = None) -> Values:
    """A copy of the inputs' artifact ``name``, damaged by ``damage(copy, rng)``."""

    def make(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
        copy = copy_artifact(getattr(inputs, name), folder / f"{name}-copy")
        if damage is not None:
            damage(copy, rng_for(case_id))
        return {"x": copy}

    return make


def _empty_dir(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
    (folder / "empty").mkdir()
    return {"x": folder / "empty"}


def _file(name: str, change: Callable[[bytes, random.Random], bytes] | str) -> Callable:
    """A damage: the file ``name`` changed (a :data:`MUTATIONS` kind, or ``deleted``)."""

    def damage(copy: Path, rng: random.Random) -> None:
        file = copy / name
        if change == "deleted":
            file.unlink()
        else:
            fn = MUTATIONS[change] if isinstance(change, str) else change
            file.write_bytes(fn(file.read_bytes(), rng))

    return damage


def _flip(copy: Path, rng: random.Random) -> None:
    flip_in(copy, rng)


WRONG_KINDS: dict[str, Values] = {
    "a-file": _own("graph_tsv"),
    "empty-dir": _empty_dir,
    "missing": lambda inputs, folder, case_id: {"x": folder / "missing"},
}
OTHERS = ("graph", "kge", "retrieval", "run", "pretrain_run", "evaluation")


def artifact_cases(consumers: dict[str, str], own: str, flips: int) -> list[Case]:
    """Every consumer (``{x}``: the artifact) given each wrong kind, each other artifact, a
    copy with a random bit flipped (``flips`` seeds) or with a damaged manifest."""
    variants: dict[str, Values] = {**WRONG_KINDS}
    variants.update({f"given-{other}": _own(other) for other in OTHERS if other != own})
    variants.update({f"flip{n}": _copy(own, _flip) for n in range(flips)})
    variants["manifest-binary"] = _copy(own, _file("manifest.json", "binary"))
    variants["manifest-truncated"] = _copy(own, _file("manifest.json", truncated))
    variants["manifest-a-list"] = _copy(own, _file("manifest.json", lambda b, rng: b"[1, 2]"))
    return [
        case(f"{name}-{variant}", template, "{x}", values=make)
        for name, template in consumers.items()
        for variant, make in variants.items()
    ]


SHOW = "show -g {graph} --question {question} --choice house -o {d}/x.png"
RETRIEVE = "retrieve -g {graph} --grounded {grounded} -o {d}/r --scorer none"
GRAPH_CONSUMERS = {
    "graph-info": "graph info {x}",
    "graph-export": "graph export {x} --to edgelist -o {d}/e.tsv",
    "link": "link dog -g {x}",
    "ground": f"ground -g {{x}} --qa {{qa}} -o {{d}}/o.jsonl {Q}",
    "retrieve": f"retrieve -g {{x}} --grounded {{grounded}} -o {{d}}/r --scorer none {Q}",
    "embed-kg": f"embed-kg -g {{x}} -o {{d}}/k --epochs 1 {Q}",
    "show": "show -g {x} --question {question} --choice house -o {d}/x.png",
}
KGE_CONSUMERS = {
    "retrieve-kge": f"{RETRIEVE} --kge {{x}} {Q}",
    "show-kge": f"{SHOW} --kge {{x}}",
}
CASES = artifact_cases(GRAPH_CONSUMERS, "graph", flips=2)
CASES += artifact_cases(KGE_CONSUMERS, "kge", flips=2)


# --------------------------------------------------------------------------------- runs
def _flip_checkpoint(copy: Path, rng: random.Random) -> None:
    (checkpoint,) = (copy / "checkpoints").iterdir()
    flip_in(checkpoint, rng, pick=rng.choice(["model.safetensors", "trainer_state.json"]))


def run_cases(consumers: dict[str, str], own: str, other: str, model: dict[str, str]) -> list:
    """Every consumer of a run (``{x}``) given the other command's run (which the error names
    as such), another kind, a damaged ``config.resolved.yaml``, and (to read) a damaged
    ``model/`` file (also one with a random bit flipped, which only the model's file manifest
    tells) or (to resume) a checkpoint with a bit flipped. A command that resumes writes into
    the run: it gets copies."""
    cases = []
    for name, template in consumers.items():
        resume = "resume" in name
        mine = _copy if resume else _own
        kind = "`kelm pretrain` run" if other == "pretrain_run" else "`kelm train` run"
        given = {"a-file": WRONG_KINDS["a-file"], "empty-dir": _empty_dir}
        given.update({f"given-{n}": mine(n) for n in ("graph", "kge")})
        for variant, make in given.items():
            cases.append(case(f"{name}-{variant}", template, "{x}", values=make))
        cases.append(case(f"{name}-given-{other}", template, kind, values=mine(other)))
        damages = {
            f"config-{change}": _file("config.resolved.yaml", change)
            for change in ("binary", "non-utf8", "long-line")
        }
        if resume:
            damages["checkpoint-flip"] = _flip_checkpoint
        else:
            for file, changes in model.items():
                for change in changes.split():
                    damages[f"{file.replace('/', '-')}-{change}"] = _file(file, change)
        for variant, damage in damages.items():
            cases.append(case(f"{name}-{variant}", template, "{x}", values=_copy(own, damage)))
        if not resume:  # a bit flipped inside a weight or a setting: readable, but not the model
            for file in ("model.safetensors", "config.json"):
                damage = _file(f"model/{file}", flipped)
                cases.append(
                    case(f"{name}-model-{file}-flip", template, file, values=_copy(own, damage))
                )
    return cases


CASES += run_cases(
    {"evaluate-model": f"evaluate --qa {{qa}} -m {{x}} -o {{d}}/ev {Q}",
     "train-resume": f"train --resume --run-dir {{x}} {Q}"},
    "run",
    "pretrain_run",
    {"model/config.json": "binary truncated deleted", "model/model.safetensors": "binary empty",
     "model/tokenizer.json": "truncated"},
)  # fmt: skip
CASES += run_cases(
    {"probe-run": f"probe --run {{x}} {Q}",
     "pretrain-resume": f"pretrain --resume --run-dir {{x}} {Q}"},
    "pretrain_run",
    "run",
    {"model/config.json": "binary deleted", "model/model.safetensors": "binary truncated empty",
     "model/tokenizer.json": "truncated"},
)  # fmt: skip
CASES += [
    case(f"compare-{variant}", "compare {run} {x}", "{x}", values=make)
    for variant, make in {
        **WRONG_KINDS,
        **{f"given-{n}": _own(n) for n in ("graph", "kge", "retrieval")},
        **{f"metrics-{k}": _copy("evaluation", _file("metrics.json", k))
           for k in ("empty", "binary", "truncated", "long-line")},
    }.items()
]  # fmt: skip


# ------------------------------------------------------------------------ grounded files
def _grounded(change: str) -> Values:
    """``kelm ground``'s output (with its sidecar manifest), copied and damaged: ``flip`` and
    ``cut`` the file, ``manifest-*`` its sidecar, ``partial`` an unfinished grounding's name."""

    def make(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
        copy = copy_artifact(inputs.grounded, folder / "grounded.jsonl")
        manifest, rng = copy.with_name(copy.name + ".manifest.json"), rng_for(case_id)
        if change == "flip":
            copy.write_bytes(flipped(copy.read_bytes(), rng))
        elif change == "cut":
            copy.write_bytes(truncated(copy.read_bytes(), rng))
        elif change == "manifest-binary":
            manifest.write_bytes(random_bytes(rng))
        elif change == "manifest-truncated":
            manifest.write_bytes(truncated(manifest.read_bytes(), rng))
        elif change == "partial":
            copy = copy.rename(copy.with_name(copy.name + ".partial"))
        return {"x": copy}

    return make


GROUNDED = "retrieve -g {graph} --grounded {x} -o {d}/r --scorer none " + Q
CASES += [case(f"grounded-flip{n}", GROUNDED, "{x}", values=_grounded("flip")) for n in range(3)]
CASES += [case(f"grounded-cut{n}", GROUNDED, "{x}", values=_grounded("cut")) for n in range(2)]
CASES += [
    case(f"grounded-{change}", GROUNDED, "{x}", values=_grounded(change))
    for change in ("manifest-binary", "manifest-truncated", "partial")
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_artifacts(case: Case, sweep_inputs: Inputs, tmp_path: Path) -> None:
    run_case(case, sweep_inputs, tmp_path)

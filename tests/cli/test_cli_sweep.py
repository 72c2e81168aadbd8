"""The hostile-input sweep over every ``kelm`` command (issue 16): each case gives a command
a malformed, empty, binary, non-UTF-8, oversized or wrong-kind input, or a setting out of
range, and the command must exit with status 2 and one ``error: ...`` line on stderr that
names the problem: never a traceback, never a success on a bad input. The hostile files are
generated from valid ones with a seeded RNG (random bytes, random truncation, random bit
flips, a stray 0xff byte, an oversized line), so the same kinds of inputs are tried on files
that are not in this repository.

This file: the input files and text arguments of every command, and the check that every
command has cases; ``test_cli_sweep_artifacts.py``: artifact directories;
``test_cli_sweep_settings.py``: numbers, ``--set`` values, devices and pipes. The inputs,
the hostile variants and the checks are in :mod:`sweep_fixtures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_cli_sweep_artifacts
import test_cli_sweep_settings
from sweep_fixtures import (
    FIXTURES,
    MUTATIONS,
    Case,
    Inputs,
    case,
    command_line,
    copy_artifact,
    random_bytes,
    rng_for,
    run_case,
    write_variant,
)
from typer.main import get_command

from kelm.cli import app

LINE = "a line cut short can still be a record of this line format"
XML_TEXT = "a line of letters between two XML elements is text XML allows"
YAML_EMPTY = "an empty YAML file is the defaults"
Q = "--no-progress"

# ---------------------------------------------------------------------------- input files
# slot: (the valid file, the command line with the bad file {bad}, variants that may succeed)
FILE_SLOTS: dict[str, tuple[str, str, dict[str, str]]] = {
    "build-tsv": ("{graph_tsv}", "graph build -f tsv --strict {bad} -o {d}/g", {"truncated": LINE}),
    "build-cn100k": ("{cn100k}", "graph build -f cn100k --strict {bad} -o {d}/g",
                     {"truncated": LINE}),
    "build-conceptnet": (
        "{fixtures}/conceptnet/good.csv",
        "graph build --strict {bad} -o {d}/g",
        {"truncated": LINE, "non-utf8": "lines of other languages are dropped before decoding"},
    ),
    "build-conceptnet-gz": ("{fixtures}/conceptnet/good.csv.gz", "graph build {bad} -o {d}/g", {}),
    "build-nt": ("{fixtures}/rdf/people.nt", "graph build -f rdf --strict {bad} -o {d}/g", {}),
    "build-ttl": ("{fixtures}/rdf/people.ttl", "graph build -f rdf {bad} -o {d}/g", {}),
    "build-relation-map": (
        "{repo}/kelm/resources/conceptnet_relations.yaml",
        "graph build {fixtures}/conceptnet/good.csv --relation-map {bad} -o {d}/g",
        {"truncated": LINE},
    ),
    "ground-csqa": ("{qa}", "ground -g {graph} --qa {bad} -o {d}/o.jsonl", {}),
    "ground-obqa": ("{fixtures}/qa/obqa.jsonl", "ground -g {graph} --qa {bad} -o {d}/o.jsonl", {}),
    "ground-copa": (
        "{fixtures}/qa/copa.xml",
        "ground -g {graph} --qa {bad} -o {d}/o.jsonl",
        {"long-line": XML_TEXT},
    ),
    "evaluate-csqa": ("{qa}", "evaluate --qa {bad} -m {run} -o {d}/ev", {}),
    "evaluate-copa": (
        "{fixtures}/qa/copa.xml",
        "evaluate --qa {bad} -m {run} -o {d}/ev",
        {"long-line": XML_TEXT},
    ),
    # a grounded file without a sidecar manifest, as another tool would write it
    "retrieve-grounded": (
        "{grounded}",
        "retrieve -g {graph} --grounded {bad} -o {d}/r --scorer none",
        {},
    ),
    "retrieve-config": (
        "{repo}/configs/retrieve-cn100k.yaml",
        "retrieve -g {graph} --grounded {grounded} -o {d}/r -c {bad} --scorer none",
        {"empty": YAML_EMPTY, "truncated": LINE},
    ),
    "embed-kg-config": (
        "{repo}/configs/embed-kg-cn100k.yaml",
        "embed-kg -g {graph} -o {d}/k -c {bad} --epochs 1 --dim 4",
        {"empty": YAML_EMPTY, "truncated": LINE},
    ),
    "embed-kg-valid": (
        "{cn100k}",
        "embed-kg -g {graph} -o {d}/k --epochs 1 --dim 4 --valid {bad}",
        {"truncated": LINE},
    ),
    "embed-kg-classify-dev": (
        "{labelled}",
        "embed-kg -g {graph} -o {d}/k --epochs 1 --dim 4 --classify-dev {bad} "
        "--classify-test {labelled}",
        {"truncated": LINE},
    ),
    "train-config": ("{train_config}", "train -c {bad} --run-dir {d}/run", {"truncated": LINE}),
    "pretrain-config": (
        "{pretrain_config}",
        "pretrain -c {bad} --run-dir {d}/run",
        {"truncated": LINE},
    ),
    "probe-triples": (
        "{probe_triples}",
        "probe --run {pretrain_run} --triples {bad}",
        {"truncated": LINE},
    ),
    "probe-templates": (
        "{repo}/kelm/resources/probe_templates.yaml",
        "probe --run {pretrain_run} --templates {bad}",
        {"truncated": LINE},
    ),
}  # fmt: skip
# An empty run config lacks its one required key, which the error names instead of the file.
EMPTY_NAMES = {"train-config": "data.train", "pretrain-config": "corpus.paths"}
KINDS = [*MUTATIONS, "directory", "missing"]


def file_case(slot: str, kind: str, subprocess: bool = False) -> Case:
    valid, template, may_succeed = FILE_SLOTS[slot]
    case_id = f"{slot}-{kind}" + ("-process" if subprocess else "")

    def bad(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
        (source,) = command_line(valid, inputs, folder)
        suffix = "".join(Path(source).suffixes)
        return {"bad": write_variant(Path(source), kind, folder / f"bad-{kind}{suffix}", case_id)}

    names = ["{bad}", *([EMPTY_NAMES[slot]] if slot in EMPTY_NAMES and kind == "empty" else [])]
    return case(
        case_id,
        f"{template} {Q}",
        *names,
        values=bad,
        may_succeed=may_succeed.get(kind, ""),
        subprocess=subprocess,
    )


def wordnet_case(kind: str) -> Case:
    """A WordNet database directory with a damaged ``data.noun``, or not a database."""

    def db(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
        if kind == "a-file":
            return {"db": inputs.graph_tsv}
        if kind == "empty-dir":
            (folder / "wordnet").mkdir()
            return {"db": folder / "wordnet"}
        copy = copy_artifact(FIXTURES / "wordnet", folder / "wordnet")
        noun = copy / "data.noun"
        noun.write_bytes(MUTATIONS[kind](noun.read_bytes(), rng_for(case_id)))
        return {"db": copy}

    template = f"graph build -f wordnet --strict {{db}} -o {{d}}/g {Q}"
    return case(f"build-wordnet-{kind}", template, "{db}", values=db)


def npy_case(option: str, kind: str) -> Case:
    """``retrieve --entity-emb / --relation-emb``: a .npy file that is not a usable table."""

    def tables(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
        files = {"entity": folder / "entity.npy", "relation": folder / "relation.npy"}
        shapes = {"entity": (14, 4), "relation": (5, 4)}
        for name, file in files.items():
            np.save(file, np.zeros(shapes[name], np.float32))
        bad, rng, shape = folder / f"bad-{kind}.npy", rng_for(case_id), shapes[option]
        if kind == "binary":
            bad.write_bytes(random_bytes(rng))
        elif kind in ("empty", "truncated"):
            data = files[option].read_bytes()
            bad.write_bytes(data[: rng.randrange(10, 120)] if kind == "truncated" else b"")
        elif kind == "directory":
            bad.mkdir()
        elif kind != "missing":
            array = {
                "pickled": lambda: np.array([{"a": 1}], dtype=object),  # never unpickled
                "one-dimensional": lambda: np.zeros(14, np.float32),
                "wrong-rows": lambda: np.zeros((3, 4), np.float32),
                "nan": lambda: np.full(shape, np.nan, np.float32),
                "strings": lambda: np.full(shape, "x"),
            }[kind]()
            np.save(bad, array, allow_pickle=kind == "pickled")
        return {**files, option: bad, "bad": bad}

    template = "retrieve -g {graph} --grounded {grounded} -o {d}/r --scorer none "
    template += f"--entity-emb {{entity}} --relation-emb {{relation}} {Q}"
    return case(f"retrieve-{option}-emb-{kind}", template, "{bad}", values=tables)


NPY_KINDS = ["empty", "binary", "truncated", "pickled", "one-dimensional", "wrong-rows", "nan"]
NPY_KINDS += ["strings", "directory", "missing"]
WORDNET_KINDS = ["binary", "truncated", "non-utf8", "long-line", "a-file", "empty-dir"]
FILES = [file_case(slot, kind) for slot in FILE_SLOTS for kind in KINDS]
# On the real stderr, where kelm's log warnings are printed too (pytest captures them from an
# in-process run): a file that is not a grounded file gets its error only, not first the
# warning that it has no sidecar manifest.
FILES += [file_case("retrieve-grounded", "binary", subprocess=True)]
FILES += [wordnet_case(kind) for kind in WORDNET_KINDS]
FILES += [npy_case(option, kind) for option in ("entity", "relation") for kind in NPY_KINDS]

# -------------------------------------------------------------------------- text arguments
NOT_UTF8 = "dog-\udcff\udcfe-house"  # the bytes ff fe as Python gives them from argv
LONG = "dog-" * 500_000  # one word past spaCy's max_length
SHOW = "show -g {graph} -o {d}/x.png --question {question} --choice"
TEXT = [
    case("link-not-utf8", f"link {NOT_UTF8} -g {{graph}}", "TEXT"),
    case("link-long", f"link {LONG} -g {{graph}}", "max_length"),
    case("link-mode", "link dog -g {graph} --mode x", "mode"),
    case("link-pipeline", "link dog -g {graph} --pipeline xx_no_such", "xx_no_such"),
    case(
        "ground-pipeline-a-graph",
        f"ground -g {{graph}} --qa {{qa}} -o {{d}}/o --pipeline {{graph}} {Q}",
        "graph",
    ),  # fmt: skip
    case("show-choice-not-utf8", f"{SHOW} {NOT_UTF8}", "--choice"),
    case("show-choice-long", f"{SHOW} {LONG}", "max_length"),
    case("show-choice-blank", f"{SHOW} {{blank}}", "--choice", values=lambda *a: {"blank": " "}),
    case("data-download-unknown", "data download ../../etc/passwd --data-dir {d}", "unknown"),
    case("data-download-not-utf8", f"data download {NOT_UTF8} --data-dir {{d}}", "NAME"),
    case("data-download-dir-a-file", "data download copa --data-dir {graph_tsv}", "edges.tsv"),
    case("data-synthetic-out-not-utf8", f"data synthetic --out {{d}}/{NOT_UTF8}", "--out"),
    case("graph-export-format", "graph export {graph} --to csv -o {d}/x", "csv"),
    case("graph-build-format", "graph build -f owl {graph_tsv} -o {d}/g", "owl"),
    case("graph-build-not-utf8", f"graph build -f tsv {{d}}/{NOT_UTF8} -o {{d}}/g", "INPUTS"),
    case("compare-not-utf8", f"compare {{run}} {{d}}/{NOT_UTF8}", "RUNS"),
    case("evaluate-out-not-utf8", f"evaluate --qa {{qa}} -m {{run}} -o {{d}}/{NOT_UTF8}", "--out"),
    case("embed-kg-threshold", "embed-kg -g {graph} -o {d}/k --threshold median", "median"),
    case("embed-kg-format", "embed-kg -g {graph} -o {d}/k -f csv --valid {cn100k}", "csv"),
    # the real command line: bytes that are not UTF-8 in argv
    case("link-not-utf8-argv", f"link {NOT_UTF8} -g {{graph}}", "TEXT", subprocess=True),
    case("graph-info-not-utf8-argv", f"graph info {{d}}/{NOT_UTF8}", "INDEX", subprocess=True),
]


def _explore_qa(kind: str) -> Any:
    def bad(inputs: Inputs, folder: Path, case_id: str) -> dict[str, Any]:
        return {"bad": write_variant(inputs.qa, kind, folder / f"bad-{kind}.jsonl", case_id)}

    return bad


# `kelm explore` serves a page until stopped: every case here fails before it would serve
TEXT += [
    case("explore-graph-missing", "explore -g {d}/nowhere", "nowhere"),
    case("explore-model-missing", "explore -g {graph} --model {d}/nowhere", "nowhere"),
    case("explore-model-not-a-run", "explore -g {graph} --model {graph}", "not a kelm run"),
    *[
        case(
            f"explore-qa-{kind}", "explore -g {graph} --qa {bad}", "{bad}", values=_explore_qa(kind)
        )
        for kind in ("empty", "binary", "non-utf8", "directory", "missing")
    ],
    case("explore-port", "explore -g {graph} --port 70000", "--port"),
    case("explore-host-not-utf8", f"explore -g {{graph}} --host {NOT_UTF8}", "--host"),
]


@pytest.mark.parametrize("case", [c.param() for c in FILES])
def test_input_files(case: Case, sweep_inputs: Inputs, tmp_path: Path) -> None:
    run_case(case, sweep_inputs, tmp_path)


@pytest.mark.parametrize("case", [c.param() for c in TEXT])
def test_text_arguments(case: Case, sweep_inputs: Inputs, tmp_path: Path) -> None:
    run_case(case, sweep_inputs, tmp_path)


# ------------------------------------------------------------------------------ coverage
NO_INPUT = {"data list": "takes no argument or option: there is nothing to give it"}


def _commands(group: Any, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            names += _commands(command, f"{prefix}{name} ")
        else:
            names.append(prefix + name)
    return names


def test_every_command_is_swept() -> None:
    """Every command and subcommand of ``kelm --help`` has cases (those that take no input
    aside), and the case ids are unique."""
    cases = FILES + TEXT + test_cli_sweep_artifacts.CASES + test_cli_sweep_settings.CASES
    swept = {c.command for c in cases}
    commands = set(_commands(get_command(app)))
    assert commands - swept == set(NO_INPUT)
    assert swept <= commands
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})

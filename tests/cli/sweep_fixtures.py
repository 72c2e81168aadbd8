"""The inputs of the hostile-input sweep (``test_cli_sweep*.py``): one tiny artifact of every
kind a ``kelm`` command reads (built once per session by ``tests/cli/conftest.py``), the
hostile variants of a file or directory generated from them with a seeded RNG (random bytes,
random truncation, random byte flips, a non-UTF-8 byte, an oversized line), and the check
every case makes of the command's result.

A plain module (imported by the tests), not a conftest: ``tests/conftest.py`` owns that name.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(REPO / "tests" / "training"))
sys.path.insert(0, str(REPO / "tests" / "pretraining"))

import pretrain_fixtures  # noqa: E402
import training_fixtures  # noqa: E402

# The one seed of every generated input: a failure names its case, and the case is the same on
# every run (the RNG is seeded per case from this and the case's id).
SEED = 16
# An oversized line: larger than any buffer a reader might assume, small enough to stay fast.
LONG_LINE = 2 * 1024 * 1024


@dataclass(frozen=True)
class Inputs:
    """One valid artifact of every kind the commands read."""

    root: Path
    graph: Path  # graph index (tsv)
    graph_tsv: Path  # its source
    qa: Path  # CommonsenseQA JSONL
    grounded: Path  # `kelm ground` output of qa, with its manifest
    retrieval: Path  # `kelm retrieve` output directory
    kge: Path  # `kelm embed-kg` output directory
    train_config: Path  # training config YAML
    run: Path  # `kelm train` run directory
    evaluation: Path  # `kelm evaluate` output directory
    pretrain_config: Path
    pretrain_run: Path  # `kelm pretrain` run directory
    probe_triples: Path
    encoder: Path  # a tiny BERT model folder
    cn100k: Path  # CN-100K-form triples (relation, head, tail, weight) of the graph
    labelled: Path  # labelled triples (4th column 1/0) for triple classification


def build_inputs(root: Path) -> Inputs:
    """Build every artifact under ``root`` through the commands themselves (about 10 s)."""
    from cli_fixtures import invoke

    cfg = training_fixtures.tiny_config(root / "train", epochs=1)
    graph = Path(cfg["graph"]["index"])
    qa = Path(cfg["data"]["train"])
    train_config = training_fixtures.write_config(root / "train.yaml", cfg)

    def run(*args: Any) -> None:
        result = invoke(*args)
        assert result.exit_code == 0, result.output

    grounded = root / "grounded.jsonl"
    run("ground", "-g", graph, "--qa", qa, "-o", grounded, "--no-progress")
    retrieval = root / "retrieval"
    run("retrieve", "-g", graph, "--grounded", grounded, "-o", retrieval, "--scorer", "none",
        "--hops", "2", "--no-progress")  # fmt: skip
    kge = root / "kge"
    run("embed-kg", "-g", graph, "-o", kge, "--epochs", "1", "--dim", "4", "--no-progress")
    run("train", "-c", train_config, "--no-progress")
    evaluation = root / "evaluation"
    run("evaluate", "--qa", qa, "-m", cfg["run_dir"], "-o", evaluation, "--no-progress")

    cn100k = root / "cn100k.txt"
    cn100k.write_text("IsA\tdog\tanimal\t1.0\nIsA\tcat\tanimal\t0.5\nAtLocation\tdog\thouse\t2\n")
    labelled = root / "labelled.txt"
    labelled.write_text(
        "IsA\tdog\tanimal\t1\nIsA\tcat\thouse\t0\nAtLocation\tdog\thouse\t1\n"
        "AtLocation\tcat\tzoo\t0\n"
    )
    pcfg = pretrain_fixtures.tiny_config(root / "pretrain", max_steps=2)
    pretrain_config = pretrain_fixtures.write_config(root / "pretrain.yaml", pcfg)
    run("pretrain", "-c", pretrain_config, "--no-progress")
    return Inputs(
        root=root,
        graph=graph,
        graph_tsv=graph.parent / "edges.tsv",
        qa=qa,
        grounded=grounded,
        retrieval=retrieval,
        kge=kge,
        train_config=train_config,
        run=Path(cfg["run_dir"]),
        evaluation=evaluation,
        pretrain_config=pretrain_config,
        pretrain_run=Path(pcfg["run_dir"]),
        probe_triples=Path(pcfg["probe"]["files"][0]),
        encoder=Path(cfg["model"]["encoder"]),
        cn100k=cn100k,
        labelled=labelled,
    )


# ------------------------------------------------------------------------- hostile inputs
def rng_for(case: str) -> random.Random:
    """The RNG of one case: seeded from :data:`SEED` and the case's id."""
    return random.Random(f"{SEED}:{case}")


def random_bytes(rng: random.Random, n: int = 4096) -> bytes:
    """``n`` random bytes that are not UTF-8 (a 0xff byte somewhere, which UTF-8 never has)."""
    data = bytearray(rng.randbytes(n))
    data[rng.randrange(n)] = 0xFF
    return bytes(data)


def truncated(valid: bytes, rng: random.Random) -> bytes:
    """``valid`` cut at a random point strictly inside a random line (a record cut short:
    never at a line's end, never just before its last character)."""
    lines = valid.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if len(line.rstrip(b"\r\n")) >= 3]
    i = rng.choice(candidates)
    start = sum(len(line) for line in lines[:i])
    content = len(lines[i].rstrip(b"\r\n"))
    return valid[: start + rng.randrange(1, content - 1)]


def non_utf8(valid: bytes, rng: random.Random) -> bytes:
    """``valid`` with one byte of a random line replaced by 0xff (never valid UTF-8)."""
    data = bytearray(valid)
    positions = [i for i, b in enumerate(data) if b not in b"\r\n"]
    data[rng.choice(positions)] = 0xFF
    return bytes(data)


def flipped(valid: bytes, rng: random.Random, flips: int = 1) -> bytes:
    """``valid`` with ``flips`` random bits flipped at random positions."""
    data = bytearray(valid)
    for _ in range(flips):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def long_line(valid: bytes, rng: random.Random) -> bytes:
    """``valid`` with an oversized line (:data:`LONG_LINE` bytes of random letters, no
    separator) inserted before a random line."""
    lines = valid.splitlines(keepends=True)
    i = rng.randrange(len(lines) + 1)
    letters = bytes(rng.choice(b"abcdefghij") for _ in range(4096))
    line = letters * (LONG_LINE // len(letters)) + b"\n"
    return b"".join(lines[:i] + [line] + lines[i:])


MUTATIONS = {
    "empty": lambda valid, rng: b"",
    "binary": lambda valid, rng: random_bytes(rng),
    "truncated": truncated,
    "non-utf8": non_utf8,
    "long-line": long_line,
}
"""The hostile variants of a text file, each derived from a valid one with a seeded RNG."""


def write_variant(valid: Path, kind: str, out: Path, case: str) -> Path:
    """``out``: the ``kind`` variant of the file ``valid`` (a :data:`MUTATIONS` key, or
    ``directory`` / ``missing``)."""
    if kind == "directory":
        out.mkdir(parents=True)
        return out
    if kind == "missing":
        return out
    out.write_bytes(MUTATIONS[kind](valid.read_bytes(), rng_for(case)))
    return out


def copy_artifact(src: Path, dst: Path) -> Path:
    """A private copy of an artifact directory (or file with its sidecar) to damage."""
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
        side = src.with_name(src.name + ".manifest.json")
        if side.is_file():
            shutil.copy2(side, dst.with_name(dst.name + ".manifest.json"))
    return dst


def artifact_files(directory: Path) -> list[Path]:
    """The files of an artifact directory, sorted (what a byte flip picks from)."""
    return sorted(p for p in directory.rglob("*") if p.is_file())


def flip_in(directory: Path, rng: random.Random, pick: str | None = None) -> Path:
    """Flip a random bit in a random file of ``directory`` (or its file ``pick``): the file."""
    files = [directory / pick] if pick else artifact_files(directory)
    target = rng.choice(files)
    target.write_bytes(flipped(target.read_bytes(), rng))
    return target


# --------------------------------------------------------------------------------- checks
def check_error(result: Any, *names: str) -> str:
    """The rule of every sweep case: a non-zero exit (2, a user error), no exception escaped
    (Click's runner keeps it in ``result.exception``; a subprocess would print a traceback),
    one ``error: ...`` line on stderr, nothing else there, and the line names the problem:
    one of ``names`` (a file, an option, a key) is in it."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert any(name in lines[0] for name in names), (names, lines[0])
    return lines[0]


def check_no_crash(result: Any) -> None:
    """The rule of a case whose input may still be valid (a record cut where what is left is a
    record too): it succeeds, or fails as every case must (:func:`check_error`, any name)."""
    if result.exit_code == 0 and result.exception is None:
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    check_error(result, lines[-1][len("error: ") :] if lines else "<no message>")


# ---------------------------------------------------------------------------------- cases
Build = Callable[[Inputs, Path], tuple[list[Any], tuple[str, ...]]]
"""A case's command line from the inputs and a fresh folder of its own, and what its error
line must name (any one of them)."""
QUESTION = "where does a dog live"


@dataclass(frozen=True)
class Case:
    """One hostile input to one command.

    Attributes:
        id: the pytest id (also the RNG's seed, with :data:`SEED`).
        command: the command as typed after ``kelm`` (``graph build``): the sweep checks that
            every command of the app has cases.
        build: the command line and the names its error must hold.
        may_succeed: the input may still be valid (:func:`check_no_crash`), with the reason.
        pending: why the case still fails (``xfail(strict=True)``: it must fail, so that the
            marker is removed when the work it waits for is merged).
        subprocess: run ``python -m kelm`` in a child process (a case that can bring the whole
            process down or never end, or needs the real command line).
    """

    id: str
    command: str
    build: Build
    may_succeed: str = ""
    pending: str = ""
    subprocess: bool = False

    def param(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, reason=self.pending)] if self.pending else []
        return pytest.param(self, id=self.id, marks=marks)


def command_line(template: str, inputs: Inputs, folder: Path, **values: Any) -> list[str]:
    """The arguments of ``template``: its words (split on spaces), each formatted with the
    inputs' paths (``{graph}``, ``{qa}``...), ``{d}`` (the case's folder), ``{fixtures}``,
    ``{repo}``, ``{question}`` and ``values``."""
    fields = {f.name: str(getattr(inputs, f.name)) for f in dataclasses.fields(inputs)}
    fields.update(d=str(folder), fixtures=str(FIXTURES), repo=str(REPO), question=QUESTION)
    fields.update({name: str(value) for name, value in values.items()})
    return [word.format(**fields) for word in template.split()]


def command_of(template: str) -> str:
    """The command a template runs: ``graph build``, ``retrieve``..."""
    words = template.split()
    return " ".join(words[:2]) if words[0] in ("graph", "data") else words[0]


def case(
    case_id: str, template: str, *names: str, values: Callable[..., dict] | None = None, **kw: Any
) -> Case:
    """A :class:`Case` running ``template`` (:func:`command_line`). ``values(inputs, folder,
    case_id)`` makes the case's own inputs (a damaged copy...) and returns them by field name;
    ``names`` may refer to them (``{bad}``: the name of the file ``bad``)."""

    def build(inputs: Inputs, folder: Path) -> tuple[list[Any], tuple[str, ...]]:
        made = values(inputs, folder, case_id) if values else {}
        shown = {name: Path(str(value)).name for name, value in made.items()}
        args = command_line(template, inputs, folder, **made)
        return args, tuple(name.format(**shown) for name in names)

    return Case(case_id, command_of(template), build, **kw)


def run_case(case: Case, inputs: Inputs, tmp_path: Path) -> None:
    """Run ``case`` in its own folder and check its result (see :class:`Case`)."""
    from cli_fixtures import invoke

    args, names = case.build(inputs, tmp_path)
    result = run_subprocess(args) if case.subprocess else invoke(*args)
    if case.may_succeed:
        check_no_crash(result)
    else:
        check_error(result, *names)


CHILD_MEMORY = 6 << 30  # address space of a child process (torch reserves a few GiB)
CHILD_SECONDS = 60  # a case that never ends fails


@dataclass
class ProcessResult:
    """A child process's result, shaped as Click's runner gives it."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_subprocess(args: list[Any]) -> ProcessResult:
    """``python -m kelm ARGS`` with this checkout's kelm; arguments are passed as bytes (a
    ``str`` is encoded with ``surrogateescape``: a non-UTF-8 byte stays that byte)."""
    import os
    import resource
    import subprocess

    def limit_memory() -> None:  # a case that reads without end fails, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    argv = [os.fsencode(str(a)) for a in args]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kelm", *argv],
            capture_output=True,
            env={**os.environ, "PYTHONPATH": path},
            preexec_fn=limit_memory,
            timeout=CHILD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ProcessResult(-9, "", f"(killed: still running after {CHILD_SECONDS}s)")
    decode = lambda b: b.decode("utf-8", "backslashreplace")  # noqa: E731
    return ProcessResult(done.returncode, decode(done.stdout), decode(done.stderr))

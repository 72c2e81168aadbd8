#!/usr/bin/env python
"""Benchmark: the plain pretrained model families (issue 6), one JSON object.

Three parts, each a benchmark of its own that this script runs (in a subprocess, so each starts
from a clean interpreter) and folds into one JSON object:

* ``objectives`` - ``scripts/bench_objectives.py``: every pretraining objective (mlm, mlm+nsp,
  clm, sop, rtd, distill, tinybert) at a tiny size on the same WordNet-gloss corpus and token
  budget: held-out loss / metric and tokens/s, and the ALBERT vs BERT parameter ratio at the
  same L and H;
* ``distillation`` - ``scripts/bench_distill.py``: the MiniLM teacher and its half-depth
  student (every other layer) fine-tuned alike on CommonsenseQA: held-out accuracy ratio and
  inference speed-up (DistilBERT's claims: 97% of the teacher, 60% faster);
* ``zero_shot`` - ``scripts/bench_zeroshot.py``: SmolLM2-135M zero-shot and 5-shot accuracy on
  the held-out CSQA split and on Balanced COPA, for the sum, mean and PMI normalisations.

``--parts`` picks some of them (and their order); ``--quick`` passes ``--quick`` to each (a
smoke run); ``--objectives-args`` / ``--distill-args`` / ``--zeroshot-args`` pass more options to
one part, e.g. ``--objectives-args "--steps 300"``.

Each finished part is saved as ``<out>/<part>.json`` (with its command line, written to a temp
file and renamed), so a long run that stops half-way loses nothing: ``--resume`` reads back every
part saved with exactly the same command line and runs only the others.

Output: ``{"objectives": {...}, "distillation": {...}, "zero_shot": {...}, "settings": {...},
"seconds": {...}}`` on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARTS = {
    "objectives": "bench_objectives.py",
    "distillation": "bench_distill.py",
    "zero_shot": "bench_zeroshot.py",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of every part")
    p.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    p.add_argument("--threads", type=int, default=None, help="torch threads of every part")
    p.add_argument("--objectives-args", default="", help="more options for bench_objectives")
    p.add_argument("--distill-args", default="", help="more options for bench_distill")
    p.add_argument("--zeroshot-args", default="", help="more options for bench_zeroshot")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-plm", help="parts saved here")
    p.add_argument(
        "--resume", action="store_true", help="reuse parts saved with the same command line"
    )
    return p.parse_args(argv)


def part_command(args: argparse.Namespace, part: str) -> list[str]:
    """The command line of one part."""
    extra = {
        "objectives": args.objectives_args,
        "distillation": args.distill_args,
        "zero_shot": args.zeroshot_args,
    }[part]
    command = [sys.executable, str(REPO / "scripts" / PARTS[part])]
    if args.quick:
        command.append("--quick")
    if args.threads:
        command += ["--threads", str(args.threads)]
    return command + shlex.split(extra)


def run_part(command: list[str]) -> dict[str, Any]:
    """Run one part; its JSON object (stderr streams through)."""
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} exited with status {done.returncode}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {' '.join(command)} printed no JSON object ({exc})") from None


def saved_part(path: Path, command: str) -> dict[str, Any] | None:
    """A part's saved result if it was measured with exactly ``command``, else ``None``."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(saved, dict) or saved.get("command") != command:
        return None
    return saved


def save_part(path: Path, command: str, result: dict[str, Any], seconds: float) -> None:
    """Write one part's result atomically (never half-written)."""
    from kelm._io import write_json

    write_json(path, {"command": command, "seconds": seconds, "result": result})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    commands: dict[str, str] = {}
    resumed: list[str] = []
    for part in args.parts:
        command = part_command(args, part)
        commands[part] = " ".join(shlex.quote(c) for c in command[1:])
        path = args.out / f"{part}{'-quick' if args.quick else ''}.json"
        saved = saved_part(path, commands[part]) if args.resume else None
        if saved is not None:
            print(f"{part}: reusing {path}", file=sys.stderr, flush=True)
            out[part], seconds[part] = saved["result"], saved["seconds"]
            resumed.append(part)
            continue
        print(f"{part}: {commands[part]}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        out[part] = run_part(command)
        seconds[part] = round(time.perf_counter() - start, 1)
        save_part(path, commands[part], out[part], seconds[part])
    out["settings"] = {
        "quick": args.quick,
        "threads": args.threads,
        "commands": commands,
        "resumed": resumed,
    }
    out["seconds"] = seconds
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

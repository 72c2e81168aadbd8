#!/usr/bin/env python
"""Benchmark: KG embeddings on ConceptNet-100K (Li et al. 2016), end to end on the CPU.

Builds the CN-100K graph index from ``train.txt`` (or reuses ``--graph``), trains embeddings with
``kelm.kge.embed_kg`` and evaluates them:

* filtered link prediction (MRR, Hits@1/3/10 over head and tail prediction) on ``test.txt``,
  filtering every triple of train + valid + test; ``valid.txt`` is evaluated alongside;
* triple classification: thresholds fitted on ``dev1.txt`` (per relation by default, the global
  one for relations with fewer than 10 dev1 triples), accuracy on ``dev2.txt``.

Held-out triples with a head or tail that never occurs in ``train.txt`` cannot be scored by an
entity-embedding model: they are skipped and counted (``settings.*_skipped``); the metrics are
over the scored triples.

One JSON object is printed on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_data() -> Path:
    root = Path(os.environ.get("KELM_DATA") or REPO.parent / "shared" / "data")
    return root / "kg" / "conceptnet100k"


def main(argv: list[str] | None = None) -> None:
    from kelm.kge.train import KGEConfig

    defaults = KGEConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_data(), help="CN-100K directory")
    p.add_argument("--graph", type=Path, help="existing CN-100K index (built from train.txt)")
    p.add_argument("--out", type=Path, help="embeddings directory (default: a temp dir)")
    p.add_argument("--model", default=defaults.model)
    p.add_argument("--dim", type=int, default=defaults.dim)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--negatives", type=int, default=defaults.negatives)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float)
    p.add_argument("--reg", type=float)
    p.add_argument("--threshold", default="relation", choices=["relation", "global"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from kelm.graph import build_index
    from kelm.graph.sources.base import BuildOptions
    from kelm.kge.train import embed_kg

    start = time.perf_counter()

    def log_epoch(epoch: int, model, loss: float) -> None:
        print(
            f"  epoch {epoch}/{args.epochs} loss {loss:.4f} ({time.perf_counter() - start:.0f}s)",
            file=sys.stderr,
            flush=True,
        )

    data = args.data
    for name in ("train.txt", "valid.txt", "test.txt", "dev1.txt", "dev2.txt"):
        if not (data / name).is_file():
            sys.exit(f"error: {data / name} not found (set --data or KELM_DATA)")

    with tempfile.TemporaryDirectory(prefix="kelm-bench-kge-") as tmp:
        graph = args.graph
        if graph is None:
            graph = Path(tmp) / "cn100k"
            print(f"building {graph} from {data / 'train.txt'}", file=sys.stderr)
            build_index([data / "train.txt"], graph, BuildOptions(format="cn100k"), progress=False)
        out = args.out or Path(tmp) / "emb"
        config = KGEConfig(
            model=args.model,
            dim=args.dim,
            epochs=args.epochs,
            negatives=args.negatives,
            batch_size=args.batch_size,
            lr=args.lr,
            reg=args.reg,
            seed=args.seed,
            threads=args.threads,
        )
        print(
            f"training {config.model} dim={config.dim} epochs={config.epochs} "
            f"threads={config.threads}",
            file=sys.stderr,
        )
        report = embed_kg(
            graph,
            out,
            config,
            valid=data / "valid.txt",
            test=data / "test.txt",
            fmt="cn100k",
            classify_dev=data / "dev1.txt",
            classify_test=data / "dev2.txt",
            threshold=args.threshold,
            progress=True,
            on_epoch=log_epoch,
        )

    m = report.metrics
    test, valid, cls = m["test"], m["valid"], m["classification"]
    options = report.manifest["options"]
    print(
        json.dumps(
            {
                "model": args.model,
                "dim": args.dim,
                "epochs": args.epochs,
                "mrr": round(test["mrr"], 4),
                "hits@1": round(test["hits@1"], 4),
                "hits@3": round(test["hits@3"], 4),
                "hits@10": round(test["hits@10"], 4),
                "dev2_accuracy": round(cls["test_accuracy"], 4),
                "train_s": round(report.train_seconds, 1),
                "settings": {
                    "negatives": options["negatives"],
                    "batch_size": options["batch_size"],
                    "lr": options["lr"],
                    "reg": options["reg"],
                    "margin": options["margin"],
                    "optimizer": "SparseAdam",
                    "seed": options["seed"],
                    "threads": options["threads"],
                    "ranking": "test.txt, filtered by train+valid+test, head+tail, ties halved",
                    "test_triples_scored": test["triples"],
                    "test_skipped": test["file"]["skipped_not_in_graph"],
                    "raw_mrr": round(test["raw"]["mrr"], 4),
                    "valid_mrr": round(valid["mrr"], 4),
                    "threshold": f"{cls['mode']} (fitted on dev1.txt)",
                    "dev1_accuracy": round(cls["dev_accuracy"], 4),
                    "dev2_scored": cls["test"]["used"],
                    "dev2_skipped": cls["test"]["skipped_not_in_graph"],
                    f"dev2_accuracy_{cls['alternative']['mode']}_threshold": round(
                        cls["alternative"]["test_accuracy"], 4
                    ),
                    "eval_s": round(report.eval_seconds, 1),
                    "torch": torch.__version__,
                    "cpu_count": os.cpu_count(),
                },
            }
        )
    )


if __name__ == "__main__":
    main()

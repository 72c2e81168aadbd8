#!/usr/bin/env python
"""Benchmark: the ERNIE-style knowledgeable encoder against its plain backbone, on the CPU.

Four measurements, one JSON object on stdout (progress on stderr):

* ``speed``: forward+backward seconds per batch of the fused model
  (:class:`kelm.modeling.KelmErnieForPreTraining`, MLM + dEA) and of the plain backbone
  (``BertForMaskedLM``, MLM) of the same size, batch and length, and their ratio (the issue's
  target: at most 1.5). Random weights (timing only): the MiniLM-L6-H384 architecture by
  default, ``--speed-entities`` aligned entities per sequence, an entity table of
  ``--num-entities`` rows of width 100 (TransE's).
* ``pretraining``: ``kelm pretrain`` with ``configs/pretrain-ernie.yaml`` and its control
  ``configs/pretrain-mlm.yaml`` under the same overrides (seed, steps, batch, corpus size):
  training tokens/s, held-out MLM accuracy / perplexity (and dEA accuracy).
* ``probe``: hits@1/10 and MRR of the CN-100K cloze probe for both runs.
* ``csqa``: held-out CommonsenseQA accuracy of ``configs/csqa-ernie.yaml`` vs
  ``configs/csqa-lm.yaml`` trained with the same seeds (``kelm.training.train``), when
  ``configs/csqa-ernie.yaml`` exists.

Defaults fit a 2-core machine in about an hour; ``--quick`` checks that everything works
(a tiny speed model, 300 synsets, 5 steps, 200 probe triples, 60 CSQA questions, 1 seed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny settings: checks that it works")
    p.add_argument("--seed", type=int, default=0, help="pretraining seed")
    # speed
    p.add_argument("--speed-batch", type=int, default=16)
    p.add_argument("--speed-length", type=int, default=64)
    p.add_argument("--speed-entities", type=int, default=8, help="aligned entities per sequence")
    p.add_argument("--num-entities", type=int, default=78_000)
    p.add_argument("--knowledge-layers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    # pretraining
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--documents", type=int, default=20_000, help="WordNet synsets used")
    p.add_argument("--kge-epochs", type=int, default=5)
    p.add_argument("--probe-triples", type=int, default=None, help="default: all kept")
    # csqa
    p.add_argument("--csqa-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--csqa-train-questions", type=int, default=600)
    p.add_argument("--csqa-eval-questions", type=int, default=None)
    p.add_argument("--csqa-epochs", type=int, default=2)
    p.add_argument("--skip-csqa", action="store_true")
    p.add_argument(
        "--reuse-runs",
        action="store_true",
        help="reuse finished pretraining runs of identical config in --out (e.g. after a crash)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-ernie")
    p.add_argument("--cache", type=Path, default=None, help="pipeline cache directory")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $KELM_DATA")
    args = p.parse_args(argv)
    if args.quick:
        args.speed_batch, args.speed_length, args.repeats = 4, 32, 3
        args.num_entities = 1000
        args.steps, args.batch_size, args.documents = 5, 8, 300
        args.kge_epochs = 1
        args.probe_triples = args.probe_triples or 200
        args.csqa_seeds = args.csqa_seeds[:1]
        args.csqa_train_questions, args.csqa_eval_questions, args.csqa_epochs = 60, 30, 1
        args.out = args.out.with_name(args.out.name + "-quick")
    return args


# ---------------------------------------------------------------------------------- speed
def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Forward+backward seconds per batch, fused vs plain, same backbone size."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from kelm.modeling import KelmErnieConfig, KelmErnieForPreTraining
    from kelm.modeling.encoders import MINILM_ARCHITECTURE

    if args.quick:
        arch = {
            "vocab_size": 1000,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
        }
    else:
        arch = dict(MINILM_ARCHITECTURE)
    config = BertConfig(**arch, max_position_embeddings=512)
    b, length = args.speed_batch, args.speed_length
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, arch["vocab_size"], (b, length), generator=g)
    attention_mask = torch.ones(b, length, dtype=torch.long)
    labels = torch.full((b, length), -100, dtype=torch.long)
    picked = torch.rand(b, length, generator=g) < 0.15
    labels[picked] = input_ids[picked]
    entity_ids = torch.full((b, length), -1, dtype=torch.long)
    for i in range(b):
        pos = torch.randperm(length - 2, generator=g)[: args.speed_entities] + 1
        entity_ids[i, pos] = torch.randint(args.num_entities, (len(pos),), generator=g)
    torch.manual_seed(0)
    plain = BertForMaskedLM(config)
    fused = KelmErnieForPreTraining(
        KelmErnieConfig(
            encoder_config=config,
            num_knowledge_layers=min(args.knowledge_layers, arch["num_hidden_layers"]),
            num_entities=args.num_entities,
            entity_dim=100,
            entity_attention_heads=4,
            freeze_entity_embeddings=True,
        )
    )

    def timed(model: Any, inputs: dict[str, Any]) -> float:
        model.train()
        times = []
        for r in range(args.repeats + 2):
            t0 = time.perf_counter()
            model(**inputs).loss.backward()
            model.zero_grad(set_to_none=True)
            if r >= 2:  # two warm-up passes
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    common = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    plain_s = timed(plain, common)
    fused_s = timed(fused, {**common, "entity_ids": entity_ids, "entity_labels": entity_ids})
    return {
        "plain_seconds_per_batch": round(plain_s, 4),
        "fused_seconds_per_batch": round(fused_s, 4),
        "ratio": round(fused_s / plain_s, 3),
        "target_ratio": 1.5,
        "batch": b,
        "length": length,
        "architecture": arch,
        "knowledge_layers": fused.config.num_knowledge_layers,
        "entities_per_sequence": args.speed_entities,
        "num_entities": args.num_entities,
        "plain_parameters": sum(p.numel() for p in plain.parameters()),
        "fused_trainable_parameters": sum(p.numel() for p in fused.parameters() if p.requires_grad),
    }


# ---------------------------------------------------------------------------------- pretrain
def pretrain_one(args: argparse.Namespace, objective: str) -> dict[str, Any]:
    from kelm.pretraining import load_pretrain_config, pretrain

    sets = [
        f"run_dir={args.out / f'pretrain-{objective}'}",
        f"seed={args.seed}",
        f"max_steps={args.steps}",
        f"batch_size={args.batch_size}",
        f"data.max_length={args.max_length}",
        f"corpus.max_documents={args.documents}",
        f"knowledge.kge_epochs={args.kge_epochs}",
        f"optim.warmup_steps={max(args.steps // 10, 1)}",
        "eval_every=null",
        "save_every=null",
        "keep_checkpoints=1",
        "probe.enabled=true",
    ]
    if args.probe_triples:
        sets.append(f"probe.max_triples={args.probe_triples}")
    if args.cache:
        sets.append(f"data.cache_dir={args.cache}")
    if args.threads:
        sets.append(f"threads={args.threads}")
    cfg = load_pretrain_config(REPO / "configs" / f"pretrain-{objective}.yaml", sets)
    start = time.perf_counter()
    m = finished_run(cfg) if args.reuse_runs else None
    reused = m is not None
    if m is None:
        m = pretrain(cfg, overwrite=True, progress=False).metrics
    seconds = time.perf_counter() - start
    shutil.rmtree(Path(cfg.run_dir) / "checkpoints", ignore_errors=True)
    return {
        "reused": reused,
        "tokens_per_second": m["tokens_per_second"],
        "train_loss": m["train_loss"],
        "mlm_accuracy": m.get("mlm_accuracy"),
        "perplexity": m.get("perplexity"),
        "dea_accuracy": m.get("dea_accuracy"),
        "probe": m.get("probe"),
        "data": {
            k: m["data"][k]
            for k in ("documents", "instances", "entities", "train_instances", "eval_instances")
        },
        "seconds": round(seconds, 1),
    }


def finished_run(cfg: Any) -> dict[str, Any] | None:
    """The metrics of a finished run of exactly ``cfg`` in its run directory (``--reuse-runs``),
    else ``None``: same resolved config, ``metrics.json`` written (it is written last)."""
    import yaml

    from kelm.config import to_dict

    run = Path(cfg.run_dir)
    resolved, metrics = run / "config.resolved.yaml", run / "metrics.json"
    if not (resolved.is_file() and metrics.is_file()):
        return None
    wanted = yaml.safe_load(yaml.safe_dump(to_dict(cfg)))
    if yaml.safe_load(resolved.read_text(encoding="utf-8")) != wanted:
        return None
    log(f"reusing the finished run in {run}")
    return json.loads(metrics.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------- csqa
def csqa(args: argparse.Namespace) -> dict[str, Any]:
    from kelm.training import load_train_config, train

    out: dict[str, Any] = {}
    for model in ("lm", "ernie"):
        accs = []
        for seed in args.csqa_seeds:
            sets = [
                f"run_dir={args.out / f'csqa-{model}-s{seed}'}",
                f"seed={seed}",
                f"epochs={args.csqa_epochs}",
                f"data.max_train={args.csqa_train_questions}",
                "eval_every_epoch=false",
                "keep_checkpoints=1",
            ]
            if args.csqa_eval_questions:
                sets.append(f"data.max_eval={args.csqa_eval_questions}")
            if args.threads:
                sets.append(f"threads={args.threads}")
            log(f"csqa {model} seed {seed} ...")
            cfg = load_train_config(REPO / "configs" / f"csqa-{model}.yaml", sets)
            result = train(cfg, overwrite=True, progress=False)
            shutil.rmtree(Path(cfg.run_dir) / "checkpoints", ignore_errors=True)
            accs.append(result.metrics.get("accuracy"))
        out[model] = {
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "accuracies": accs,
        }
    out["settings"] = {
        "seeds": args.csqa_seeds,
        "train_questions": args.csqa_train_questions,
        "eval_questions": args.csqa_eval_questions,
        "epochs": args.csqa_epochs,
        "configs": ["configs/csqa-lm.yaml", "configs/csqa-ernie.yaml"],
    }
    return out


def main(argv: list[str] | None = None) -> None:
    from _bench import start

    args = parse_args(argv)
    start(args)
    import torch

    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    log("speed: fused vs plain forward+backward ...")
    out["speed"] = speed(args)
    log(f"speed ratio {out['speed']['ratio']}")
    runs = {}
    for objective in ("ernie", "mlm"):
        log(f"pretraining {objective} ...")
        runs[objective] = pretrain_one(args, objective)
    out["pretraining"] = {
        "ernie_tokens_per_second": runs["ernie"]["tokens_per_second"],
        "mlm_tokens_per_second": runs["mlm"]["tokens_per_second"],
        "ernie": {k: v for k, v in runs["ernie"].items() if k != "probe"},
        "mlm": {k: v for k, v in runs["mlm"].items() if k != "probe"},
    }
    out["probe"] = {
        name: {k: r["probe"][k] for k in ("n", "hits@1", "hits@10", "mrr", "heads_linked")}
        for name, r in runs.items()
        if r["probe"]
    }
    if args.skip_csqa:
        out["csqa"] = "skipped (--skip-csqa)"
    elif not (REPO / "configs" / "csqa-ernie.yaml").is_file():
        out["csqa"] = "skipped (configs/csqa-ernie.yaml not found)"
    else:
        out["csqa"] = csqa(args)
    out["settings"] = {
        "quick": args.quick,
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "documents": args.documents,
        "kge_epochs": args.kge_epochs,
        "probe_triples": args.probe_triples,
        "configs": ["configs/pretrain-ernie.yaml", "configs/pretrain-mlm.yaml"],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

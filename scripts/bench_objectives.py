"""Benchmark the pretraining objectives of the plain model families on one corpus and budget.

Every objective pretrains a tiny model from scratch (or, for the distillation objectives, a
student of the tiny BERT that the ``mlm`` run produced, so its teacher has an MLM head) on the
WordNet glosses of the shared data, with the same steps x batch x length token budget, seed and
held-out documents. Printed: ONE JSON object with the settings, per objective the held-out
loss / metric (MLM accuracy, NSP/SOP accuracy, RTD accuracy, CLM perplexity, distillation
losses), tokens/s and parameters, and the ALBERT vs BERT parameter ratio at the same L and H
(the benchmark's tiny size and BERT-base's).

    python scripts/bench_objectives.py --quick        # a few minutes on 2 CPU cores
    python scripts/bench_objectives.py                # the full run (see --help)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# (name, objective, objective_options, from_scratch)
RUNS: list[tuple[str, str, dict[str, Any], bool]] = [
    ("mlm", "mlm", {"preset": "bert-tiny"}, True),
    ("mlm+nsp", "mlm", {"preset": "bert-tiny", "nsp": True}, True),
    ("clm", "clm", {"preset": "gpt-tiny"}, True),
    ("sop", "sop", {"preset": "albert-tiny"}, True),
    ("rtd", "rtd", {"preset": "electra-tiny"}, True),
    ("distill", "distill", {"teacher": "TEACHER"}, False),
    (
        "tinybert",
        "tinybert",
        {"teacher": "TEACHER", "student_overrides": {"hidden_size": 64}},
        False,
    ),
]
KEYS = (
    "mlm_accuracy",
    "mlm_loss",
    "perplexity",
    "nsp_accuracy",
    "sop_accuracy",
    "lm_accuracy",
    "loss",
    "rtd_accuracy",
    "rtd_precision",
    "rtd_recall",
    "generator_mlm_accuracy",
    "teacher_mlm_accuracy",
    "cos_loss",
    "embedding_loss",
    "hidden_loss",
    "attention_loss",
    "tokens_per_second",
    "train_tokens",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 steps on 1,500 synsets (a smoke run)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps per objective")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="tokens per instance")
    p.add_argument("--max-documents", type=int, default=20000, help="WordNet synsets used")
    p.add_argument("--eval-instances", type=int, default=1000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--only", nargs="*", help="run only these (teacher runs are added as needed)")
    p.add_argument("--work-dir", default=None, help="where runs go (default: a temp dir)")
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.max_documents, args.eval_instances = 20, 1500, 200
    return args


def _config(
    args: argparse.Namespace,
    work: Path,
    name: str,
    objective: str,
    options: dict[str, Any],
    scratch: bool,
    teacher: Path,
) -> dict[str, Any]:
    from kelm.paths import data_dir

    opts = json.loads(json.dumps(options).replace("TEACHER", str(teacher)))
    return {
        "run_dir": str(work / name.replace("+", "-")),
        "seed": args.seed,
        "objective": objective,
        "objective_options": opts,
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "eval_batch_size": 64,
        "threads": args.threads,
        "cpu": args.cpu,
        "corpus": {
            "kind": "wordnet",
            "wordnet": str(data_dir() / "kg" / "wordnet_nltk"),
            "max_documents": args.max_documents,
        },
        "data": {
            "max_length": args.max_length,
            "holdout": 0.05,
            "max_eval_instances": args.eval_instances,
            "cache_dir": str(work / "cache"),
        },
        "model": {"from_scratch": scratch, **({} if scratch else {"encoder": str(teacher)})},
        "optim": {"lr": args.lr, "warmup_steps": max(1, args.steps // 10)},
        "probe": {"enabled": False},
    }


def finite(obj: Any) -> Any:
    """``obj`` with NaN / infinite floats as ``null`` (a metric with nothing counted, e.g. RTD
    precision when no token is predicted replaced), so that the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch
    import yaml
    from safetensors import safe_open

    from kelm.pretraining import load_pretrain_config, pretrain
    from kelm.pretraining.objectives.sop import albert_vs_bert_parameters
    from kelm.pretraining.presets import get_preset

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = None
    if args.work_dir:
        work = Path(args.work_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="kelm-bench-objectives-")
        work = Path(tmp.name)
    teacher = work / "mlm" / "model"
    wanted = set(args.only or [name for name, *_ in RUNS])
    if wanted & {"distill", "tinybert"}:
        wanted.add("mlm")
    results: dict[str, Any] = {}
    for name, objective, options, scratch in RUNS:
        if name not in wanted:
            continue
        raw = _config(args, work, name, objective, options, scratch, teacher)
        path = work / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        cfg = load_pretrain_config(path)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = pretrain(cfg, overwrite=True, progress=False)
        wall = time.perf_counter() - t0
        m = result.metrics
        kept = Path(cfg.run_dir) / "model" / "model.safetensors"
        with safe_open(str(kept), "pt") as f:
            params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
        results[name] = {
            **{k: m[k] for k in KEYS if k in m},
            "kept_parameters": params,
            "wall_seconds": round(wall, 1),
            "train_instances": m["data"]["train_instances"],
            "eval_instances": m["data"]["eval_instances"],
        }
    tiny = get_preset("albert-tiny")
    out = {
        "benchmark": "pretraining objectives of the plain model families",
        "settings": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            # the same instances for every objective; each result's train_tokens says how many
            # tokens they held (WordNet glosses are short: instances are rarely full)
            "instances_per_objective": args.steps * args.batch_size,
            "corpus": f"WordNet 3.0 glosses + examples, first {args.max_documents} synsets",
            "holdout": 0.05,
            "eval_instances": args.eval_instances,
            "lr": args.lr,
            "seed": args.seed,
            "tokenizer": "bundled MiniLM WordPiece (30,522)",
            "quick": args.quick,
            "device": "cuda" if torch.cuda.is_available() and not args.cpu else "cpu",
            "threads": torch.get_num_threads(),
            "sizes": "bert-tiny / gpt-tiny / albert-tiny / electra-tiny presets; distill and "
            "tinybert students of the mlm run's model (teacher with an MLM head)",
        },
        "objectives": results,
        "albert_vs_bert_parameters": {
            "tiny": albert_vs_bert_parameters(
                tiny["num_hidden_layers"],
                tiny["hidden_size"],
                tiny["num_attention_heads"],
                tiny["intermediate_size"],
                30522,
                tiny["embedding_size"],
            ),
            **{
                f"base_{s}": albert_vs_bert_parameters(sharing=s, vocab_size=30000)
                for s in ("all", "attention", "ffn", "none")
            },
        },
    }
    print(json.dumps(finite(out), indent=1))
    if tmp is not None:
        tmp.cleanup()
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

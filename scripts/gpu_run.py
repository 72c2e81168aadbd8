#!/usr/bin/env python
"""The CommonsenseQA comparison of ``scripts/bench_qa.py`` on a single-GPU machine without
network and without spaCy: ground and retrieve here, carry a pack there, train there.

Two steps (``scripts/gpu_run.sh`` runs them with the repository on ``PYTHONPATH``)::

    scripts/gpu_run.sh pack [--pack DIR] [--budget-mib 64] [bench_qa options; default --full]
    scripts/gpu_run.sh run  [--pack DIR] [--time-limit 9] [--allow-cpu] [bench_qa options]

``pack`` (this machine: spaCy, the bundled MiniLM) runs the graph pipeline of the benchmark
(:func:`bench_qa.prepare_graph` without the embeddings) in a fresh cache of its own: the
CN-100K index, the grounded statements of the training and held-out questions, their
retrievals and ERNIE's entity links. It writes them into ``DIR`` (default ``build/gpu-pack``,
ignored by git) gzipped, with the QA file and the graph source, and the encoder (MiniLM) with
its weights in float16 safetensors, plus ``manifest.json`` (the bench_qa options, every file
with its sha256, the graph statistics). It prints the size; over ``--budget-mib`` (64 MiB,
counted with the working tree, which travels with the pack) it removes the pack and fails.

``run`` (the GPU machine: torch, transformers, torch-geometric, accelerate; no spaCy, no
pyarrow, TensorBoard or matplotlib needed) unpacks into ``build/gpu-work`` (the weights widened
back to float32), runs :func:`bench_qa.prepare_graph` there (every grounding and retrieval found
in the carried caches; ERNIE's TransE table trained and the node names embedded on the GPU:
cheaper than carrying them), then the runs of :func:`bench_qa.run_all` with
``--mixed-precision bf16``: each seed of every model before the next seed, and no run started
that would end past ``--time-limit`` minutes after the start (default 9; estimated from the
model's previous seed, else the longest run so far). It prints bench_qa's JSON object on stdout,
with ``settings.device`` (the GPU's name), ``settings.left_out`` (runs the limit left out) and
``settings.gpu_run`` (the pack and what the machine lacked); with ``$OUT`` set it also writes
``$OUT/bench_qa_gpu.json`` (after every run, so a cut command still leaves its figures).
Extra bench_qa options (``--seeds``, ``--models`` of the pack ...) may change the runs, not the
questions or the retrieval the pack holds; ``--resume`` on a machine still warm (``build/gpu-work``
kept) reuses the runs an earlier call finished and continues the one it was cut in.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[1]
KIND = "kelm-gpu-pack"
FORMAT_VERSION = 1
MIB = 1 << 20
CACHE_PARTS = ("graphs", "grounded", "retrieval", "entities")
"""What the pack carries of the pipeline cache (not the linker index: it needs spaCy anyway;
not the embeddings: the GPU machine computes them)."""
PACK_SETTINGS = ("train_questions", "eval_questions", "max_nodes", "scorer")
"""bench_qa settings that decide which questions are grounded and how they are retrieved."""
REQUIRED = ("torch", "transformers", "accelerate", "torch_geometric", "safetensors", "numpy")
REQUIRED += ("yaml", "tqdm", "huggingface_hub")
OPTIONAL = ("spacy", "pyarrow", "tensorboard", "matplotlib")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    """A user error: one line on stderr, exit status 1."""
    raise SystemExit(f"error: {message}")


def bench_module() -> Any:
    """``scripts/bench_qa.py`` (and ``scripts/`` on the path for its ``_bench`` helper)."""
    if str(REPO / "scripts") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("bench_qa", REPO / "scripts" / "bench_qa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------- pack
def tree_bytes(root: Path = REPO) -> int:
    """Bytes of the working tree that travels with the pack (tracked files and untracked ones
    git does not ignore); 0 where git cannot tell."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    paths = (root / os.fsdecode(p) for p in listed.split(b"\0") if p)
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())


def write_half_encoder(source: Path, out: Path) -> dict[str, Any]:
    """``source`` (a Hugging Face folder with one ``model.safetensors``) into ``out`` with the
    floating-point weights in float16; the other files are copied as they are."""
    from safetensors.torch import load_file, save_file

    weights = source / "model.safetensors"
    if not weights.is_file():
        fail(f"{source}: the encoder must be one model.safetensors file (no pickled weights)")
    shutil.copytree(source, out, ignore=shutil.ignore_patterns("model.safetensors", ".*"))
    tensors = load_file(str(weights))
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file({k: v.contiguous() for k, v in half.items()}, str(out / "model.safetensors"))
    return {
        "source": str(source),
        "dtype": "float16",
        "parameters": sum(v.numel() for v in tensors.values()),
    }


def pack_file(source: Path, pack: Path, target: str) -> dict[str, Any]:
    """Gzip ``source`` into ``pack/<target>.gz`` (reproducibly: no name, no time)."""
    data = source.read_bytes()
    out = pack / f"{target}.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
    return {"path": f"{target}.gz", "to": target, "bytes": len(data), "sha256": sha256(data)}


def data_target(path: str, data_root: Path) -> str:
    """Where a data file lies in the pack: ``data/`` plus its path inside ``$KELM_DATA`` (the
    shipped configs name their files as ``${KELM_DATA}/...``)."""
    try:
        return "data/" + Path(path).resolve().relative_to(data_root.resolve()).as_posix()
    except ValueError:
        fail(f"{path}: not inside the data directory {data_root} (KELM_DATA)")


def build_pack(args: argparse.Namespace, bench_argv: list[str], staged: Path) -> dict[str, Any]:
    """Everything the GPU machine needs, into ``staged``; returns the manifest."""
    import tempfile

    from kelm.modeling import default_text_encoder_path
    from kelm.paths import data_dir
    from kelm.training import load_train_config

    bench = bench_module()
    b = bench.parse_args(bench_argv)
    if b.ernie_pretrained is not None or b.mixed_precision != "no" or b.cache:
        fail("the pack takes no --ernie-pretrained, --mixed-precision or --cache")
    from _bench import start

    start(b)
    data_root = data_dir(must_exist=False)  # what ${KELM_DATA} in the configs expands to
    staged.mkdir(parents=True)
    files: list[dict[str, Any]] = []
    graph_stats: dict[str, Any] = {}
    graph_models = [m for m in b.models if m != "lm"]
    with tempfile.TemporaryDirectory(prefix="gpu-pack-cache-", dir=staged.parent) as tmp:
        b.cache = Path(tmp)  # a fresh cache: it holds this benchmark's results only
        cfg = load_train_config(bench.config_of(b.models[0]), bench.overrides(b, b.models[0], 0))
        data = {cfg.data.train}
        if graph_models:
            seconds, graph_stats = bench.prepare_graph(b, embeddings=False)
            log(f"pack: graph pipeline in {seconds:.0f}s")
            g_cfg = load_train_config(
                bench.config_of(graph_models[0]), bench.overrides(b, graph_models[0], 0)
            )
            sources = g_cfg.graph.source
            data.update([sources] if isinstance(sources, str) else list(sources or []))
            for part in CACHE_PARTS:
                for path in sorted((b.cache / part).rglob("*")):
                    hidden = any(p.startswith(".") for p in path.relative_to(b.cache).parts)
                    if path.is_file() and not hidden and ".partial" not in path.name:
                        target = "cache/" + path.relative_to(b.cache).as_posix()
                        files.append(pack_file(path, staged, target))
        for path in sorted(str(p) for p in data if p):
            files.append(pack_file(Path(path), staged, data_target(path, data_root)))
    encoder = Path(b.encoder) if b.encoder else default_text_encoder_path()
    encoder_info = write_half_encoder(encoder, staged / "encoder")
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "bench_args": bench_argv,
        "models": b.models,
        "settings": {k: getattr(b, k) for k in PACK_SETTINGS},
        "graph": graph_stats,
        "encoder": encoder_info,
        "files": files,
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, check=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def pack(argv: list[str]) -> None:
    p = argparse.ArgumentParser(
        prog="gpu_run.sh pack",
        description="Ground and retrieve here, write the pack the GPU machine trains from. "
        "Other options are bench_qa's (default: --full).",
    )
    p.add_argument(
        "--pack", type=Path, default=REPO / "build" / "gpu-pack", help="the pack to write"
    )
    p.add_argument(
        "--budget-mib",
        type=float,
        default=64.0,
        help="most MiB the pack and the working tree may take together",
    )
    args, bench_argv = p.parse_known_args(argv)
    bench_argv = bench_argv or ["--full"]
    staged = args.pack.with_name(f".{args.pack.name}.staged-{os.getpid()}")
    try:
        manifest = build_pack(args, bench_argv, staged)
        (staged / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        size, tree = dir_bytes(staged), tree_bytes()
        total = (size + tree) / MIB
        line = (
            f"pack {size / MIB:.1f} MiB + working tree {tree / MIB:.1f} MiB = {total:.1f} MiB "
            f"of {args.budget_mib:g} MiB"
        )
        if total > args.budget_mib:
            fail(f"{line}: over the budget, nothing written to {args.pack}")
        if args.pack.exists():
            shutil.rmtree(args.pack)
        staged.rename(args.pack)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    log(f"{args.pack}: {line}")
    log(f"carry {args.pack.relative_to(REPO) if args.pack.is_relative_to(REPO) else args.pack}")


# ---------------------------------------------------------------------------------- run
def preflight() -> list[str]:
    """Fail on a missing required module (one line naming them all); the optional ones that
    are missing (the run does without them)."""
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        fail(f"this machine lacks {', '.join(missing)} (needed to train)")
    return [m for m in OPTIONAL if _absent(m)]


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ValueError:  # a module set to None in sys.modules
        return True


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((pack_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        fail(f"{pack_dir}: no readable manifest.json (run `scripts/gpu_run.sh pack` and carry it)")
    if manifest.get("kind") != KIND or manifest.get("format_version") != FORMAT_VERSION:
        fail(f"{pack_dir}: not a version-{FORMAT_VERSION} gpu pack; pack again")
    return manifest


def unpack(pack_dir: Path, manifest: dict[str, Any], work: Path) -> None:
    """The pack's files into ``work`` (checked against their sha256), the encoder's weights
    widened back to float32 (training keeps float32 master weights)."""
    from safetensors.torch import load_file, save_file

    for entry in manifest["files"]:
        target = Path(entry["to"])
        for path in (target, Path(entry["path"])):
            if path.is_absolute() or ".." in path.parts:
                fail(f"{pack_dir}: bad path {str(path)!r} in manifest.json")
        try:
            data = gzip.decompress((pack_dir / entry["path"]).read_bytes())
        except (OSError, EOFError) as exc:
            fail(f"{pack_dir / entry['path']}: unreadable ({exc})")
        if sha256(data) != entry["sha256"]:
            fail(f"{pack_dir / entry['path']}: damaged (sha256 differs); pack again")
        out = work / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    encoder = work / "encoder"
    shutil.rmtree(encoder, ignore_errors=True)
    shutil.copytree(pack_dir / "encoder", encoder, ignore=shutil.ignore_patterns("*.safetensors"))
    tensors = load_file(str(pack_dir / "encoder" / "model.safetensors"))
    wide = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(wide, str(encoder / "model.safetensors"))


def run(argv: list[str]) -> None:
    t0 = time.perf_counter()
    p = argparse.ArgumentParser(
        prog="gpu_run.sh run",
        description="Train the packed comparison on this machine's GPU and print bench_qa's "
        "JSON. Other options are bench_qa's, added to the packed ones.",
    )
    p.add_argument(
        "--pack", type=Path, default=REPO / "build" / "gpu-pack", help="the carried pack"
    )
    p.add_argument(
        "--work",
        type=Path,
        default=REPO / "build" / "gpu-work",
        help="where it is unpacked and the runs go",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=9.0,
        metavar="MIN",
        help="start no run that would end past MIN minutes after the start",
    )
    p.add_argument(
        "--mixed-precision",
        default="bf16",
        choices=("no", "fp16", "bf16"),
        help="autocast of the training (default bf16)",
    )
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU (tests)")
    args, extra = p.parse_known_args(argv)
    lacking = preflight()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        fail("no CUDA device here (pass --allow-cpu to run on the CPU)")
    manifest = read_manifest(args.pack)
    bench = bench_module()
    for flag in ("--encoder", "--cache", "--data-dir", "--out", "--ernie-pretrained"):
        if flag in extra:
            fail(f"{flag} is set by the run (the pack holds the encoder and the data)")
    packed = bench.parse_args(manifest["bench_args"])
    work = args.work.resolve()
    b = bench.parse_args(
        [
            *manifest["bench_args"],
            *extra,
            *("--encoder", str(work / "encoder"), "--cache", str(work / "cache")),
            *("--data-dir", str(work / "data"), "--out", str(work / "bench-qa")),
            *("--mixed-precision", args.mixed_precision, "--time-limit", str(args.time_limit)),
        ]
    )
    changed = [k for k in PACK_SETTINGS if getattr(b, k) != getattr(packed, k)]
    changed += [f"model {m}" for m in b.models if m not in packed.models]
    if changed:
        fail(f"the pack was made for other settings ({', '.join(changed)}); pack again")
    unpack(args.pack, manifest, work)
    os.environ["KELM_CACHE"] = str(work / "kelm-cache")  # frozen features, node-name vectors
    from _bench import start

    start(b)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"gpu run: {bench.device_name()}, pack unpacked in {time.perf_counter() - t0:.0f}s")
    seconds: dict[str, Any] = {}
    graph_stats: dict[str, Any] = {}
    if any(m != "lm" for m in b.models):
        pipeline_seconds, graph_stats = bench.prepare_graph(b, device=device)
        seconds["graph_pipeline"] = round(pipeline_seconds, 1)
        log(f"graph pipeline ready in {pipeline_seconds:.0f}s")
    info = {
        "pack_commit": manifest.get("commit"),
        "pack_created": manifest.get("created"),
        "encoder_carried_as": manifest["encoder"]["dtype"],
        "missing_optional_modules": lacking,
    }
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None

    def result(runs: dict[str, list[dict[str, Any]]], left_out: list[str]) -> dict[str, Any]:
        times = {**seconds, "total": round(time.perf_counter() - t0, 1)}
        report = bench.report(b, runs, left_out, graph_stats, times)
        report["settings"]["gpu_run"] = info
        return report

    def save(runs: dict[str, list[dict[str, Any]]], left_out: list[str]) -> str:
        text = json.dumps(result(runs, left_out), indent=2) + "\n"
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "bench_qa_gpu.json").write_text(text)
        return text

    runs, left_out = bench.run_all(b, t0, after_run=save)
    # The report printed is the one saved (computed twice, their totals could differ by 0.1 s).
    print(save(runs, left_out), end="")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    if not argv or argv[0] not in ("pack", "run"):
        fail("usage: gpu_run.sh pack|run [options] (see --help of each)")
    from kelm.errors import KelmError

    try:
        (pack if argv[0] == "pack" else run)(argv[1:])
    except KelmError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()

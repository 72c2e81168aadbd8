"""What the benchmark scripts (``scripts/bench_*.py``) share.

The scripts run as ``python scripts/bench_x.py``, so Python puts this folder on ``sys.path``
and they import this module by its name, inside ``main()``: tests that load a script with
``importlib`` (and never call ``main``) do not need the folder on the path.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def start(args: argparse.Namespace) -> None:
    """What every benchmark does first: the Hugging Face hub offline (the models are local),
    ``KELM_DATA`` from ``--data-dir``, torch's threads from ``--threads``, and the libraries'
    warnings (only) on stderr, so that stdout holds the JSON result alone."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.data_dir:
        os.environ["KELM_DATA"] = str(args.data_dir)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def cached_graph(relative: str, name: str, fmt: str) -> Path:
    """The graph index of the data directory's file ``relative`` (format ``fmt``), built once
    into ``$KELM_CACHE/bench/NAME`` and reused while the source file keeps its size."""
    from kelm.errors import KelmError
    from kelm.graph.build import build_index
    from kelm.graph.index import GraphIndex
    from kelm.graph.sources.base import BuildOptions
    from kelm.paths import cache_dir, data_file

    source = data_file(relative)
    out = cache_dir() / "bench" / name
    try:
        graph = GraphIndex.load(out, verify=False)
        if source.is_dir() or graph.manifest["inputs"][0]["bytes"] == source.stat().st_size:
            return out
    except KelmError:
        pass
    print(f"building the {name} graph index into {out}", file=sys.stderr, flush=True)
    build_index([source], out, BuildOptions(format=fmt), progress=False)
    return out


__all__ = ["cached_graph", "start"]

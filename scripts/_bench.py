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


__all__ = ["start"]

"""Training multiple-choice QA models (``kelm train``).

* :mod:`~kelm.training.config` - :class:`TrainConfig` and :func:`load_train_config`;
* :mod:`~kelm.training.data` - QA items -> tokenised statements + subgraphs + paths -> batches;
* :mod:`~kelm.training.loop` - :func:`train`, the accelerate training loop;
* :mod:`~kelm.training.runtime` - what it shares with ``kelm pretrain``: accelerate setup,
  run directory, checkpoint writing and resuming, logs;
* :mod:`~kelm.training.checkpoint` - epoch checkpoints (safetensors + JSON) for ``--resume``.

    from kelm.training import load_train_config, train
    result = train(load_train_config("configs/csqa-lm.yaml", ["epochs=1"]))
"""

from __future__ import annotations

from typing import Any

from kelm.training.config import (
    DataConfig,
    GraphConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    load_train_config,
)

__all__ = [
    "DataConfig",
    "GraphConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "load_train_config",
    "train",
]


def __getattr__(name: str) -> Any:  # lazy: the loop imports torch, accelerate, transformers
    if name in ("train", "TrainResult"):
        from kelm.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'kelm.training' has no attribute {name!r}")

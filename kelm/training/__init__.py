"""Fine-tuning multiple-choice QA models (``kelm train``).

* :mod:`~kelm.training.config` - :class:`TrainConfig` and :func:`load_train_config`;
* :mod:`~kelm.training.run_data` - the run's questions, prepared for its family
  (:mod:`kelm.pipeline`);
* :mod:`~kelm.training.model_factory` - the family's tokenizer and a new model with its node
  table initialised;
* :mod:`~kelm.training.loop` - :func:`train`, the accelerate training loop (on
  :mod:`kelm.engine`);
* :mod:`~kelm.training.distillation` - soft targets from a teacher run;
* :mod:`~kelm.training.runs` - finished runs: their model, their predictions on any questions.

    from kelm.training import load_train_config, train
    result = train(load_train_config("configs/csqa-lm.yaml", ["epochs=1"]))
"""

from __future__ import annotations

from typing import Any

from kelm.training.config import (
    DistillConfig,
    GraphConfig,
    ModelConfig,
    QADataConfig,
    TrainConfig,
    TrainOptimConfig,
    load_train_config,
)

__all__ = [
    "DistillConfig",
    "GraphConfig",
    "ModelConfig",
    "QADataConfig",
    "TrainConfig",
    "TrainOptimConfig",
    "TrainResult",
    "load_train_config",
    "train",
]


def __getattr__(name: str) -> Any:  # lazy: the loop imports torch, accelerate, transformers
    if name in ("train", "TrainResult"):
        from kelm.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'kelm.training' has no attribute {name!r}")

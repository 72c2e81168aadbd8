"""Pretraining (``kelm pretrain``): corpora, linked and packed instances, masking, one
accelerate loop for every objective, held-out evaluation and the knowledge probe.

    from kelm.pretraining import load_pretrain_config, pretrain
    result = pretrain(load_pretrain_config("configs/pretrain-mlm.yaml", ["max_steps=100"]))

* :mod:`~kelm.pretraining.config` — :class:`PretrainConfig` (YAML + ``--set`` overrides);
* :mod:`~kelm.pretraining.corpus` — text files and the WordNet gloss reader;
* :mod:`~kelm.pretraining.instances` — link, tokenise, align, pack, cache;
* :mod:`~kelm.pretraining.masking` — BERT 80/10/10 masking from a seeded generator;
* :mod:`~kelm.pretraining.objectives` — the registry, one module per objective (``mlm``,
  ``ernie``, ...);
* :mod:`~kelm.pretraining.loop` — :func:`pretrain`;
* :mod:`~kelm.pretraining.evaluate`, :mod:`~kelm.pretraining.probe` — held-out metrics and the
  CN-100K cloze probe.

Importing this package is cheap: torch and transformers load with the submodules that need
them.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "PretrainConfig": "kelm.pretraining.config",
    "load_pretrain_config": "kelm.pretraining.config",
    "pretrain": "kelm.pretraining.loop",
    "PretrainResult": "kelm.pretraining.loop",
    "probe_model": "kelm.pretraining.probe",
    "probe_run": "kelm.pretraining.probe",
    "get_objective": "kelm.pretraining.objectives",
    "objective_names": "kelm.pretraining.objectives",
    "register_objective": "kelm.pretraining.objectives",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kelm.pretraining' has no attribute {name!r}")

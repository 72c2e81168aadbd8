"""Evaluating trained runs: ``kelm evaluate`` (:func:`evaluate_run`) and ``kelm compare``
(:func:`compare_runs`)."""

from __future__ import annotations

from typing import Any

__all__ = ["compare_runs", "evaluate_run", "format_table"]

_EXPORTS = {
    "compare_runs": "kelm.evaluation.compare",
    "format_table": "kelm.evaluation.compare",
    "evaluate_run": "kelm.evaluation.qa",
}


def __getattr__(name: str) -> Any:  # lazy: keep `import kelm.evaluation` cheap
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kelm.evaluation' has no attribute {name!r}")

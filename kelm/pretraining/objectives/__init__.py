"""The objective registry: one module per objective in this package.

An objective module ``kelm/pretraining/objectives/<name>.py`` defines a subclass of
:class:`~kelm.pretraining.objectives.base.Objective` and exposes it as ``OBJECTIVE``; the
module's name is the objective's name (``objective: <name>`` in a config). Adding a file is
all it takes: the registry lists the package's modules (``base`` excluded).

Objectives defined elsewhere (a plugin) register with :func:`register_objective`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from kelm.errors import KelmError

_EXTRA: dict[str, type] = {}
_NOT_OBJECTIVES = {"base"}


def objective_names() -> list[str]:
    """The valid objective names, sorted."""
    names = {
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and m.name not in _NOT_OBJECTIVES
    }
    return sorted(names | set(_EXTRA))


def register_objective(name: str, cls: type) -> None:
    """Make ``cls`` (an :class:`~kelm.pretraining.objectives.base.Objective` subclass)
    available as ``objective: name``."""
    _EXTRA[name] = cls


def get_objective(name: str) -> Any:
    """The objective class called ``name``.

    Raises:
        KelmError: unknown name (the message lists the valid ones).
    """
    if name in _EXTRA:
        return _EXTRA[name]
    valid = objective_names()
    if name not in valid:
        raise KelmError(f"unknown objective {name!r}; valid objectives: {', '.join(valid)}")
    module = importlib.import_module(f"{__name__}.{name}")
    cls = getattr(module, "OBJECTIVE", None)
    if cls is None:
        raise KelmError(f"{module.__name__} defines no OBJECTIVE class")
    return cls


__all__ = ["get_objective", "objective_names", "register_objective"]

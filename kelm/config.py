"""Configs are dataclasses loaded from YAML, with dotted ``key=value`` overrides.

    cfg = load_config(TrainConfig, "configs/csqa-lm.yaml", ["optim.lr=2e-5", "seed=1"])
    dump_config(cfg, run_dir / "config.resolved.yaml")

An unknown key is a :class:`~kelm.errors.KelmError` that names it and lists the valid keys;
a value of the wrong type names the key and the expected type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from kelm._io import atomic_file
from kelm.errors import KelmError

T = TypeVar("T")


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """Build ``cls`` from a YAML file (optional) and ``key.sub=value`` overrides (applied last)."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise KelmError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise KelmError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(raw, dict):
            raise KelmError(f"{path}: a config must be a mapping of keys to values")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KelmError(f"override {item!r} must look like key.sub=value")
        _set_dotted(raw, key.strip(), yaml.safe_load(value) if value.strip() else None)
    return from_dict(cls, raw, where=str(path) if path else "config")


def from_dict(cls: type[T], raw: dict[str, Any], where: str = "config", prefix: str = "") -> T:
    """Recursively build a dataclass from a dict, checking keys and value types."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        valid = ", ".join(prefix + k for k in fields)
        raise KelmError(f"{where}: unknown key {prefix + unknown[0]!r} (valid keys: {valid})")
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{prefix}{name}", where)
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config (every field, defaults included) as YAML, atomically."""
    with atomic_file(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(_plain(to_dict(cfg)), fh, sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise KelmError(f"override {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _coerce(hint: Any, value: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key, where)
            except KelmError as exc:
                errors.append(str(exc))
        raise KelmError(errors[0] if errors else f"{where}: bad value for {key!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise KelmError(f"{where}: {key!r} must be a section (mapping), got {value!r}")
        return from_dict(hint, value, where, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise KelmError(f"{where}: {key!r} must be a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(inner, v, key, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise KelmError(f"{where}: {key!r} must be a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise KelmError(f"{where}: {key!r} must be one of {list(args)}, got {value!r}")
        return value
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "2e-5" as a string
        try:
            return float(value)
        except ValueError:
            raise KelmError(f"{where}: {key!r} must be float, got {value!r}") from None
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint is bool and not isinstance(value, bool):
        raise KelmError(f"{where}: {key!r} must be true or false, got {value!r}")
    if hint in (int, str, float) and not isinstance(value, hint):
        raise KelmError(f"{where}: {key!r} must be {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise KelmError(f"{where}: {key!r} must be int, got {value!r}")
    return value

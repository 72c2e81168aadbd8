"""One config system: dataclasses loaded from YAML, with dotted ``key=value`` overrides.

    cfg = load_config(TrainConfig, "configs/csqa-lm.yaml", ["optim.lm_lr=2e-5", "seed=1"])
    cfg = load_run_config(TrainConfig, path, overrides)  # + ${VAR} expansion + validate()
    dump_config(cfg, run_dir / "config.resolved.yaml")

An unknown key is a :class:`~kelm.errors.KelmError` that names it and lists the valid keys;
a value of the wrong type names the key and the expected type.

The sections that several commands share are defined here once: :class:`RunConfig` (the run
directory, seed, checkpoints, logging, threads of any loop), :class:`GraphSourceConfig` (which
graph: an index or the KG files to build one from), :class:`EncoderConfig` (the pretrained text
encoder and tokenizer) and :class:`OptimConfig` (AdamW constants and the learning-rate
schedule). ``kelm train`` (:mod:`kelm.training.config`) and ``kelm pretrain``
(:mod:`kelm.pretraining.config`) extend them with their own fields.

String values may use ``${VAR}`` (or ``${VAR:-default}``) environment-variable expansion;
``${KELM_DATA}`` falls back to the default data directory of :func:`kelm.paths.data_dir` when
the variable is not set. Expansion happens when the config is loaded; ``config.resolved.yaml``
holds the expanded values.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from kelm._io import atomic_file
from kelm.errors import KelmError

T = TypeVar("T")

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Check = tuple[str, bool, str]
"""A range check: ``(key, holds, what the key must be)``."""


# ---------------------------------------------------------------------------------- shared sections
@dataclass
class RunConfig:
    """What every run of a loop has (``kelm train``, ``kelm pretrain``).

    Args:
        run_dir: the run directory (config, model, checkpoints, logs, metrics).
        seed: seed of model initialisation, dropout and the batch order.
        eval_batch_size: examples per forward pass in evaluation.
        keep_checkpoints: checkpoints kept (the newest ones; at least 1).
        log_every: optimizer steps between progress lines and TensorBoard points.
        threads: torch CPU threads per process (``None``: torch's default).
        cpu: run on the CPU even when an accelerator is present.
    """

    run_dir: str = "runs/run"
    seed: int = 0
    eval_batch_size: int = 32
    keep_checkpoints: int = 2
    log_every: int = 10
    threads: int | None = None
    cpu: bool = False

    def run_checks(self) -> list[Check]:
        return [
            ("eval_batch_size", self.eval_batch_size >= 1, "at least 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "at least 1"),
            ("log_every", self.log_every >= 1, "at least 1"),
            ("threads", self.threads is None or self.threads >= 1, "at least 1"),
        ]


@dataclass
class GraphSourceConfig:
    """Which knowledge graph: an index, or the KG files to build one from.

    Args:
        index: a graph index directory (``kelm graph build``).
        source: KG file or files to build the index from when ``index`` is not given (built
            once into the cache, keyed on the files' checksums and ``format``).
        format: format of ``source`` (``cn100k``, ``conceptnet``, ``tsv``, ``rdf``,
            ``wordnet``).
        pipeline: installed spaCy pipeline whose tokens and lemmas the linker uses (default:
            blank English with lookup lemmas).
    """

    index: str | None = None
    source: str | list[str] | None = None
    format: str = "cn100k"
    pipeline: str | None = None

    @property
    def has_graph(self) -> bool:
        return bool(self.index or self.source)


@dataclass
class EncoderConfig:
    """The pretrained text encoder.

    Args:
        encoder: Hugging Face name or folder of the encoder (``None``: the bundled
            MiniLM-L6-H384).
        tokenizer: tokenizer name or folder (``None``: the encoder's).
    """

    encoder: str | None = None
    tokenizer: str | None = None


@dataclass
class OptimConfig:
    """AdamW constants and the learning-rate schedule
    (:func:`kelm.engine.optim.make_scheduler`).

    Args:
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        betas, eps: AdamW constants.
        schedule: ``linear`` (warm-up then linear decay to 0), ``cosine`` or ``constant``
            (after warm-up).
        warmup_steps: warm-up optimizer steps.
        max_grad_norm: gradient clipping (``None``: off).
    """

    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0

    def optim_checks(self) -> list[Check]:
        return [
            ("optim.warmup_steps", self.warmup_steps >= 0, "0 or more"),
            ("optim.betas", len(self.betas) == 2, "a list of two numbers"),
        ]


def raise_failed(checks: list[Check]) -> None:
    """Raise for the first check that does not hold.

    Raises:
        KelmError: ``config: '<key>' must be <what>``.
    """
    for key, ok, what in checks:
        if not ok:
            raise KelmError(f"config: {key!r} must be {what}")


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


def load_run_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """:func:`load_config`, then ``${VAR}`` expansion in every string and ``validate()``.

    Raises:
        KelmError: unreadable file, unknown key (naming it and the valid keys), bad value.
    """
    cfg = load_config(cls, path, overrides)
    expand_env_vars(cfg, str(path) if path else "config")
    return cfg.validate()  # type: ignore[attr-defined]


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flat_dict(cfg: Any, leaves: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The config as ``{"a.b": value}``; mappings under a key named in ``leaves`` (free-form
    option mappings) stay one value."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and k not in leaves:
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(to_dict(cfg), "")
    return out


def expand_env(value: str, where: str = "config") -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in a string.

    Raises:
        KelmError: a variable without default is not set (``KELM_DATA`` falls back to
            :func:`kelm.paths.data_dir`).
    """

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if os.environ.get(name):
            return os.environ[name]
        if default is not None:
            return default
        if name == "KELM_DATA":
            from kelm.paths import data_dir

            return str(data_dir(must_exist=False).resolve())
        raise KelmError(f"{where}: environment variable {name} is not set (used as ${{{name}}})")

    return _ENV.sub(repl, value)


def expand_env_vars(obj: Any, where: str) -> None:
    """Expand environment variables in every string field of a dataclass tree, in place."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            expand_env_vars(value, where)
        elif isinstance(value, str) and "${" in value:
            setattr(obj, f.name, expand_env(value, where))
        elif isinstance(value, Path) and "${" in str(value):
            setattr(obj, f.name, Path(expand_env(str(value), where)))
        elif isinstance(value, list):
            setattr(
                obj,
                f.name,
                [expand_env(v, where) if isinstance(v, str) else v for v in value],
            )


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

"""One config system: dataclasses loaded from YAML, with dotted ``key=value`` overrides.

    cfg = load_config(TrainConfig, "configs/csqa-lm.yaml", ["optim.lm_lr=2e-5", "seed=1"])
    cfg = load_run_config(TrainConfig, path, overrides)  # + ${VAR} expansion + validate()
    dump_config(cfg, run_dir / "config.resolved.yaml")

An unknown key is a :class:`~kelm.errors.KelmError` that names it and lists the valid keys;
a value of the wrong type names the key and the expected type; a file that is not UTF-8 YAML
and a ``--set`` value that is not YAML name the file or the item.

Value ranges are declared with the fields (:func:`bounded`): every ``int`` and ``float`` option
of a run config carries its allowed range, every ``float`` must be finite, and
:func:`check_bounds` (called by each config's ``validate()``) refuses the first value out of
range, naming its key (``config: optim.max_grad_norm must be > 0 (null: no clipping), got -1``).
Checks that relate several keys stay in the ``validate()`` methods.

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
import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

from kelm._io import atomic_file, read_small_text
from kelm.errors import KelmError

T = TypeVar("T")

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Check = tuple[str, bool, str]
"""A range check: ``(key, holds, what the key must be)``."""


# ---------------------------------------------------------------------------------- ranges
SEED_LIMIT = 2**32
"""Seeds must lie in ``[0, 2**32)``: numpy's legacy seeding (which accelerate's ``set_seed``
calls) refuses anything else."""


@dataclass(frozen=True)
class Bounds:
    """The values a numeric option may take: ``low`` and ``high`` (``None``: unbounded), each
    end included unless ``low_open`` / ``high_open``; ``note`` is added to the message (what
    ``null`` means, say)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"in {left}{low}, {high}{right}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {low}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {high}"
        else:
            text = "a finite number"
        return f"{text} ({self.note})" if self.note else text


def bounded(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    note: str = "",
) -> Any:
    """A dataclass field whose value (every item of a list value; ``None`` passes) must lie
    within the bounds: ``ge`` / ``gt`` below, ``le`` / ``lt`` above.

        lr: float = bounded(5e-5, gt=0)
        betas: list[float] = bounded(factory=lambda: [0.9, 0.999], ge=0, lt=1)
    """
    bounds = Bounds(
        low=gt if gt is not None else ge,
        high=lt if lt is not None else le,
        low_open=gt is not None,
        high_open=lt is not None,
        note=note,
    )
    metadata = {"bounds": bounds}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Check every numeric value of a dataclass tree against its field's :class:`Bounds`;
    every ``float`` must also be finite (YAML reads ``.inf`` and ``.nan``).

    Raises:
        KelmError: ``config: <key> must be <range>, got <value>`` for the first value out of
            range.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_bounds(value, f"{key}.")
            continue
        bounds = f.metadata.get("bounds")
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise KelmError(f"config: {key} must be {bounds or 'a finite number'}, got {item}")
            if bounds is not None and not bounds.holds(item):
                raise KelmError(f"config: {key} must be {bounds}, got {_shown(item)}")


def unbounded_numbers(cls: type) -> list[str]:
    """The ``int`` / ``float`` fields of a dataclass tree declared without :func:`bounded`
    (the rule is that there are none: a test checks every run config with this)."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += [f"{f.name}.{name}" for name in unbounded_numbers(hint)]  # type: ignore[arg-type]
        elif _numeric(hint) and "bounds" not in f.metadata:
            out.append(f.name)
    return out


def _numeric(hint: Any) -> bool:
    if hint in (int, float):
        return True
    return any(_numeric(arg) for arg in typing.get_args(hint) if arg is not type(None))


def _shown(value: float) -> str:
    """A value as the user wrote it: ``-1`` for the float ``-1.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return "2**32" if value == SEED_LIMIT else _shown(value)


# ---------------------------------------------------------------------------------- shared sections
@dataclass
class RunConfig:
    """What every run of a loop has (``kelm train``, ``kelm pretrain``).

    Args:
        run_dir: the run directory (config, model, checkpoints, logs, metrics).
        seed: seed of model initialisation, dropout and the batch order, in ``[0, 2**32)``.
        eval_batch_size: examples per forward pass in evaluation.
        keep_checkpoints: checkpoints kept (the newest ones; at least 1).
        log_every: optimizer steps between progress lines and TensorBoard points.
        threads: torch CPU threads per process (``None``: torch's default).
        cpu: run on the CPU even when an accelerator is present.
        nonfinite_loss: what a step whose loss (or, without a gradient scaler, gradient norm)
            is NaN or infinite does: ``stop`` the run with an error naming the step (the
            checkpoints written so far stay), or ``skip`` its batch (neither the optimizer nor
            the schedule steps; the skipped steps are counted in ``history.json`` and
            ``metrics.json``). Either way a held-out evaluation whose scores are not finite
            (diverged weights) stops the run.
    """

    command: ClassVar[str] = "kelm"
    """The command whose runs these are (``kelm train``), for messages."""

    run_dir: str = "runs/run"
    seed: int = bounded(0, ge=0, lt=SEED_LIMIT)
    eval_batch_size: int = bounded(32, ge=1)
    keep_checkpoints: int = bounded(2, ge=1)
    log_every: int = bounded(10, ge=1)
    threads: int | None = bounded(None, ge=1, le=1024)
    cpu: bool = False
    nonfinite_loss: Literal["stop", "skip"] = "stop"


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
        max_grad_norm: clip the gradient norm to this (``None``: no clipping).
    """

    weight_decay: float = bounded(0.01, ge=0)
    betas: list[float] = bounded(factory=lambda: [0.9, 0.999], ge=0, lt=1)
    eps: float = bounded(1e-8, gt=0)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_steps: int = bounded(0, ge=0)
    max_grad_norm: float | None = bounded(1.0, gt=0, note="null: no clipping")

    def optim_checks(self) -> list[Check]:
        return [("optim.betas", len(self.betas) == 2, "a list of two numbers")]


def raise_failed(checks: list[Check]) -> None:
    """Raise for the first check that does not hold.

    Raises:
        KelmError: ``config: <key> must be <what>``.
    """
    for key, ok, what in checks:
        if not ok:
            raise KelmError(f"config: {key} must be {what}")


RUN_KINDS: dict[str, tuple[str, ...]] = {
    "kelm train": ("epochs", "distill", "eval_every_epoch"),
    "kelm pretrain": (
        "objective",
        "corpus",
        "max_steps",
        "objective_options",
        "masking",
        "knowledge",
        "probe",
    ),
}
"""Top-level keys that the run configs of one command have and those of the other lack: a
run (or config) of the other command is named as such instead of as an unknown key. Tests check
these sets against :class:`~kelm.training.config.TrainConfig` and
:class:`~kelm.pretraining.config.PretrainConfig`."""


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """Build ``cls`` from a YAML file (optional) and ``key.sub=value`` overrides (applied last).

    Raises:
        KelmError: the file is missing, not UTF-8, not YAML or not a mapping; an override is
            not ``key=YAML value``; an unknown key or a value of the wrong type; the file is
            the config of another command's run (:data:`RUN_KINDS`).
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        raw = read_config_file(path)
        _check_run_kind(cls, raw, path)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise KelmError(f"--set {item!r} must look like key.sub=value")
        _set_dotted(raw, key.strip(), _override_value(item, value))
    return from_dict(cls, raw, where=str(path) if path else "config")


MAX_CONFIG_BYTES = 2**20
"""Config files above this size are refused before they are read (PyYAML parses about a
megabyte a second: a config is a few kilobytes)."""


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of a YAML config file.

    Raises:
        KelmError: one line naming the file (and the line, for YAML errors): missing, not a
            regular file, over :data:`MAX_CONFIG_BYTES`, unreadable, not UTF-8, not YAML,
            not a mapping.
    """
    text = read_small_text(path, what="config file", error=KelmError, max_bytes=MAX_CONFIG_BYTES)
    raw = _parse_yaml(text, str(path))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise KelmError(f"{path}: a config must be a mapping of keys to values")
    return raw


def _override_value(item: str, value: str) -> Any:
    """The YAML value of a ``--set key=value`` item (empty: ``None``)."""
    return _parse_yaml(value, f"--set {item!r}", lines=False) if value.strip() else None


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases of lists and mappings: ten nested aliases of
    ten items each are a few hundred bytes that expand to 10**10 values when the config is
    copied (``dataclasses.asdict``, ``config.resolved.yaml``). Aliases of plain values
    (``gnn_lr: *lr``) stay allowed."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None and not isinstance(node, yaml.ScalarNode):
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"an alias of a list or mapping (*{event.anchor}) is not allowed in a config",
                    event.start_mark,
                )
        return super().compose_node(parent, index)


def _parse_yaml(text: str, where: str, *, lines: bool = True) -> Any:
    """``yaml.load`` with :class:`_ConfigLoader` (safe); errors are one line naming ``where``
    (and the line)."""
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if lines and mark is not None:
            where = f"{where}:{mark.line + 1}"
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise KelmError(f"{where}: invalid YAML ({problem})") from None
    except RecursionError:  # thousands of nested brackets
        raise KelmError(f"{where}: invalid YAML (nested too deeply)") from None


def _check_run_kind(cls: type, raw: dict[str, Any], path: Path) -> None:
    """Refuse the config (or run directory) of another command's run by name: without this,
    a ``kelm pretrain`` run passed where a ``kelm train`` run belongs reads as "unknown key
    'corpus'"."""
    own = getattr(cls, "command", None)
    if own not in RUN_KINDS or any(key in raw for key in RUN_KINDS[own]):
        return
    for command, markers in RUN_KINDS.items():
        found = [key for key in markers if key in raw][:2]  # the most telling ones
        if command == own or not found:
            continue
        keys = " and ".join(found)
        if path.name == "config.resolved.yaml":
            hint = ""
            if command == "kelm pretrain":
                hint = f"; its model/ can be a text encoder: model.encoder={path.parent}/model"
            raise KelmError(
                f"{path.parent}: a `{command}` run directory, not a `{own}` run (its config "
                f"has {keys}){hint}"
            )
        raise KelmError(f"{path}: a `{command}` config, not a `{own}` one (it has {keys})")


def from_dict(cls: type[T], raw: dict[str, Any], where: str = "config", prefix: str = "") -> T:
    """Recursively build a dataclass from a dict, checking keys and value types."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields), key=str)  # YAML keys may be numbers, null ...
    if unknown:
        valid = ", ".join(prefix + k for k in fields)
        raise KelmError(f"{where}: unknown key {prefix + str(unknown[0])!r} (valid keys: {valid})")
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
            raise KelmError(f"--set {key!r}: {part!r} is not a section")
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

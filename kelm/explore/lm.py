"""The zero-shot LM as a column of the explorer: each choice's log-likelihood under a causal LM
(``kelm evaluate --zero-shot``'s scoring, :mod:`kelm.evaluation.zeroshot`), next to the
trained runs.

A :class:`ZeroShotLM` comes from ``kelm explore --lm NAME_OR_DIR`` (a Hugging Face id, a model
folder or a ``.gguf`` file; ``default``: the offline SmolLM2-135M) or from the output folder of
a ``kelm evaluate --zero-shot`` run given as ``--model`` (its ``metrics.json`` names the LM and
the normalisation that scored best there). The model is not loaded at start-up: ``kelm
explore`` loads it in the background while the page is served (:meth:`ZeroShotLM.
load_in_background`), else the first question does.

Per choice the page shows the three normalisations of :data:`~kelm.evaluation.zeroshot.
NORMALIZATIONS` (``sum``, ``mean`` per token, ``pmi`` against the unconditional prompt); the
score column and the pick use one of them.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

import torch

from kelm.data.qa import QAItem
from kelm.errors import KelmError
from kelm.evaluation.zeroshot import NORMALIZATIONS
from kelm.explore.runs import ChoiceExplanation, RunExplanation

#: What ``--lm`` takes for the package's own SmolLM2-135M (``kelm evaluate``'s default).
DEFAULT_LM = "default"
#: The family name the page shows for the column.
FAMILY = "zero-shot"


class ZeroShotLM:
    """A causal LM scoring the choices of the explorer's questions (see the module doc).

    Args:
        lm: a Hugging Face id, a model folder, a ``.gguf`` file, or :data:`DEFAULT_LM`.
        gguf_file: a GGUF file inside ``lm``.
        normalization: the one the score column and the pick use (default ``mean``).
        device: where the model runs (default CPU).
        label: what the page calls it (default: the folder or file name of ``lm``).

    Raises:
        KelmError: an unknown normalisation (a model that cannot be loaded is reported on the
            first question, in the page).
    """

    graph = None  # no graph: the explorer's graph checks skip it

    def __init__(
        self,
        lm: str | Path | None = DEFAULT_LM,
        gguf_file: str | Path | None = None,
        *,
        normalization: str = "mean",
        device: str | None = None,
        label: str | None = None,
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise KelmError(
                f"unknown normalization {normalization!r}; choose one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        spec = str(lm).strip() if lm is not None else ""
        self.lm: str | None = None if spec in ("", DEFAULT_LM) else spec
        if self.lm is not None and Path(self.lm).exists():
            # "a/b" is both a Hugging Face id and a relative path: a path that exists wins.
            self.lm = str(Path(self.lm).resolve())
        self.gguf_file = gguf_file
        self.normalization = normalization
        self.device = torch.device(device or "cpu")
        self.run_dir = Path(label or (Path(self.lm).name if self.lm else "smollm2-135m"))
        self._loaded: tuple[Any, Any, int | None] | None = None
        self._lock = threading.Lock()  # Gradio answers requests from several threads

    @classmethod
    def from_evaluation(cls, out_dir: Path, device: str | None = None) -> ZeroShotLM:
        """The LM of a ``kelm evaluate --zero-shot`` output folder, with the normalisation that
        scored best there (ties: the first of ``sum``, ``mean``, ``pmi``).

        Raises:
            KelmError: no readable ``metrics.json`` of a zero-shot evaluation.
        """
        metrics = read_zero_shot_metrics(out_dir)
        if metrics is None:
            raise KelmError(f"{out_dir}: not a zero-shot evaluation (no metrics.json from one)")
        from kelm.modeling.causal_lm import SMOLLM2_PACKAGE

        name = str(metrics.get("model") or "")
        lm = DEFAULT_LM if not name or name.startswith(f"{SMOLLM2_PACKAGE}/") else name
        accuracy = metrics.get("accuracy")
        best = "mean"
        if isinstance(accuracy, dict) and accuracy:
            scored = [n for n in NORMALIZATIONS if isinstance(accuracy.get(n), (int, float))]
            if scored:
                best = max(scored, key=lambda n: accuracy[n])
        return cls(lm, normalization=best, device=device, label=str(out_dir))

    @property
    def name(self) -> str:
        """``zero-shot (LM, normalisation)``: how the page labels the column."""
        return f"{FAMILY} ({self.run_dir.name}, {self.normalization})"

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load_in_background(self) -> threading.Thread:
        """Start loading the model in a thread: ``kelm explore`` serves the page meanwhile (a
        GGUF checkpoint takes tens of seconds to de-quantise on 2 cores) and the first question
        waits only for what is left. A failure is reported by that question."""

        def work() -> None:
            with contextlib.suppress(Exception):  # explain() loads again and says why
                self._load()

        thread = threading.Thread(target=work, name="kelm-explore-lm", daemon=True)
        thread.start()
        return thread

    def _load(self) -> tuple[Any, Any, int | None]:
        with self._lock:
            if self._loaded is None:
                from kelm.modeling.causal_lm import context_window, load_causal_lm

                model, tokenizer, _ = load_causal_lm(
                    self.lm, self.gguf_file, device=self.device, progress=False
                )
                self._loaded = (model, tokenizer, context_window(model))
            return self._loaded

    def explain(self, item: QAItem, *, top: int = 10) -> RunExplanation:
        """Score ``item``'s choices; each choice's ``loglik`` holds all three normalisations
        and its token count (``top`` is unused: there is no attention to rank)."""
        from kelm.evaluation.prompts import build_requests
        from kelm.evaluation.zeroshot import score_requests

        model, tokenizer, window = self._load()
        requests = build_requests([item], tokenizer, max_length=window)
        with torch.inference_mode():
            (scores,) = score_requests(model, requests, device=self.device)
        by_norm = {n: scores.normalized(n) for n in NORMALIZATIONS}
        chosen = torch.tensor(by_norm[self.normalization], dtype=torch.float64)
        probs = torch.softmax(chosen, -1)
        choices = [
            ChoiceExplanation(
                float(chosen[c]),
                float(probs[c]),
                loglik={
                    **{n: float(by_norm[n][c]) for n in NORMALIZATIONS},
                    "tokens": int(scores.tokens[c]),
                },
            )
            for c in range(len(item.choices))
        ]
        best = int(torch.argmax(chosen)) if chosen.numel() else 0
        return RunExplanation(str(self.run_dir), f"{FAMILY} {self.normalization}", choices, best)


def read_zero_shot_metrics(out_dir: Path) -> dict[str, Any] | None:
    """``metrics.json`` of a ``kelm evaluate --zero-shot`` (or few-shot) output folder, else
    ``None`` (no such file, unreadable, or another kind of metrics)."""
    try:
        metrics = json.loads((Path(out_dir) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict):
        return None
    evaluation = str(metrics.get("evaluation") or "")
    return metrics if evaluation.endswith("-shot") else None


__all__ = ["DEFAULT_LM", "ZeroShotLM", "read_zero_shot_metrics"]

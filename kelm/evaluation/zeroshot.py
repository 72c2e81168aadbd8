"""Zero-shot and few-shot multiple-choice evaluation with causal LMs (GPT-2 / GPT-3 style).

``kelm evaluate --zero-shot --lm NAME_OR_PATH --qa FILE [--shots K --demos TRAIN_FILE]``.

Each question becomes a prompt and each choice a continuation; a choice's score is the
log-likelihood of its tokens given the prompt, under three normalisations reported side by
side (:data:`NORMALIZATIONS`):

* ``sum``  - ``log P(choice | prompt)``, the sum over the choice's tokens;
* ``mean`` - that sum divided by the number of choice tokens;
* ``pmi``  - ``log P(choice | prompt) - log P(choice | unconditional prompt)``: how much the
  question raises the choice's probability over its prior (GPT-3's "unconditional"
  normalisation; the unconditional prompt is ``"Answer:"``, or COPA's bare connective).

Prompt formats (:func:`format_item`):

* CommonsenseQA / OpenBookQA: ``"Question: <stem>\\nAnswer:"`` + ``" <choice>"``; an OpenBookQA
  ``fact1`` goes first as ``"Fact: <fact1>\\n"``.
* COPA: the premise without its final full stop, then ``" because"`` (asks for the cause) or
  ``" so"`` (the effect), + ``" <alternative>"`` with its first letter lower-cased (``"I ..."``
  kept): ``"The man broke his toe because"`` + ``" he dropped a hammer on his foot."``.

Few-shot: K demonstrations (the demo's prompt + its correct continuation) sampled per question
with a generator seeded by ``(seed, question id)``, joined by blank lines before the question.
The pool never contains the evaluated question itself nor a near-copy of it (same id, same
question text, or the same set of choices - Balanced COPA's mirrored twin of an item), nor, by
default, any other evaluated question (a training file that holds the held-out questions gives
only its other ones; a demonstration file that is the evaluated file itself is used
leave-one-out). When the
prompt plus the longest choice exceeds the context window, demonstrations are dropped from the
front (the farthest from the question) and counted; the question is never truncated.

Tokenisation: the prompt and each continuation are tokenised *separately* and concatenated, so
that a choice's tokens are exactly the tokens of ``" <choice>"`` whatever the prompt (no BPE
merge across the boundary, the same tokens in the conditional and unconditional scores) and all
choices of a question share the prompt's tokens - what the prefix cache needs. The leading
space belongs to the continuation; tokenizers that add their own prefix space (SentencePiece's
dummy prefix) get the bare text.

The model is loaded by :func:`kelm.modeling.causal_lm.load_causal_lm` (default: the offline
SmolLM2-135M-Instruct).

Outputs, as for trained models (:mod:`kelm.evaluation.qa`): ``predictions.jsonl`` (one line per
question: id, predicted label per normalisation, answer, correct per normalisation, scores) and
``metrics.json`` (``{"accuracy": {"sum", "mean", "pmi"}, "n", "shots", "dropped_demos", ...}``),
both written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import atomic_file, sha256_file, write_json
from kelm.errors import KelmError

if TYPE_CHECKING:
    import torch

    from kelm.data.qa import QAItem

log = logging.getLogger(__name__)

NORMALIZATIONS: tuple[str, ...] = ("sum", "mean", "pmi")
"""The score normalisations, in report order."""
UNCONDITIONAL_QA = "Answer:"
"""The unconditional prompt of the PMI normalisation for question-answer items."""
COPA_CONNECTIVES = {"cause": "because", "effect": "so"}
DEMO_SEPARATOR = "\n\n"
UNCONDITIONAL_CHUNK = 16
"""Continuations per unconditional request (they all share one short prompt)."""


# ---------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class PromptParts:
    """The texts of one question, before demonstrations and tokenisation.

    Attributes:
        context: the conditional prompt (ends without whitespace).
        unconditional: the prompt of the PMI denominator.
        choices: the continuation texts, in choice order, without the leading space.
    """

    context: str
    unconditional: str
    choices: list[str]


def is_copa(item: QAItem) -> bool:
    """A COPA item (the reader keeps its premise and what it asks for)."""
    return "premise" in item.meta and item.meta.get("asks_for") in COPA_CONNECTIVES


def _lower_first(text: str) -> str:
    text = text.strip()
    if not text or text == "I" or text.startswith(("I ", "I'")):
        return text  # the pronoun keeps its capital
    return text[0].lower() + text[1:]


def format_item(item: QAItem) -> PromptParts:
    """Prompt, unconditional prompt and continuations of one item (see the module docstring)."""
    if is_copa(item):
        connective = COPA_CONNECTIVES[item.meta["asks_for"]]
        premise = item.meta["premise"].strip()
        if premise.endswith((".", "!")):
            premise = premise[:-1].rstrip()
        return PromptParts(
            f"{premise} {connective}", connective, [_lower_first(c.text) for c in item.choices]
        )
    lines = []
    if item.meta.get("fact1"):
        lines.append(f"Fact: {item.meta['fact1'].strip()}")
    lines.append(f"Question: {item.question.strip()}")
    lines.append("Answer:")
    return PromptParts("\n".join(lines), UNCONDITIONAL_QA, [c.text.strip() for c in item.choices])


def demo_text(item: QAItem) -> str:
    """A demonstration: the item's prompt followed by its correct continuation."""
    parts = format_item(item)
    index = item.answer_index
    if index is None:
        raise KelmError(f"demonstration {item.id!r} has no answer key")
    return f"{parts.context} {parts.choices[index]}"


def build_prompt(item: QAItem, demos: Sequence[QAItem]) -> str:
    """The demonstrations and the question's prompt, separated by blank lines."""
    return DEMO_SEPARATOR.join([*(demo_text(d) for d in demos), format_item(item).context])


# ---------------------------------------------------------------------------------- demos
def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _keys(item: QAItem) -> tuple[str, str, frozenset[str]]:
    return item.id, _norm(item.question), frozenset(_norm(c.text) for c in item.choices)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


class DemoSampler:
    """Seeded per-question sampling of K demonstrations from a pool of answered items.

    A question's demonstrations depend only on ``(seed, question id)``, not on the order or
    batching of the evaluation. Pool items that are the question itself or a near-copy
    (same id, same question text, or same set of choices) are never drawn.

    Args:
        pool: candidate demonstrations (items without an answer key are left out).
        seed: sampling seed.
        exclude: items removed from the pool altogether, with their near-copies (the
            evaluated questions, when the pool is a training file that may contain them).
    """

    def __init__(
        self, pool: Sequence[QAItem], seed: int = 0, exclude: Sequence[QAItem] = ()
    ) -> None:
        banned: list[set[Any]] = [set(), set(), set()]
        for item in exclude:
            for key, values in zip(_keys(item), banned, strict=True):
                values.add(key)
        self.pool = [
            item
            for item in pool
            if item.answer_index is not None
            and not any(k in b for k, b in zip(_keys(item), banned, strict=True))
        ]
        self.seed = int(seed)
        self._keys = [_keys(item) for item in self.pool]

    def _allowed(self, j: int, keys: tuple[str, str, frozenset[str]]) -> bool:
        return all(a != b for a, b in zip(self._keys[j], keys, strict=True))

    def sample(self, item: QAItem, k: int) -> list[QAItem]:
        """``k`` demonstrations for ``item``, in prompt order.

        Raises:
            KelmError: fewer than ``k`` usable items in the pool.
        """
        if k <= 0:
            return []
        keys = _keys(item)
        rng = np.random.default_rng([self.seed, _stable_int(item.id)])
        # A few spare draws absorb the (rare) excluded items; the full permutation otherwise.
        draw = rng.choice(len(self.pool), size=min(len(self.pool), k + 8), replace=False)
        chosen = [int(j) for j in draw if self._allowed(int(j), keys)][:k]
        if len(chosen) < k:
            chosen = [int(j) for j in rng.permutation(len(self.pool)) if self._allowed(j, keys)]
            chosen = chosen[:k]
        if len(chosen) < k:
            raise KelmError(
                f"the demonstration file has {len(chosen)} usable answered items for question "
                f"{item.id!r}, fewer than --shots {k}"
            )
        return [self.pool[j] for j in chosen]


# ---------------------------------------------------------------------------------- tokens
class PromptEncoder:
    """Token ids of prompts and continuations (see the module docstring on tokenisation).

    Args:
        tokenizer: a Hugging Face tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        plain = self._ids("a")
        with_special = list(tokenizer("a", add_special_tokens=True)["input_ids"])
        # The special tokens the tokenizer puts *before* a text (e.g. Llama's <s>); trailing
        # ones (an EOS) would end the prompt, so they are left out.
        self.leading: list[int] = []
        for k in range(len(with_special) - len(plain) + 1):
            if with_special[k : k + len(plain)] == plain:
                self.leading = with_special[:k]
                break
        # SentencePiece-style tokenizers add a prefix space themselves: " x" and "x" encode
        # alike, or the first piece of "x" already carries the word-start marker.
        first = tokenizer.convert_ids_to_tokens(plain[:1])
        self.own_prefix_space = self._ids(" a") == plain or (
            bool(first) and isinstance(first[0], str) and first[0].startswith("\u2581")
        )

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, text: str) -> list[int]:
        """The prompt's ids (with the tokenizer's leading special tokens, e.g. BOS)."""
        return self.leading + self._ids(text)

    def continuation(self, text: str) -> list[int]:
        """The ids of ``" " + text``, standing alone."""
        return self._ids(text if self.own_prefix_space else f" {text}")


@dataclass
class Request:
    """One question, tokenised: its prompt (with demonstrations) and its choices.

    Attributes:
        item: the question.
        prompt_ids: the conditional prompt.
        unconditional_ids: the PMI prompt.
        choice_ids: one list of ids per choice.
        demos: the ids of the demonstrations kept in the prompt.
        dropped: demonstrations sampled but dropped to fit the context window.
    """

    item: QAItem
    prompt_ids: list[int]
    unconditional_ids: list[int]
    choice_ids: list[list[int]]
    demos: list[str] = field(default_factory=list)
    dropped: int = 0


def build_requests(
    items: Sequence[QAItem],
    tokenizer: Any,
    *,
    shots: int = 0,
    pool: Sequence[QAItem] | None = None,
    seed: int = 0,
    max_length: int | None = None,
    exclude_evaluated: bool = True,
) -> list[Request]:
    """Prompts with their demonstrations, tokenised, fitted to ``max_length``.

    Args:
        items: the questions to evaluate.
        tokenizer: the LM's tokenizer.
        shots: demonstrations per question (K).
        pool: the items demonstrations are drawn from (required when ``shots > 0``).
        seed: demonstration sampling seed.
        max_length: the context window in tokens (``None``: unlimited).
        exclude_evaluated: no evaluated question (nor a near-copy) is ever a demonstration;
            off: only the question itself is left out (leave-one-out, for a pool that *is*
            the evaluated set).

    Raises:
        KelmError: a choice without tokens, a question that does not fit even without
            demonstrations, too small a pool.
    """
    if shots > 0 and not pool:
        raise KelmError("few-shot evaluation needs demonstrations (--demos TRAIN_FILE)")
    encoder = PromptEncoder(tokenizer)
    sampler = None
    if shots > 0:
        sampler = DemoSampler(pool or [], seed, exclude=items if exclude_evaluated else ())
    requests = []
    for item in items:
        parts = format_item(item)
        choice_ids = [encoder.continuation(text) for text in parts.choices]
        for c, ids in zip(item.choices, choice_ids, strict=True):
            if not ids:
                raise KelmError(f"question {item.id!r}: choice {c.label!r} has no tokens")
        longest = max(len(ids) for ids in choice_ids)
        uncond = encoder.prompt(parts.unconditional)
        demos = sampler.sample(item, shots) if sampler else []
        sampled = len(demos)
        prompt = encoder.prompt(build_prompt(item, demos))
        while max_length is not None and len(prompt) + longest > max_length and demos:
            demos = demos[1:]  # the farthest from the question goes first
            prompt = encoder.prompt(build_prompt(item, demos))
        if max_length is not None and max(len(prompt), len(uncond)) + longest > max_length:
            raise KelmError(
                f"question {item.id!r}: the prompt and its longest choice take "
                f"{len(prompt) + longest} tokens, more than the context window of {max_length} "
                "even without demonstrations"
            )
        requests.append(
            Request(item, prompt, uncond, choice_ids, [d.id for d in demos], sampled - len(demos))
        )
    return requests


# ---------------------------------------------------------------------------------- scoring
@dataclass
class QuestionScores:
    """The scores of one question's choices.

    Attributes:
        conditional: ``log P(choice | prompt)`` per choice.
        unconditional: ``log P(choice | unconditional prompt)`` per choice.
        tokens: tokens per choice.
    """

    conditional: np.ndarray
    unconditional: np.ndarray
    tokens: np.ndarray

    def normalized(self, name: str) -> np.ndarray:
        """The scores under one of :data:`NORMALIZATIONS`."""
        if name == "sum":
            return self.conditional
        if name == "mean":
            return self.conditional / self.tokens
        if name == "pmi":
            return self.conditional - self.unconditional
        raise ValueError(f"unknown normalization {name!r}; choose one of {NORMALIZATIONS}")


def score_requests(
    model: Any,
    requests: Sequence[Request],
    *,
    batch_size: int = 8,
    method: str = "cached",
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[QuestionScores]:
    """Conditional and unconditional log-likelihoods of every request's choices.

    The unconditional scores are computed once per distinct (unconditional prompt, choice
    tokens) pair: a choice that recurs across questions costs one continuation.
    """
    from kelm.evaluation.loglik import score_continuations

    conditional = score_continuations(
        model,
        [r.prompt_ids for r in requests],
        [r.choice_ids for r in requests],
        batch_size=batch_size,
        method=method,  # type: ignore[arg-type]
        device=device,
        progress=progress,
        desc="scoring",
    )
    by_prompt: dict[tuple[int, ...], dict[tuple[int, ...], float]] = {}
    for r in requests:
        bucket = by_prompt.setdefault(tuple(r.unconditional_ids), {})
        for ids in r.choice_ids:
            bucket.setdefault(tuple(ids), 0.0)
    prefixes, conts = [], []
    for prompt, bucket in by_prompt.items():
        keys = list(bucket)
        for start in range(0, len(keys), UNCONDITIONAL_CHUNK):
            prefixes.append(list(prompt))
            conts.append([list(k) for k in keys[start : start + UNCONDITIONAL_CHUNK]])
    sums = score_continuations(
        model,
        prefixes,
        conts,
        batch_size=batch_size,
        method=method,  # type: ignore[arg-type]
        device=device,
        progress=progress,
        desc="unconditional",
    )
    for prompt, chunk, values in zip(prefixes, conts, sums, strict=True):
        bucket = by_prompt[tuple(prompt)]
        for ids, value in zip(chunk, values, strict=True):
            bucket[tuple(ids)] = float(value)
    out = []
    for r, cond in zip(requests, conditional, strict=True):
        bucket = by_prompt[tuple(r.unconditional_ids)]
        out.append(
            QuestionScores(
                conditional=cond,
                unconditional=np.array([bucket[tuple(ids)] for ids in r.choice_ids]),
                tokens=np.array([len(ids) for ids in r.choice_ids], dtype=np.float64),
            )
        )
    return out


# ---------------------------------------------------------------------------------- results
def accuracy(requests: Sequence[Request], scores: Sequence[QuestionScores]) -> dict[str, Any]:
    """``{"n", "n_labelled"}`` plus ``"accuracy": {normalisation: value}`` when any question
    has an answer key (ties go to the first choice)."""
    correct = dict.fromkeys(NORMALIZATIONS, 0)
    labelled = 0
    for r, s in zip(requests, scores, strict=True):
        gold = r.item.answer_index
        if gold is None:
            continue
        labelled += 1
        for name in NORMALIZATIONS:
            correct[name] += int(int(np.argmax(s.normalized(name))) == gold)
    out: dict[str, Any] = {"n": len(requests), "n_labelled": labelled}
    if labelled:
        out["accuracy"] = {name: correct[name] / labelled for name in NORMALIZATIONS}
    return out


def write_zero_shot_predictions(
    path: str | Path, requests: Sequence[Request], scores: Sequence[QuestionScores]
) -> None:
    """One JSON line per question (atomically): ``id``, ``prediction`` and ``correct`` (by
    normalisation), ``answer`` (label or null), ``scores`` (by normalisation, then by choice
    label), ``tokens`` (by label), ``demos`` (ids) and ``dropped_demos``."""
    with atomic_file(path, "w", encoding="utf-8") as fh:
        for r, s in zip(requests, scores, strict=True):
            labels = [c.label for c in r.item.choices]
            gold = r.item.answer_index
            row: dict[str, Any] = {"id": r.item.id, "prediction": {}, "answer": r.item.answer}
            row["correct"] = {} if gold is not None else None
            row["scores"] = {}
            for name in NORMALIZATIONS:
                values = s.normalized(name)
                pred = int(np.argmax(values))
                row["prediction"][name] = labels[pred]
                if gold is not None:
                    row["correct"][name] = pred == gold
                row["scores"][name] = {
                    label: round(float(v), 6) for label, v in zip(labels, values, strict=True)
                }
            row["tokens"] = {label: int(n) for label, n in zip(labels, s.tokens, strict=True)}
            row["demos"] = r.demos
            row["dropped_demos"] = r.dropped
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def evaluate_items(
    model: Any,
    tokenizer: Any,
    items: Sequence[QAItem],
    *,
    shots: int = 0,
    pool: Sequence[QAItem] | None = None,
    seed: int = 0,
    batch_size: int = 8,
    max_length: int | None = None,
    method: str = "cached",
    device: str | torch.device | None = None,
    progress: bool = False,
    exclude_evaluated: bool = True,
) -> tuple[dict[str, Any], list[Request], list[QuestionScores]]:
    """Score QA items with a loaded causal LM (the library form of ``--zero-shot``).

    Args:
        model: a causal LM in eval mode.
        tokenizer: its tokenizer.
        items: the questions.
        shots: demonstrations per question.
        pool: where demonstrations come from.
        seed: demonstration sampling seed.
        batch_size: questions per forward pass.
        max_length: context window cap (default and upper bound: the model's own).
        method: ``cached`` (shared-prefix cache) or ``naive``.
        device: input device (default: the model's).
        progress: progress bars.
        exclude_evaluated: keep every evaluated question out of the demonstrations (off:
            leave-one-out, when ``pool`` is the evaluated set itself).

    Returns:
        ``(metrics, requests, scores)``; ``metrics`` has ``accuracy`` (by normalisation),
        ``n``, ``n_labelled``, ``shots``, ``dropped_demos``, token counts and timing.
    """
    from kelm.modeling.causal_lm import context_window

    window = context_window(model)
    limit = min(v for v in (window, max_length) if v is not None) if window or max_length else None
    requests = build_requests(
        items,
        tokenizer,
        shots=shots,
        pool=pool,
        seed=seed,
        max_length=limit,
        exclude_evaluated=exclude_evaluated,
    )
    start = time.perf_counter()
    scores = score_requests(
        model, requests, batch_size=batch_size, method=method, device=device, progress=progress
    )
    seconds = time.perf_counter() - start
    dropped = [r.dropped for r in requests]
    metrics = {
        **accuracy(requests, scores),
        "shots": shots,
        "seed": seed,
        "demos_exclude_evaluated": exclude_evaluated if shots else None,
        "dropped_demos": int(sum(dropped)),
        "questions_with_dropped_demos": int(sum(d > 0 for d in dropped)),
        "max_length": limit,
        "method": method,
        "prompt_tokens": int(sum(len(r.prompt_ids) for r in requests)),
        "choice_tokens": int(sum(sum(len(c) for c in r.choice_ids) for r in requests)),
        "seconds": round(seconds, 3),
        "questions_per_second": round(len(requests) / max(seconds, 1e-9), 3),
    }
    return metrics, requests, scores


def evaluate_zero_shot(
    qa_file: str | Path,
    out_dir: str | Path,
    *,
    lm: str | Path | None = None,
    gguf_file: str | Path | None = None,
    shots: int = 0,
    demos: str | Path | None = None,
    seed: int = 0,
    batch_size: int = 8,
    max_length: int | None = None,
    method: str = "cached",
    max_questions: int | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``kelm evaluate --zero-shot``: score a QA file with a causal LM, write the results.

    Args:
        qa_file: CommonsenseQA (either form) / OpenBookQA JSONL or COPA XML; answer keys
            optional (without them: predictions and no accuracy).
        out_dir: where ``metrics.json`` and ``predictions.jsonl`` go.
        lm: Hugging Face id, folder or ``.gguf`` file (default: SmolLM2-135M-Instruct).
        gguf_file: a GGUF file inside ``lm``.
        shots: demonstrations per question (0: zero-shot).
        demos: the training file demonstrations are drawn from (needed when ``shots > 0``);
            evaluated questions in it are never drawn, except when it is the evaluated file
            itself: then each question's demonstrations are the other questions.
        seed: demonstration sampling seed.
        batch_size: questions per forward pass.
        max_length: context window cap in tokens (default: the model's).
        method: ``cached`` or ``naive`` (no shared-prefix cache; the reference).
        max_questions: score only the first N questions of ``qa_file`` (``None``: all).
        device: ``cpu`` or ``cuda`` (default: auto).
        progress: progress bars.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        KelmError: bad QA or demonstration file, model, options, or a question that does not
            fit the context window.
    """
    from kelm.evaluation.loglik import METHODS
    from kelm.modeling.causal_lm import load_causal_lm
    from kelm.training.data import read_items

    if shots < 0:
        raise KelmError("--shots must be at least 0")
    if shots > 0 and demos is None:
        raise KelmError(f"--shots {shots} needs --demos TRAIN_FILE (the demonstration pool)")
    if batch_size < 1:
        raise KelmError("--batch-size must be at least 1")
    if max_length is not None and max_length < 2:
        raise KelmError("--max-length must be at least 2")
    if method not in METHODS:
        raise KelmError(f"unknown scoring method {method!r}; choose one of {', '.join(METHODS)}")
    if max_questions is not None and max_questions < 1:
        raise KelmError("--max-questions must be at least 1")
    items = read_items(qa_file, need_answers=False)[:max_questions]
    pool = read_items(demos, need_answers=True) if shots > 0 and demos is not None else None
    # A separate training file gives no evaluated question as a demonstration (it may hold
    # the held-out ones); demonstrations from the evaluated file itself are leave-one-out.
    same_file = pool is not None and sha256_file(demos) == sha256_file(qa_file)
    out_dir = Path(out_dir)
    model, tokenizer, name = load_causal_lm(lm, gguf_file, device=device, progress=progress)
    metrics, requests, scores = evaluate_items(
        model,
        tokenizer,
        items,
        shots=shots,
        pool=pool,
        seed=seed,
        batch_size=batch_size,
        max_length=max_length,
        method=method,
        progress=progress,
        exclude_evaluated=not same_file,
    )
    metrics = {
        **{k: metrics[k] for k in ("accuracy", "n", "n_labelled") if k in metrics},
        "model": name,
        "evaluation": "zero-shot" if shots == 0 else f"{shots}-shot",
        **{k: v for k, v in metrics.items() if k not in ("accuracy", "n", "n_labelled")},
        "qa_file": str(qa_file),
        "qa_sha256": sha256_file(qa_file),
        "demos_file": str(demos) if pool is not None else None,
        "demos_sha256": sha256_file(demos) if pool is not None else None,
        "normalizations": list(NORMALIZATIONS),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_zero_shot_predictions(out_dir / "predictions.jsonl", requests, scores)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


__all__ = [
    "NORMALIZATIONS",
    "DemoSampler",
    "PromptEncoder",
    "PromptParts",
    "QuestionScores",
    "Request",
    "accuracy",
    "build_prompt",
    "build_requests",
    "evaluate_items",
    "evaluate_zero_shot",
    "format_item",
    "score_requests",
    "write_zero_shot_predictions",
]

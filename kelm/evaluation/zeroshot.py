"""Zero-shot and few-shot multiple-choice evaluation with causal LMs (GPT-2 / GPT-3 style).

``kelm evaluate --zero-shot --lm NAME_OR_PATH --qa FILE [--shots K --demos TRAIN_FILE]``.

Each question becomes a prompt and each choice a continuation (:mod:`kelm.evaluation.prompts`:
formats, demonstrations, tokenisation into :class:`~kelm.evaluation.prompts.Request`); a
choice's score is the log-likelihood of its tokens given the prompt
(:func:`kelm.evaluation.loglik.score_continuations`), under three normalisations reported side
by side (:data:`NORMALIZATIONS`):

* ``sum``  - ``log P(choice | prompt)``, the sum over the choice's tokens;
* ``mean`` - that sum divided by the number of choice tokens;
* ``pmi``  - ``log P(choice | prompt) - log P(choice | unconditional prompt)``: how much the
  question raises the choice's probability over its prior (GPT-3's "unconditional"
  normalisation; the unconditional prompt is ``"Answer:"``, or COPA's bare connective).

The model is loaded by :func:`kelm.modeling.causal_lm.load_causal_lm` (default: the offline
SmolLM2-135M-Instruct).

With ``--knowledge GRAPH_DIR`` every question is scored twice, without and with graph facts in
its prompt (:mod:`kelm.evaluation.knowledge`), and the two are written side by side.

Outputs, as for trained models (:mod:`kelm.evaluation.qa`): ``predictions.jsonl`` (one line per
question: id, predicted label per normalisation, answer, correct per normalisation, scores) and
``metrics.json`` (``{"accuracy": {"sum", "mean", "pmi"}, "n", "shots", "dropped_demos", ...}``),
both written atomically.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import atomic_file, check_output_dir, make_output_dir, sha256_file, write_json
from kelm.errors import KelmError
from kelm.evaluation.knowledge import (
    KnowledgeOptions,
    load_knowledge_graph,
    question_facts,
    retrieve_facts,
)
from kelm.evaluation.prompts import Request, build_requests

if TYPE_CHECKING:
    import torch

    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex

log = logging.getLogger(__name__)

NORMALIZATIONS: tuple[str, ...] = ("sum", "mean", "pmi")
"""The score normalisations, in report order."""
UNCONDITIONAL_CHUNK = 16
"""Continuations per unconditional request (they all share one short prompt)."""


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


def _scored(r: Request, s: QuestionScores) -> dict[str, Any]:
    """``prediction``, ``correct`` and ``scores`` of one question, by normalisation."""
    labels = [c.label for c in r.item.choices]
    gold = r.item.answer_index
    row: dict[str, Any] = {"prediction": {}, "correct": {} if gold is not None else None}
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
    return row


def write_zero_shot_predictions(
    path: str | Path,
    requests: Sequence[Request],
    scores: Sequence[QuestionScores],
    knowledge: tuple[Sequence[Request], Sequence[QuestionScores]] | None = None,
) -> None:
    """One JSON line per question (atomically): ``id``, ``prediction`` and ``correct`` (by
    normalisation), ``answer`` (label or null), ``scores`` (by normalisation, then by choice
    label), ``tokens`` (by label), ``demos`` (ids) and ``dropped_demos``; with ``knowledge``
    (the requests and scores of the same questions with facts), also ``knowledge``:
    ``{"facts", "prediction", "correct", "scores"}`` of the prompt with facts."""
    with_facts = knowledge if knowledge is not None else ([], [])
    if knowledge is not None and len(with_facts[0]) != len(requests):
        raise ValueError("the runs with and without knowledge must score the same questions")
    with atomic_file(path, "w", encoding="utf-8") as fh:
        for i, (r, s) in enumerate(zip(requests, scores, strict=True)):
            labels = [c.label for c in r.item.choices]
            scored = _scored(r, s)
            row: dict[str, Any] = {"id": r.item.id, "prediction": scored["prediction"]}
            row["answer"] = r.item.answer
            row["correct"] = scored["correct"]
            row["scores"] = scored["scores"]
            row["tokens"] = {label: int(n) for label, n in zip(labels, s.tokens, strict=True)}
            row["demos"] = r.demos
            row["dropped_demos"] = r.dropped
            if knowledge is not None:
                kr, ks = with_facts[0][i], with_facts[1][i]
                row["knowledge"] = {"facts": kr.facts, **_scored(kr, ks)}
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
    knowledge: Mapping[str, Sequence[str]] | None = None,
    facts_position: str = "before",
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
        knowledge: facts (sentences) by question id for the prompts
            (:func:`kelm.evaluation.prompts.build_requests`); ``None``: none.
        facts_position: ``before`` or ``after`` the question.

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
        knowledge=knowledge,
        facts_position=facts_position,
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
    knowledge: str | Path | None = None,
    knowledge_options: KnowledgeOptions | None = None,
    cache_dir: str | Path | None = None,
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
        knowledge: a graph index directory: every question is scored a second time with
            facts from the graph in its prompt (:mod:`kelm.evaluation.knowledge`), and both
            results are written side by side (``metrics.json``: ``"knowledge"``;
            ``predictions.jsonl``: each line's ``"knowledge"``).
        knowledge_options: facts per question, their form and place, path length.
        cache_dir: where grounding and ranked facts are cached (default
            ``$KELM_CACHE/zeroshot``).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        KelmError: bad QA or demonstration file, model, options, or a question that does not
            fit the context window.
    """
    from kelm.evaluation.loglik import METHODS
    from kelm.modeling.causal_lm import load_causal_lm
    from kelm.pipeline import read_items

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
    options = knowledge_options or KnowledgeOptions()
    options.validate()
    graph = load_knowledge_graph(knowledge) if knowledge is not None else None
    items = read_items(qa_file, need_answers=False)[:max_questions]
    pool = read_items(demos, need_answers=True) if shots > 0 and demos is not None else None
    # A separate training file gives no evaluated question as a demonstration (it may hold
    # the held-out ones); demonstrations from the evaluated file itself are leave-one-out.
    same_file = pool is not None and sha256_file(demos) == sha256_file(qa_file)
    out_dir = check_output_dir(out_dir)  # before the model runs
    facts = None
    if graph is not None:  # grounding and retrieval before the model: their errors come first
        start = time.perf_counter()
        candidates = retrieve_facts(
            graph, items, options.hops, cache_dir=cache_dir, progress=progress
        )
        facts = question_facts(candidates, options)
        retrieval_seconds = time.perf_counter() - start
    model, tokenizer, name = load_causal_lm(lm, gguf_file, device=device, progress=progress)
    run = functools.partial(
        evaluate_items,
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
    metrics, requests, scores = run()
    with_knowledge = None
    if graph is not None and facts is not None:
        k_metrics, k_requests, k_scores = run(knowledge=facts, facts_position=options.position)
        with_knowledge = (k_requests, k_scores)
        k_metrics["retrieval_seconds"] = round(retrieval_seconds, 3)
        k_metrics = knowledge_summary(metrics, k_metrics, facts, graph, options)
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
    if with_knowledge is not None:
        metrics["knowledge"] = k_metrics
    make_output_dir(out_dir)
    write_zero_shot_predictions(out_dir / "predictions.jsonl", requests, scores, with_knowledge)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def knowledge_summary(
    plain: dict[str, Any],
    metrics: dict[str, Any],
    facts: Mapping[str, Sequence[str]],
    graph: GraphIndex,
    options: KnowledgeOptions,
) -> dict[str, Any]:
    """The ``"knowledge"`` part of ``metrics.json``: accuracy with facts, its ``gain`` over
    the same questions without them (by normalisation), the graph and the options, how many
    facts the prompts got, prompt tokens and timing."""
    counts = [len(v) for v in facts.values()]
    out: dict[str, Any] = {}
    if "accuracy" in metrics and "accuracy" in plain:
        out["accuracy"] = metrics["accuracy"]
        out["gain"] = {
            k: round(metrics["accuracy"][k] - plain["accuracy"][k], 6) for k in NORMALIZATIONS
        }
    out.update(
        {
            "graph": str(graph.path),
            "graph_checksum": graph.checksum,
            **options.to_dict(),
            "questions_with_facts": int(sum(c > 0 for c in counts)),
            "facts_per_question": round(float(np.mean(counts)) if counts else 0.0, 3),
            **{
                k: metrics[k]
                for k in (
                    "prompt_tokens",
                    "seconds",
                    "questions_per_second",
                    "dropped_demos",
                    "retrieval_seconds",
                )
            },
        }
    )
    return out


__all__ = [
    "NORMALIZATIONS",
    "QuestionScores",
    "accuracy",
    "evaluate_items",
    "evaluate_zero_shot",
    "knowledge_summary",
    "score_requests",
    "write_zero_shot_predictions",
]

"""How much can the graph's edges add to a trained text model's choice scores?

A knowledge model gains over its text baseline only by what the graph says about the choices
that the text does not. This module measures that for one trained text model, without training
another network: each choice gets features of the edges between its statement's question
concepts and answer concepts (:func:`choice_features`: a direct edge, by which relations, how
many two-hop paths, how well connected the answer concepts are), and a conditional logit over a
question's choices,

    logit(choice) = a * text_score(choice) + w . features(choice),

is fitted (:func:`fit_choice_logit`) on part of the held-out questions and scored on the rest
(:func:`cross_fitted_accuracy`, k folds). That weighs the features by the held-out questions
themselves, which no model trained on the training split can do, so the cross-fitted accuracy
is a generous estimate of what these graph features can add to this text model; the accuracy
of the same fit scored on the questions it was fitted on (``in_sample``) is higher still. If
both stay below a target, a graph module that reads only these features (the graph soft counter
reads less: edge types and counts) is not expected to reach it on this data by them; trained
jointly it may still change the text model itself, which this measure does not see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kelm.graph.index import GraphIndex

FEATURE_SETS = ("linked", "relations", "two_hop", "degree", "degree_only")


@dataclass(frozen=True)
class ChoiceFeatures:
    """The edge features of one statement (question concepts, answer concepts).

    Attributes:
        relations: the relation ids of the direct edges between a question and an answer
            concept (an answer -> question edge with its inverse id, ``+ num_relations``).
        two_hop: the number of paths question concept -> any node -> answer concept (either
            edge in either direction; the middle node is neither a question nor an answer
            concept).
        degree: the mean degree (in + out) of the answer concepts; 0 without one.
    """

    relations: frozenset[int]
    two_hop: int
    degree: float


def choice_features(
    index: GraphIndex, question_concepts: Iterable[int], answer_concepts: Iterable[int]
) -> ChoiceFeatures:
    """The edge features of one statement (see :class:`ChoiceFeatures`)."""
    qs = sorted({int(q) for q in question_concepts})
    answers = {int(a) for a in answer_concepts}
    relations: set[int] = set()
    middle: dict[int, int] = {}  # node -> edges from the question concepts to it
    for q in qs:
        nodes, rels, _ = index.neighbors(q)
        for n, r in zip(nodes.tolist(), rels.tolist(), strict=True):
            if n in answers:
                relations.add(r)
            elif n not in qs:
                middle[n] = middle.get(n, 0) + 1
    two_hop = 0
    for n, count in middle.items():
        nodes, _, _ = index.neighbors(n)
        two_hop += count * sum(1 for m in nodes.tolist() if m in answers)
    degree = 0.0
    if answers:
        degree = float(np.mean([len(index.neighbors(a)[0]) for a in sorted(answers)]))
    return ChoiceFeatures(frozenset(relations), two_hop, degree)


def feature_matrix(
    features: Sequence[ChoiceFeatures], num_relations: int, feature_set: str
) -> np.ndarray:
    """``[choices, d]`` float32 rows of ``features`` for a feature set of :data:`FEATURE_SETS`:
    ``linked`` (any direct edge), then each set adding to the one before it, ``relations``
    (one column per relation id and direction, ``2 * num_relations``), ``two_hop`` (log(1 +
    paths)), ``degree`` (log(1 + mean degree)); ``degree_only`` is the last column alone (a
    prior for common answers that does not read the question)."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"feature set must be one of {FEATURE_SETS}, not {feature_set!r}")
    if feature_set == "degree_only":
        return np.asarray([[np.log1p(f.degree)] for f in features], dtype=np.float32)
    level = FEATURE_SETS.index(feature_set)
    rows = []
    for f in features:
        row = [float(bool(f.relations))]
        if level >= 1:
            one_hot = [0.0] * (2 * num_relations)
            for r in f.relations:
                one_hot[r] = 1.0
            row += one_hot
        if level >= 2:
            row.append(float(np.log1p(f.two_hop)))
        if level >= 3:
            row.append(float(np.log1p(f.degree)))
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)


@dataclass(frozen=True)
class ChoiceLogit:
    """A fitted conditional logit: ``scale * text score + weights . features``."""

    scale: float
    weights: np.ndarray

    def logits(self, scores: np.ndarray, features: np.ndarray) -> np.ndarray:
        """``[q, c]`` logits of ``scores`` ``[q, c]`` and ``features`` ``[q, c, d]`` (a
        padding choice, score ``-inf``, keeps ``-inf``)."""
        real = np.isfinite(scores)
        filled = np.where(real, scores, 0.0)
        return np.where(real, self.scale * filled + features @ self.weights, -np.inf)


def fit_choice_logit(
    scores: np.ndarray, features: np.ndarray, answers: np.ndarray, *, l2: float = 1e-2
) -> ChoiceLogit:
    """Fit a :class:`ChoiceLogit` by L-BFGS on the mean negative log-likelihood of the answers
    plus ``l2 * |weights|^2`` (the text scale is not penalised).

    Args:
        scores: ``[q, c]`` the text model's choice scores; a question with fewer than ``c``
            choices pads its row with ``-inf`` (its padding never wins).
        features: ``[q, c, d]`` choice features.
        answers: ``[q]`` the index of each question's correct choice.
    """
    raw = torch.as_tensor(scores, dtype=torch.float64)  # [q, c]
    real = torch.isfinite(raw)  # [q, c] False on padding
    s = torch.where(real, raw, torch.zeros_like(raw))
    x = torch.as_tensor(features, dtype=torch.float64)  # [q, c, d]
    y = torch.as_tensor(answers, dtype=torch.long)  # [q]
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    weights = torch.zeros(x.shape[-1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [scale, weights], lr=1.0, max_iter=200, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = torch.where(real, scale * s + x @ weights, -1e30)  # [q, c]
        loss = torch.nn.functional.cross_entropy(logits, y) + l2 * weights.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return ChoiceLogit(float(scale.detach()), weights.detach().numpy().copy())


def accuracy(logits: np.ndarray, answers: np.ndarray) -> float:
    """The share of questions whose highest logit is the answer's (ties: the first choice)."""
    return float(np.mean(np.argmax(logits, axis=1) == answers))


def cross_fitted_accuracy(
    scores: np.ndarray,
    features: np.ndarray,
    answers: np.ndarray,
    *,
    folds: int = 10,
    seed: int = 0,
    l2: float = 1e-2,
) -> float:
    """Accuracy of :func:`fit_choice_logit` on each of ``folds`` seeded folds of the
    questions, fitted on the others (every question predicted once, by a fit that never saw
    it)."""
    n = len(answers)
    if not 2 <= folds <= n:
        raise ValueError(f"folds must be between 2 and the {n} questions, not {folds}")
    order = np.random.default_rng(seed).permutation(n)
    predicted = np.empty(n, dtype=np.int64)
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        fit = fit_choice_logit(scores[rest], features[rest], answers[rest], l2=l2)
        predicted[part] = np.argmax(fit.logits(scores[part], features[part]), axis=1)
    return float(np.mean(predicted == answers))

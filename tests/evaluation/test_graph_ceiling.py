"""The graph-feature ceiling (kelm.evaluation.graph_ceiling): edge features checked against a
naive reference over the edge list, and the conditional logit's fit and cross-fitting."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_fixtures import index_of_edges

from kelm.evaluation.graph_ceiling import (
    FEATURE_SETS,
    ChoiceFeatures,
    accuracy,
    choice_features,
    cross_fitted_accuracy,
    feature_matrix,
    fit_choice_logit,
)
from kelm.graph.index import GraphIndex

EDGES = [
    ("dog", "IsA", "animal"),
    ("dog", "AtLocation", "house"),
    ("cat", "AtLocation", "house"),
    ("cat", "IsA", "pet"),
    ("animal", "AtLocation", "zoo"),
    ("house", "AtLocation", "zoo"),
    ("zoo", "RelatedTo", "dog"),
    ("bird", "CapableOf", "fly"),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> GraphIndex:
    return index_of_edges(tmp_path_factory.mktemp("ceiling"), EDGES)


def reference(index: GraphIndex, qs: list[str], answers: list[str]) -> ChoiceFeatures:
    """Features straight from the edge list: a two-hop path is a pair of edges (either
    direction) q - m - a through a node m that is neither a question nor an answer concept."""
    relations = set()
    for h, r, t in EDGES:
        if h in qs and t in answers:
            relations.add(index.relation_id(r))
        if t in qs and h in answers:
            relations.add(index.relation_id(r) + index.num_relations)
    ends = [(h, t) for h, _, t in EDGES] + [(t, h) for h, _, t in EDGES]
    middles = {n for n in {x for e in ends for x in e} if n not in qs and n not in answers}
    two_hop = sum(
        1 for q, m in ends if q in qs and m in middles for m2, a in ends if m2 == m and a in answers
    )
    degrees = [sum(1 for e in ends if e[0] == a) for a in answers]
    return ChoiceFeatures(frozenset(relations), two_hop, float(np.mean(degrees)))


@pytest.mark.parametrize(
    ("qs", "answers"),
    [
        (["dog"], ["zoo"]),  # a direct inverse edge and two two-hop paths
        (["dog", "cat"], ["house"]),
        (["cat"], ["zoo"]),  # two hops only
        (["bird"], ["house", "pet"]),  # nothing
    ],
)
def test_choice_features_match_the_edge_list(index: GraphIndex, qs, answers) -> None:
    got = choice_features(index, index.node_ids(qs).tolist(), index.node_ids(answers).tolist())
    assert got == reference(index, qs, answers)


def test_choice_features_without_answer_concepts(index: GraphIndex) -> None:
    assert choice_features(index, [index.node_id("dog")], []) == ChoiceFeatures(frozenset(), 0, 0.0)


def test_feature_matrix_columns() -> None:
    rows = [ChoiceFeatures(frozenset({1, 4}), 3, 2.0), ChoiceFeatures(frozenset(), 0, 0.0)]
    widths = {"linked": 1, "relations": 1 + 6, "two_hop": 8, "degree": 9, "degree_only": 1}
    for feature_set in FEATURE_SETS:
        assert feature_matrix(rows, 3, feature_set).shape == (2, widths[feature_set])
    m = feature_matrix(rows, 3, "degree")
    assert m[0].tolist() == pytest.approx([1, 0, 1, 0, 0, 1, 0, np.log1p(3), np.log1p(2)])
    assert not m[1].any()
    assert feature_matrix(rows, 3, "degree_only")[:, 0].tolist() == pytest.approx(
        [np.log1p(2), 0.0]
    )
    with pytest.raises(ValueError, match="feature set"):
        feature_matrix(rows, 3, "paths")


def _sample(n: int, scale: float, weights: list[float], seed: int):
    """Questions of 3 choices whose answers are drawn from the conditional logit itself."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, 3))
    features = rng.normal(size=(n, 3, len(weights)))
    logits = scale * scores + features @ np.asarray(weights)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    answers = np.array([rng.choice(3, p=row) for row in p])
    return scores, features, answers


def test_fit_recovers_the_weights_that_drew_the_answers() -> None:
    scores, features, answers = _sample(4000, 2.0, [1.5, -1.0], seed=0)
    fit = fit_choice_logit(scores, features, answers, l2=0.0)
    assert fit.scale == pytest.approx(2.0, abs=0.25)
    assert fit.weights == pytest.approx([1.5, -1.0], abs=0.25)


def test_cross_fitting_finds_a_feature_that_names_the_answer() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(300, 3))  # the text knows nothing
    answers = rng.integers(0, 3, size=300)
    features = np.zeros((300, 3, 1))
    features[np.arange(300), answers, 0] = 1.0
    assert accuracy(scores, answers) < 0.45
    assert cross_fitted_accuracy(scores, features, answers, folds=5) == 1.0


def test_cross_fitting_gains_nothing_from_noise_where_in_sample_fitting_does() -> None:
    # 150 questions the text gets right 2 times in 3; 40 noise features per choice
    scores, _, answers = _sample(150, 1.5, [0.0], seed=2)
    features = np.random.default_rng(3).normal(size=(150, 3, 40))
    text = accuracy(scores, answers)
    fit = fit_choice_logit(scores, features, answers, l2=0.0)
    in_sample = accuracy(fit.logits(scores, features), answers)
    crossed = cross_fitted_accuracy(scores, features, answers, folds=10, l2=0.0)
    assert in_sample > text + 0.02  # over-fitted
    assert crossed < in_sample
    assert crossed <= text + 0.01


def test_cross_fitting_is_seeded_and_checks_its_folds() -> None:
    scores, features, answers = _sample(200, 1.0, [0.5, 0.5], seed=4)
    a = cross_fitted_accuracy(scores, features, answers, folds=4, seed=7)
    assert a == cross_fitted_accuracy(scores, features, answers, folds=4, seed=7)
    for folds in (1, 201):
        with pytest.raises(ValueError, match="folds"):
            cross_fitted_accuracy(scores, features, answers, folds=folds)


def test_padding_choices_changes_nothing() -> None:
    """Questions of 2 choices padded to 3 (score -inf) fit and score as they do unpadded."""
    scores, features, answers = _sample(300, 1.0, [0.8, -0.5], seed=5)
    two = np.minimum(answers, 1)  # keep choices 0 and 1: the answer among them
    s2, x2 = scores[:, :2], features[:, :2]
    padded_s = np.concatenate([s2, np.full((300, 1), -np.inf)], axis=1)
    padded_x = np.concatenate([x2, np.full((300, 1, 2), 7.0)], axis=1)  # padding features ignored
    a, b = fit_choice_logit(s2, x2, two), fit_choice_logit(padded_s, padded_x, two)
    assert b.scale == pytest.approx(a.scale, abs=1e-6)
    assert b.weights == pytest.approx(a.weights, abs=1e-6)
    logits = b.logits(padded_s, padded_x)
    assert np.isneginf(logits[:, 2]).all()
    assert accuracy(logits, two) == accuracy(a.logits(s2, x2), two)
    assert cross_fitted_accuracy(padded_s, padded_x, two, folds=5) == cross_fitted_accuracy(
        s2, x2, two, folds=5
    )

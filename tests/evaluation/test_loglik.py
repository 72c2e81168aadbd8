"""Batched continuation log-likelihoods (:mod:`kelm.evaluation.loglik`) on tiny random Llama
and GPT-2 models: the cached (shared-prefix) and naive methods both match a direct,
unbatched full-sequence computation; empty continuations are refused."""

from __future__ import annotations

import numpy as np
import pytest
from causal_lm_fixtures import direct_logprob, tiny_gpt2, tiny_llama

from kelm.evaluation.loglik import score_continuations

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_cached_and_naive_scores_equal_a_direct_full_sequence_computation(family: str) -> None:
    model = tiny_llama(120) if family == "llama" else tiny_gpt2(120)
    rng = np.random.default_rng(0)
    prefixes = [list(map(int, rng.integers(1, 120, rng.integers(1, 30)))) for _ in range(9)]
    conts = [
        [
            list(map(int, rng.integers(1, 120, rng.integers(1, 7))))
            for _ in range(rng.integers(1, 5))
        ]
        for _ in range(9)
    ]
    cached = score_continuations(model, prefixes, conts, batch_size=4, method="cached")
    naive = score_continuations(model, prefixes, conts, batch_size=3, method="naive")
    for p, cs, a, b in zip(prefixes, conts, cached, naive, strict=True):
        expected = np.array([direct_logprob(model, p, c) for c in cs])
        assert a.shape == b.shape == (len(cs),)
        np.testing.assert_allclose(a, expected, atol=1e-4)
        np.testing.assert_allclose(b, expected, atol=1e-4)
        np.testing.assert_allclose(a, b, atol=1e-4)
        assert (a < 0).all()


def test_empty_continuation_is_refused(llama) -> None:
    with pytest.raises(ValueError, match="empty"):
        score_continuations(llama, [[1, 2]], [[[3], []]])

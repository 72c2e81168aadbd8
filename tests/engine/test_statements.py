"""Frozen-encoder statement vectors: equal to the encoder's own, cached on disk keyed on
the encoder weights, pooling and tokens, and recomputed when the entry is damaged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import kelm.engine.statements as st
from kelm.pipeline import Collator, Example
from tests.modeling.modeling_fixtures import make_model


def examples() -> list[Example]:
    gen = torch.Generator().manual_seed(3)
    out = []
    for q, (choices, length) in enumerate([(3, 5), (2, 8), (3, 3), (1, 6)]):
        ids = [torch.randint(1, 100, (length + k,), generator=gen).tolist() for k in range(choices)]
        out.append(Example(f"q{q}", list("ABC")[:choices], ids, None, 0))
    return out


def cache_files() -> list[Path]:
    return sorted((Path(os.environ["KELM_CACHE"]) / "statements").glob("*.safetensors"))


def test_vectors_equal_the_encoder_in_eval_mode() -> None:
    model = make_model("lm")
    exs = examples()
    vectors = st.statement_vectors(model, exs, Collator(0), batch_size=2)
    assert model.training  # left as it was
    model.eval()
    with torch.no_grad():
        for e, v in zip(exs, vectors, strict=True):
            ids = torch.tensor(e.input_ids[0]).view(1, 1, -1)
            direct, _ = model.encode_statements(ids, torch.ones_like(ids))
            assert v.shape == (e.num_choices, model.statement_dim)
            torch.testing.assert_close(v[0], direct[0], rtol=1e-5, atol=1e-5)


def test_cache_is_keyed_on_weights_and_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    model, exs = make_model("lm"), examples()
    first = st.statement_vectors(model, exs, Collator(0))
    assert len(cache_files()) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    with monkeypatch.context() as m:
        m.setattr(st, "compute_statement_vectors", fail)
        again = st.statement_vectors(model, exs, Collator(0))
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    # other tokens, other weights: new entries
    changed = [*exs[:-1], Example("q9", ["A"], [[5, 6, 7]], None, 0)]
    st.statement_vectors(model, changed, Collator(0))
    with torch.no_grad():
        model.text_encoder.embeddings.word_embeddings.weight[5] += 1.0
    st.statement_vectors(model, exs, Collator(0))
    assert len(cache_files()) == 3


def test_damaged_entry_is_recomputed() -> None:
    model, exs = make_model("lm"), examples()
    first = st.statement_vectors(model, exs, Collator(0))
    (path,) = cache_files()
    path.write_bytes(b"not a safetensors file")
    again = st.statement_vectors(model, exs, Collator(0))
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)


def test_collator_pads_vectors_like_tokens() -> None:
    exs = st.with_statement_vectors(
        examples()[:2], [torch.arange(6.0).view(3, 2), torch.tensor([[7.0, 8.0], [9.0, 10.0]])]
    )
    batch = Collator(0)(exs)
    assert batch["statement_vectors"].shape == (2, 3, 2)
    assert batch["statement_vectors"][1, 2].tolist() == [7.0, 8.0]  # padding copies choice 0
    assert "statement_vectors" not in Collator(0)(examples()[:2])

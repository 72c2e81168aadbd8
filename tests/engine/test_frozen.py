"""Frozen-encoder features: statement vectors equal to the encoder's own, cached on disk keyed
on the frozen weights, pooling and tokens, recomputed when the entry is damaged; ERNIE's
T-Encoder token states, kept in memory, give the model's own outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import kelm.engine.frozen as st
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
    return sorted((Path(os.environ["KELM_CACHE"]) / "frozen").glob("*.safetensors"))


def test_vectors_equal_the_encoder_in_eval_mode() -> None:
    model = make_model("lm")
    exs = examples()
    vectors = st.frozen_features(model, exs, Collator(0), batch_size=2)
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
    first = st.frozen_features(model, exs, Collator(0))
    assert len(cache_files()) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    with monkeypatch.context() as m:
        m.setattr(st, "compute_frozen_features", fail)
        again = st.frozen_features(model, exs, Collator(0))
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    # other tokens, other weights: new entries
    changed = [*exs[:-1], Example("q9", ["A"], [[5, 6, 7]], None, 0)]
    st.frozen_features(model, changed, Collator(0))
    with torch.no_grad():
        model.text_encoder.embeddings.word_embeddings.weight[5] += 1.0
    st.frozen_features(model, exs, Collator(0))
    assert len(cache_files()) == 3
    # another family on the same encoder and pooling reads the same entry
    qagnn = make_model("qagnn")
    qagnn.text_encoder.load_state_dict(model.text_encoder.state_dict())
    with monkeypatch.context() as m:
        m.setattr(st, "compute_frozen_features", fail)
        st.frozen_features(qagnn, exs, Collator(0))
    assert len(cache_files()) == 3


def test_damaged_entry_is_recomputed() -> None:
    model, exs = make_model("lm"), examples()
    first = st.frozen_features(model, exs, Collator(0))
    (path,) = cache_files()
    path.write_bytes(b"not a safetensors file")
    again = st.frozen_features(model, exs, Collator(0))
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)


def test_collator_pads_vectors_like_tokens() -> None:
    exs = st.with_frozen_features(
        examples()[:2], [torch.arange(6.0).view(3, 2), torch.tensor([[7.0, 8.0], [9.0, 10.0]])]
    )
    batch = Collator(0)(exs)
    assert batch["frozen"].shape == (2, 3, 2)
    assert batch["frozen"][1, 2].tolist() == [7.0, 8.0]  # padding copies choice 0
    assert "frozen" not in Collator(0)(examples()[:2])


def test_ernie_t_encoder_states_give_the_models_own_logits() -> None:
    """ERNIE's frozen part is its T-Encoder: the token states computed once (kept in memory,
    not on disk) and collated with padding give the logits of the full forward."""
    import kelm.modeling as km
    from kelm.modeling.families import get_family
    from tests.modeling.modeling_fixtures import tiny_bert

    torch.manual_seed(0)
    config = km.KelmErnieConfig(
        encoder_config=tiny_bert(),
        num_entities=10,
        entity_dim=12,
        entity_hidden_size=8,
        entity_attention_heads=2,
        num_knowledge_layers=1,
    )
    model = km.KelmErnieForMultipleChoice(config).eval()
    with torch.no_grad():  # as after training (a new fusion starts at zero)
        model.knowledge_layers[0].entity_to_fusion.weight.normal_(0.0, 0.02)
    frozen = {n for n, _ in model.frozen_named_parameters()}
    assert any(n.startswith("text_encoder.embeddings.") for n in frozen)
    assert not any(n.startswith("text_encoder.encoder.layer.1.") for n in frozen)  # K-Encoder
    exs = examples()
    for e in exs:
        e.entity_ids = [
            [(t % 7) if k % 3 == 0 else -1 for k, t in enumerate(ids)] for ids in e.input_ids
        ]
    states = st.frozen_features(model, exs, Collator(0))
    assert [s.shape[:2] for s in states] == [
        (e.num_choices, max(map(len, e.input_ids))) for e in exs
    ]
    assert not cache_files()
    family = get_family("ernie")
    assert family.frozen_input == "t_encoder_states"
    full = Collator(0)(exs)
    reused = Collator(0)(st.with_frozen_features(exs, states))
    with torch.no_grad():
        direct = model(**family.model_inputs(full)).logits
        fast = model(**family.model_inputs(reused)).logits
    torch.testing.assert_close(fast, direct, rtol=1e-5, atol=1e-5)

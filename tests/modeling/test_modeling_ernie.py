"""The ERNIE-style knowledgeable encoder on tiny random BERTs: shapes of every head, the
entity stream (masked where no entity, plain backbone without entities, entity changes reach
only the aligned positions), save/load round trips, Auto classes, dEA candidates and loss,
and refused entity ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from modeling_fixtures import tiny_bert
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMultipleChoice,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    BertModel,
)

import kelm.modeling as km
from kelm.errors import KelmError
from kelm.modeling.modeling_ernie import KelmErniePreTrainedModel

NUM_ENTITIES = 20
ERNIE_KWARGS = {
    "num_entities": NUM_ENTITIES,
    "entity_dim": 12,
    "entity_hidden_size": 8,
    "entity_attention_heads": 2,
    "num_knowledge_layers": 1,
    "entity_dropout": 0.0,
    "classifier_dropout": 0.0,
}


def make(cls: type, *, fresh: bool = False, **overrides: object) -> KelmErniePreTrainedModel:
    """A tiny model; unless ``fresh``, its entity->token fusion weights are drawn at random (as
    after training: a new model's start at zero, see test_new_fusion_starts_as_the_backbone)."""
    torch.manual_seed(0)
    config = km.KelmErnieConfig(encoder_config=tiny_bert(), **{**ERNIE_KWARGS, **overrides})
    model = cls(config).eval()
    if not fresh:
        with torch.no_grad():
            for layer in model.knowledge_layers:
                layer.entity_to_fusion.weight.normal_(0.0, 0.02)
    return model


def test_new_fusion_starts_as_the_backbone() -> None:
    """A new model's entity->token weights are zero: its outputs are the backbone's exactly
    (the model equals its text baseline at step 0); a few training steps later entities count."""
    model = make(km.KelmErnieForMultipleChoice, fresh=True)
    b = batch()
    for layer in model.knowledge_layers:
        assert not layer.entity_to_fusion.weight.abs().sum()
    inputs = {k: v.view(1, 3, 10) for k, v in b.items()}
    without = {**inputs, "entity_ids": torch.full_like(inputs["entity_ids"], -1)}
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, model(**without).logits)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        model(**inputs, labels=torch.tensor([0])).loss.backward()
        if step == 0:
            assert model.knowledge_layers[-1].entity_to_fusion.weight.grad.abs().sum() > 0
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        gap = (model(**inputs).logits - model(**without).logits).abs().max()
    assert gap > 1e-5  # float32 rounding of O(1) logits is ~1e-7


def test_entity_scoring_starts_at_zero_and_reaches_the_entity_attention() -> None:
    """With ``entity_scoring`` the score also reads the pooled entity stream through an MLP
    whose last layer starts at zero: a new model still equals its text baseline; at the first
    step that layer gets a gradient, and a few steps later the entity attention gets one
    through it even though the entity->token weights are still zero."""
    model = make(km.KelmErnieForMultipleChoice, fresh=True, entity_scoring=True)
    assert make(km.KelmErnieForMultipleChoice, fresh=True).entity_scorer is None
    inputs = {k: v.view(1, 3, 10) for k, v in batch().items()}
    without = {**inputs, "entity_ids": torch.full_like(inputs["entity_ids"], -1)}
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, model(**without).logits)
    for layer in model.knowledge_layers:  # only the scorer may move: keep the fusion at zero
        layer.entity_to_fusion.weight.requires_grad_(False)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    attention = model.knowledge_layers[-1].entity_attention.query.weight
    for step in range(3):
        model(**inputs, labels=torch.tensor([0])).loss.backward()
        if step == 0:
            assert model.entity_scorer[-1].weight.grad.abs().sum() > 0
            assert not attention.grad.abs().sum()  # nothing downstream of it is non-zero yet
        optimizer.step()
        if step < 2:
            optimizer.zero_grad()
    assert attention.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        gap = (model(**inputs).logits - model(**without).logits).abs().max()
    assert gap > 1e-3  # float32 rounding of O(1) logits is ~1e-7


def batch() -> dict[str, torch.Tensor]:
    """Three sequences of 10 tokens: two entities, one entity, none (and padding)."""
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 100, (3, 10), generator=g)
    attention_mask = torch.ones(3, 10, dtype=torch.long)
    attention_mask[2, 7:] = 0
    entity_ids = torch.full((3, 10), -1)
    entity_ids[0, 2], entity_ids[0, 5], entity_ids[1, 1] = 4, 7, 3
    return {"input_ids": input_ids, "attention_mask": attention_mask, "entity_ids": entity_ids}


def test_head_shapes() -> None:
    b = batch()
    base = make(km.KelmErnieModel)(**b)
    assert base.last_hidden_state.shape == (3, 10, 32)
    assert base.entity_hidden_state.shape == (3, 10, 8)
    assert base.pooler_output.shape == (3, 32)
    # entity states exist exactly at the aligned positions
    nonzero = base.entity_hidden_state.abs().sum(-1) > 0
    assert torch.equal(nonzero, b["entity_ids"] >= 0)

    cls = make(km.KelmErnieForSequenceClassification, num_labels=4)
    out = cls(**b, labels=torch.tensor([0, 3, 1]))
    assert out.logits.shape == (3, 4) and out.loss.ndim == 0

    mc = make(km.KelmErnieForMultipleChoice)
    mc_batch = {k: v.view(1, 3, 10) for k, v in b.items()}
    out = mc(**mc_batch, labels=torch.tensor([2]), graphs=None)  # graph inputs are ignored
    assert out.logits.shape == (1, 3) and torch.isfinite(out.loss)
    with pytest.raises(TypeError, match="unexpected inputs"):
        mc(**mc_batch, node_ids=torch.zeros(1))


def test_no_entities_is_the_plain_backbone() -> None:
    """Without entities the K-Encoder layers compute exactly the backbone's layers."""
    model = make(km.KelmErnieModel)
    b = batch()
    plain = model.text_encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    for entity_ids in (None, torch.full_like(b["entity_ids"], -1)):
        out = model(b["input_ids"], b["attention_mask"], entity_ids=entity_ids)
        assert torch.isfinite(out.last_hidden_state).all()
        assert torch.allclose(out.last_hidden_state, plain.last_hidden_state, atol=1e-5)
        assert not out.entity_hidden_state.abs().sum()
    # the sequence without entities in a batch with entities: also the backbone's output
    out = model(**b)
    assert torch.allclose(out.last_hidden_state[2], plain.last_hidden_state[2], atol=1e-5)
    assert not torch.allclose(out.last_hidden_state[0], plain.last_hidden_state[0], atol=1e-3)


def test_entity_change_reaches_only_aligned_positions() -> None:
    """With the K-Encoder as the last layer, another entity at position 2 changes the token
    outputs of that sequence's aligned positions (2, and 5 through the entity attention) only."""
    model = make(km.KelmErnieModel)
    b = batch()
    before = model(**b).last_hidden_state
    changed = b["entity_ids"].clone()
    changed[0, 2] = 11
    after = model(**{**b, "entity_ids": changed}).last_hidden_state
    differs = (after - before).abs().amax(-1) > 1e-6  # [3, 10]
    expected = torch.zeros(3, 10, dtype=torch.bool)
    expected[0, 2] = expected[0, 5] = True
    assert torch.equal(differs, expected)
    # an entity on a padding position is ignored
    padded = b["entity_ids"].clone()
    padded[2, 8] = 5
    assert torch.equal(model(**{**b, "entity_ids": padded}).last_hidden_state, before)


def test_gradients_and_frozen_entity_table() -> None:
    model = make(km.KelmErnieForMultipleChoice, num_knowledge_layers=2)
    model.train()
    model.init_entity_embeddings(torch.randn(NUM_ENTITIES, 12), freeze=True)
    b = {k: v.view(1, 3, 10) for k, v in batch().items()}
    model(**b, labels=torch.tensor([0])).loss.backward()
    assert model.entity_embedding.weight.grad is None  # frozen
    for fusion in model.knowledge_layers:
        assert fusion.entity_to_fusion.weight.grad.abs().sum() > 0
        assert fusion.entity_attention.query.weight.grad is not None
    assert model.entity_proj.weight.grad.abs().sum() > 0  # 12 -> 8 projection
    with pytest.raises(KelmError, match="entity_dim=5"):
        model.init_entity_embeddings(torch.zeros(NUM_ENTITIES, 5))


@pytest.mark.parametrize(
    ("cls", "auto"),
    [
        (km.KelmErnieModel, AutoModel),
        (km.KelmErnieForPreTraining, AutoModelForPreTraining),
        (km.KelmErnieForSequenceClassification, AutoModelForSequenceClassification),
        (km.KelmErnieForMultipleChoice, AutoModelForMultipleChoice),
    ],
)
def test_save_load_round_trip_and_auto_classes(tmp_path: Path, cls: type, auto: type) -> None:
    model = make(cls, entity_hidden_size=None, entity_attention_heads=3)
    model.init_entity_embeddings(torch.randn(NUM_ENTITIES, 12), freeze=True)
    b = batch()
    if cls is km.KelmErnieForMultipleChoice:
        b = {k: v.view(1, 3, 10) for k, v in b.items()}
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "kelm_ernie"
    loaded = auto.from_pretrained(tmp_path).eval()
    assert type(loaded) is cls
    assert isinstance(loaded.entity_proj, torch.nn.Identity)  # widths equal: no projection
    assert not loaded.entity_embedding.weight.requires_grad  # the freeze survives loading
    first = model(**b)
    second = loaded(**b)
    key = (
        "mlm_logits"
        if cls is km.KelmErnieForPreTraining
        else ("last_hidden_state" if cls is km.KelmErnieModel else "logits")
    )
    assert torch.equal(first[key], second[key])
    if cls is km.KelmErnieForPreTraining:
        word = loaded.text_encoder.embeddings.word_embeddings.weight
        assert loaded.mlm_head.decoder.weight is word  # tied again after loading


def test_pretraining_checkpoint_loads_into_multiple_choice(tmp_path: Path) -> None:
    pre = make(km.KelmErnieForPreTraining)
    pre.save_pretrained(tmp_path)
    mc = km.KelmErnieForMultipleChoice.from_pretrained(tmp_path)
    for name, tensor in mc.state_dict().items():
        if not name.startswith("classifier."):
            assert torch.equal(tensor, pre.state_dict()[name]), name


def test_from_text_encoder(tmp_path: Path) -> None:
    torch.manual_seed(5)
    BertModel(tiny_bert(), add_pooling_layer=False).save_pretrained(tmp_path / "enc")
    encoder = BertModel.from_pretrained(tmp_path / "enc", add_pooling_layer=False)
    model = km.KelmErnieForPreTraining.from_text_encoder(tmp_path / "enc", **ERNIE_KWARGS)
    state = model.text_encoder.state_dict()
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(state[name], tensor), name
    assert model.mlm_head.decoder.weight is model.text_encoder.embeddings.word_embeddings.weight
    assert model.config.encoder_name_or_path == str(tmp_path / "enc")


def test_dea_candidates_targets_and_loss() -> None:
    model = make(km.KelmErnieForPreTraining)
    b = batch()
    # noised input: position (0, 5) lost its entity, (1, 1) was replaced by entity 9
    entity_labels = b["entity_ids"].clone()
    noised = b["entity_ids"].clone()
    noised[0, 5] = -1
    noised[1, 1] = 9
    labels = torch.full((3, 10), -100)
    labels[0, 3], labels[2, 1] = 17, 42
    out = model(**{**b, "entity_ids": noised}, labels=labels, entity_labels=entity_labels)
    assert out.dea_candidates.tolist() == [3, 4, 7, 9]  # union of labels and (noised) inputs
    assert out.dea_targets.tolist() == [1, 2, 0]  # true 4, 7, 3 in row-major order
    assert out.dea_logits.shape == (3, 4)
    tokens = out.last_hidden_state[entity_labels >= 0]  # [3, H]
    cands = model.entity_vectors(torch.tensor([3, 4, 7, 9]))
    expected = model.dea_transform(tokens) @ cands.t()
    assert torch.allclose(out.dea_logits, expected, atol=1e-5)
    dea = torch.nn.functional.cross_entropy(expected, torch.tensor([1, 2, 0]))
    assert out.dea_loss.item() == pytest.approx(dea.item(), abs=1e-5)
    assert int(out.dea_count) == 3 and 0 <= int(out.dea_correct) <= 3
    mlm = torch.nn.functional.cross_entropy(out.mlm_logits[labels != -100], torch.tensor([17, 42]))
    assert out.mlm_loss.item() == pytest.approx(mlm.item(), abs=1e-5)
    assert int(out.mlm_count) == 2
    assert out.loss.item() == pytest.approx(out.mlm_loss.item() + out.dea_loss.item(), abs=1e-5)
    out.loss.backward()
    assert model.dea_transform[0].weight.grad.abs().sum() > 0
    # no dEA targets and no MLM targets: zero losses, no NaN
    none = model(**b, labels=torch.full((3, 10), -100), entity_labels=torch.full((3, 10), -1))
    assert none.loss.item() == 0.0 and none.dea_logits.shape[0] == 0


@pytest.mark.parametrize("bad", [NUM_ENTITIES, 1000, -2, -100])
def test_bad_entity_ids_raise(bad: int) -> None:
    model = make(km.KelmErnieModel)
    b = batch()
    b["entity_ids"][1, 4] = bad
    with pytest.raises(KelmError, match=f"entity id {bad} out of range"):
        model(**b)


def test_bad_shapes_and_configs() -> None:
    model = make(km.KelmErnieModel)
    b = batch()
    with pytest.raises(ValueError, match="shape of input_ids"):
        model(**{**b, "entity_ids": b["entity_ids"][:, :5]})
    with pytest.raises(Exception, match="num_knowledge_layers"):
        km.KelmErnieConfig(encoder_config=tiny_bert(), num_knowledge_layers=3)
    with pytest.raises(Exception, match="multiple of entity_attention_heads"):
        km.KelmErnieConfig(encoder_config=tiny_bert(), entity_dim=10, entity_attention_heads=3)


def test_non_bert_backbone_is_refused() -> None:
    from transformers import DistilBertConfig

    encoder = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    config = km.KelmErnieConfig(encoder_config=encoder, **ERNIE_KWARGS)
    with pytest.raises(KelmError, match="not a BERT-family encoder"):
        km.KelmErnieModel(config)


def test_ernie_family_builds_from_a_pretraining_run(tmp_path: Path) -> None:
    """`model.encoder` = a `kelm pretrain` ERNIE run's model/: the fine-tuning model keeps the
    backbone, fusion layers and entity table it was pretrained with (a plain text encoder is
    refused there: it is no BERT); another graph is one error line."""
    from types import SimpleNamespace

    from kelm.modeling.families import BuildContext
    from kelm.modeling.family_records import build_ernie

    pre = make(km.KelmErnieForPreTraining, graph_checksum="g" * 64)
    with torch.no_grad():
        pre.entity_embedding.weight.normal_()
    pre.save_pretrained(tmp_path / "model")
    settings = SimpleNamespace(
        pooling="mean",
        classifier_dropout=0.0,
        freeze_node_embeddings=True,
        entity_scoring=True,
        fc_dim=16,
    )

    def context(checksum: str, nodes: int = NUM_ENTITIES) -> BuildContext:
        graph = SimpleNamespace(checksum=checksum, num_nodes=nodes)
        return BuildContext(
            encoder=str(tmp_path / "model"),
            tokenizer=None,
            max_length=8,
            max_hops=3,
            graph=graph,  # type: ignore[arg-type]
            node_dim=12,
        )

    model = build_ernie(settings, context("g" * 64))
    assert isinstance(model, km.KelmErnieForMultipleChoice)
    assert model.config.entity_scoring and model.config.architectures is None
    state = pre.state_dict()
    for name, tensor in model.state_dict().items():
        if name.startswith(("text_encoder.", "knowledge_layers.", "entity_embedding.")):
            assert torch.equal(tensor, state[name]), name
    assert not model.entity_embedding.weight.requires_grad  # freeze_node_embeddings
    with pytest.raises(KelmError, match="another graph"):
        build_ernie(settings, context("h" * 64))
    with pytest.raises(KelmError, match="entities, the graph has"):
        build_ernie(settings, context("g" * 64, nodes=NUM_ENTITIES + 1))

"""The pieces of the plain-family objectives without a run: NSP / SOP label balance and pair
surgery, ALBERT parameter counts and layer sharing, ELECTRA's shared embeddings and sampling,
DistilBERT's student initialisation and hidden teacher, TinyBERT's layer map and projections,
and the size presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AlbertConfig,
    BertConfig,
    BertForMaskedLM,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForPreTraining,
    GPT2Config,
)

from kelm.errors import KelmError
from kelm.pretraining.instances import Instance
from kelm.pretraining.objectives._common import forward_with_sparse_head, mlm_head
from kelm.pretraining.objectives.distill import DistillOptions, DistilModel, student_from_teacher
from kelm.pretraining.objectives.mlm import swap_segments
from kelm.pretraining.objectives.rtd import (
    ElectraRTD,
    generator_config,
    sample_from_logits,
)
from kelm.pretraining.objectives.sop import (
    albert_config,
    albert_vs_bert_parameters,
    build_albert,
    load_albert,
    swap_order,
)
from kelm.pretraining.objectives.tinybert import (
    TinyBertDistiller,
    TinyBertOptions,
    attention_mse,
    attention_scores,
    build_student,
    layer_map,
    self_attentions,
    write_qa_statements,
)
from kelm.pretraining.presets import apply_preset, get_preset


def _pair(doc: int, a: list[int], b: list[int]) -> Instance:
    ids = np.array([2, *a, 3, *b, 3], dtype=np.int32)
    return Instance(
        ids, np.full(len(ids), -1, np.int32), np.ones(len(ids), np.uint8), len(a) + 1, doc
    )


def _pairs(n: int = 8) -> list[Instance]:
    return [_pair(i, [10 + i, 11 + i], [20 + i, 21 + i, 22 + i]) for i in range(n)]


@pytest.mark.parametrize("kind", ["sop", "nsp"])
def test_pair_labels_are_balanced_and_seeded(kind: str) -> None:
    labels = []
    g = torch.Generator().manual_seed(7)
    for _ in range(100):
        if kind == "sop":
            _, y = swap_order(_pairs(), g, 0.5)
        else:
            _, y = swap_segments(_pairs(), g, 0.5, 64)
        labels.append(y)
    rate = float(torch.cat(labels).float().mean())
    assert 0.45 < rate < 0.55
    a = swap_order(_pairs(), torch.Generator().manual_seed(1), 0.5)[1]
    b = swap_order(_pairs(), torch.Generator().manual_seed(1), 0.5)[1]
    assert torch.equal(a, b)


def test_sop_swap_moves_the_segments() -> None:
    (x,), y = swap_order([_pair(0, [10, 11], [20, 21, 22])], torch.Generator(), 1.0)
    assert y.tolist() == [1]
    assert x.input_ids.tolist() == [2, 20, 21, 22, 3, 10, 11, 3]
    assert x.sep == 4 and x.input_ids[x.sep] == 3


def test_albert_parameters_match_the_paper() -> None:
    # Lan et al. 2020, Table 1 / Table 4 (E=128): ALBERT-base 12M, BERT-base 108M; attention
    # shared 64M, FFN shared 38M, nothing shared 89M
    counts = {s: albert_vs_bert_parameters(sharing=s) for s in ("all", "attention", "ffn", "none")}
    assert round(counts["all"]["bert"] / 1e6) == 110 or round(counts["all"]["bert"] / 1e6) == 109
    assert [round(counts[s]["albert"] / 1e6) for s in counts] == [12, 64, 38, 90]
    assert all(c["albert"] < c["bert"] for c in counts.values())


@pytest.mark.parametrize("sharing", ["attention", "ffn"])
def test_albert_sharing_ties_what_it_says(sharing: str, tmp_path) -> None:
    config = albert_config(
        AlbertConfig(
            vocab_size=40,
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
            embedding_size=8,
        ),
        None,
        sharing,
    )
    model = build_albert(config, sharing)
    layers = [g.albert_layers[0] for g in model.albert.encoder.albert_layer_groups]
    att = [layer.attention.query.weight for layer in layers]
    ffn = [layer.ffn.weight for layer in layers]
    shared, other = (att, ffn) if sharing == "attention" else (ffn, att)
    assert all(w is shared[0] for w in shared)
    assert all(w is not other[0] for w in other[1:])
    from kelm.pretraining.objectives.sop import SOPObjective

    copy = SOPObjective.kept_model(None, model)  # type: ignore[arg-type]
    copy.save_pretrained(tmp_path)
    again = load_albert(tmp_path)
    layers = [g.albert_layers[0] for g in again.albert.encoder.albert_layer_groups]
    names = ("attention", "query") if sharing == "attention" else ("ffn", None)
    first = getattr(layers[0], names[0])
    assert all(getattr(layer, names[0]) is first for layer in layers)
    assert torch.equal(
        again.albert.embeddings.word_embeddings.weight,
        model.albert.embeddings.word_embeddings.weight,
    )


def test_electra_embeddings_are_shared_and_the_generator_is_smaller() -> None:
    disc_config = ElectraConfig(
        vocab_size=50,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    gen_config = generator_config(disc_config, 0.25)
    assert (gen_config.hidden_size, gen_config.num_attention_heads) == (8, 1)
    assert gen_config.intermediate_size == 16 and gen_config.embedding_size == 16
    rtd = ElectraRTD(ElectraForMaskedLM(gen_config), ElectraForPreTraining(disc_config), 50.0)
    g, d = rtd.generator, rtd.discriminator
    shared = d.electra.embeddings.word_embeddings.weight
    assert g.electra.embeddings.word_embeddings.weight is shared
    assert (
        g.electra.embeddings.position_embeddings.weight
        is d.electra.embeddings.position_embeddings.weight
    )
    assert g.generator_lm_head.weight is shared
    names = [n for n, _ in rtd.named_parameters()]
    assert sum("word_embeddings" in n for n in names) == 1  # one trained tensor


def test_generator_sampling_follows_the_softmax() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(20000, 3)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(sample_from_logits(logits, u), minlength=3).float() / 20000
    assert torch.allclose(counts, torch.tensor([0.7, 0.2, 0.1]), atol=0.02)
    assert torch.equal(sample_from_logits(logits, u), sample_from_logits(logits, u))


def _bert(layers: int = 4, hidden: int = 16, vocab: int = 30) -> BertForMaskedLM:
    torch.manual_seed(0)
    return BertForMaskedLM(
        BertConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=32,
            attn_implementation="eager",
        )
    )


def test_distil_student_starts_from_every_other_teacher_layer() -> None:
    teacher = _bert(4)
    student = student_from_teacher(teacher)
    assert student.config.num_hidden_layers == 2
    for i, j in ((0, 0), (1, 2)):
        s, t = student.bert.encoder.layer[i], teacher.bert.encoder.layer[j]
        for (ns, ps), (nt, pt) in zip(s.named_parameters(), t.named_parameters(), strict=True):
            assert ns == nt and torch.equal(ps, pt)
    assert torch.equal(
        student.bert.embeddings.word_embeddings.weight,
        teacher.bert.embeddings.word_embeddings.weight,
    )
    assert torch.equal(
        student.cls.predictions.transform.dense.weight,
        teacher.cls.predictions.transform.dense.weight,
    )
    with pytest.raises(KelmError, match="teacher_layers"):
        student_from_teacher(teacher, 2, [0, 9])


def test_the_teacher_is_frozen_hidden_and_not_saved() -> None:
    teacher = _bert(4)
    model = DistilModel(student_from_teacher(teacher), teacher, DistillOptions(), use_ce=True)
    model.train()
    assert not teacher.training and model.student.training
    assert not any(k.startswith("_teacher") or "teacher" in k for k in model.state_dict())
    assert all(not p.requires_grad for p in teacher.parameters())
    model.to(torch.float64)  # device / dtype moves reach the teacher
    assert teacher.bert.embeddings.word_embeddings.weight.dtype == torch.float64


def test_tinybert_layer_map_projections_and_attention_loss() -> None:
    assert layer_map(4, 12) == [0, 3, 6, 9, 12]
    assert layer_map(3, 4) == [0, 1, 2, 4]
    with pytest.raises(KelmError):
        layer_map(5, 4)
    teacher = _bert(4, hidden=16)
    student = build_student(teacher, None, {"hidden_size": 8})
    assert student.config.num_hidden_layers == 2
    d = TinyBertDistiller(student, teacher, TinyBertOptions())
    assert d.hidden_projection.weight.shape == (16, 8)
    assert d.embedding_projection.weight.shape == (16, 8)
    same = TinyBertDistiller(build_student(teacher, None, None), teacher, TinyBertOptions())
    assert isinstance(same.hidden_projection, torch.nn.Identity)
    ids = torch.randint(5, 30, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    out = d(ids, mask, torch.zeros_like(ids), torch.full_like(ids, -100))
    assert out.loss.requires_grad and float(out.attention_loss) >= 0
    a = torch.softmax(torch.randn(2, 2, 6, 6), -1)
    assert float(attention_mse(a, a, mask)) == 0.0
    b = a.clone()
    b[1, :, 5, :] += 1.0  # a padding row: not compared
    assert float(attention_mse(a, b, mask)) == 0.0
    assert float(attention_mse(a, torch.softmax(torch.randn(2, 4, 6, 6), -1), mask)) > 0


def test_qa_statements_corpus(tmp_path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        '{"id": "1", "answerKey": "B", "question": {"stem": "Where is a fish?", "choices": '
        '[{"label": "A", "text": "sky"}, {"label": "B", "text": "water"}]}}\n',
        encoding="utf-8",
    )
    counts = write_qa_statements(qa, tmp_path / "corpus")
    assert counts == {"statements": 1, "files": 1, "unanswered": 0}
    text = (tmp_path / "corpus" / "statements-00000.txt").read_text(encoding="utf-8")
    assert text == "Where is a fish? water\n"


def test_presets() -> None:
    base = get_preset("bert-base")
    assert (base["num_hidden_layers"], base["hidden_size"], base["num_attention_heads"]) == (
        12,
        768,
        12,
    )
    large = get_preset("bert-large")
    assert (large["num_hidden_layers"], large["hidden_size"], large["num_attention_heads"]) == (
        24,
        1024,
        16,
    )
    gpt = apply_preset(GPT2Config(), "gpt-tiny")
    assert (gpt.n_layer, gpt.n_embd, gpt.n_head, gpt.n_inner, gpt.n_positions) == (
        2,
        128,
        2,
        512,
        128,
    )
    albert = apply_preset(AlbertConfig(), "albert-base", keep={"num_hidden_layers"})
    assert (
        albert.embedding_size == 128
        and albert.num_hidden_layers == AlbertConfig().num_hidden_layers
    )
    with pytest.raises(KelmError, match="valid presets: .*bert-base"):
        get_preset("bert-huge")


def _tiny_masked_lms() -> list[torch.nn.Module]:
    from transformers import (
        AlbertForMaskedLM,
        DistilBertConfig,
        DistilBertForMaskedLM,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    torch.manual_seed(0)
    small = {"vocab_size": 40, "num_hidden_layers": 2, "num_attention_heads": 2}
    return [
        _bert(2, vocab=40),
        AlbertForMaskedLM(AlbertConfig(**small, hidden_size=16, embedding_size=8)),
        ElectraForMaskedLM(ElectraConfig(**small, hidden_size=16, embedding_size=8)),
        RobertaForMaskedLM(RobertaConfig(**small, hidden_size=16, intermediate_size=32)),
        DistilBertForMaskedLM(DistilBertConfig(vocab_size=40, n_layers=2, n_heads=2, dim=16)),
    ]


def test_sparse_head_logits_equal_the_full_models() -> None:
    ids = torch.randint(5, 40, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    select = torch.zeros(2, 7, dtype=torch.bool)
    select[0, [1, 4]] = True
    select[1, 2] = True
    for model in _tiny_masked_lms():
        model.eval()
        name = type(model).__name__
        full = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        out = forward_with_sparse_head(model, {"input_ids": ids, "attention_mask": mask}, select)
        assert out.logits.shape == (3, 40), name
        torch.testing.assert_close(out.logits, full.logits[select], msg=name)
        torch.testing.assert_close(out.hidden_states[-1], full.hidden_states[-1], msg=name)
        none = forward_with_sparse_head(model, {"input_ids": ids, "attention_mask": mask}, None)
        assert none.logits is None
    assert mlm_head(_tiny_masked_lms()[-1]) is None  # DistilBERT: the full-logits fallback


@pytest.mark.parametrize("restrict", [False, True])
def test_distil_losses_equal_the_full_logits_formulation(restrict: bool) -> None:
    """The sparse head changes no number: soft targets, MLM and cosine losses as computed from
    the full ``[B, L, V]`` logits."""
    from kelm.pretraining.objectives._common import soft_cross_entropy

    teacher = _bert(4)
    options = DistillOptions(restrict_ce_to_mask=restrict)
    model = DistilModel(student_from_teacher(teacher), teacher, options, use_ce=True).eval()
    ids = torch.randint(5, 30, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 1] = 7, 9
    types = torch.zeros_like(ids)
    out = model(ids, mask, types, labels)
    s = model.student(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    t = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types)
    keep = (labels != -100) if restrict else mask.bool()
    ce = soft_cross_entropy(s.logits, t.logits, options.temperature, keep)
    torch.testing.assert_close(out.ce_loss, ce)
    torch.testing.assert_close(out.mlm_loss, s.loss)
    assert out.logits.shape[0] == int(keep.sum()) and out.labels.shape == (int(keep.sum()),)


def test_tinybert_attention_scores_are_the_pre_softmax_matrices() -> None:
    """softmax(scores + padding bias) gives back the probabilities transformers returns, so the
    recomputed scores are the layer's own; the distiller compares scores by default."""
    from transformers import AlbertForMaskedLM

    teacher = _bert(2, hidden=16)
    teacher.config._attn_implementation = "eager"
    teacher.eval()
    ids = torch.randint(5, 30, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    out = teacher(
        input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True
    )
    modules = self_attentions(teacher)
    assert modules is not None and len(modules) == 2
    bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for layer in range(2):
        scores = attention_scores(modules[layer], out.hidden_states[layer])
        assert scores.shape == (2, 2, 6, 6)
        torch.testing.assert_close(torch.softmax(scores + bias, -1), out.attentions[layer])
    albert = AlbertForMaskedLM(AlbertConfig(vocab_size=30, hidden_size=16, num_attention_heads=2))
    assert self_attentions(albert) is None  # another layout: probabilities, with a warning
    student = build_student(teacher, None, None)
    by_scores = TinyBertDistiller(student, teacher, TinyBertOptions())
    by_probs = TinyBertDistiller(student, teacher, TinyBertOptions(attention="probabilities"))
    labels = torch.full_like(ids, -100)
    a = by_scores(ids, mask, torch.zeros_like(ids), labels).attention_loss
    b = by_probs(ids, mask, torch.zeros_like(ids), labels).attention_loss
    assert float(a.detach()) > 0 and float(b.detach()) > 0
    assert float(a.detach()) != pytest.approx(float(b.detach()))

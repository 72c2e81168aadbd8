"""The GPT-1-style multiple-choice model on tiny random causal LMs (GPT-2 and Llama configs):
shapes, the extract token under left and right padding, the auxiliary LM loss, the transfer
format and its tokens (added once, kept through save/load), save/load and Auto resolution,
building from a saved checkpoint."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForMultipleChoice,
    BertTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

import kelm.modeling as km
from kelm.errors import KelmError
from kelm.modeling.modeling_gpt import (
    TRANSFER_TOKENS,
    add_gpt1_special_tokens,
    encode_transfer,
    transfer_token_ids,
)

V = 100  # base vocabulary; the transfer tokens are 100, 101, 102
START, DELIM, EXTRACT = V, V + 1, V + 2
SPECIAL = {"start_token_id": START, "delimiter_token_id": DELIM, "extract_token_id": EXTRACT}


def tiny_gpt2(vocab: int = V + 3) -> GPT2Config:
    return GPT2Config(
        vocab_size=vocab,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )


def tiny_llama() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=V + 3,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


def make(backbone=None, **overrides) -> km.KelmGPTForMultipleChoice:
    torch.manual_seed(0)
    config = km.KelmGPTConfig(
        encoder_config=backbone or tiny_gpt2(),
        classifier_dropout=0.0,
        **{**SPECIAL, **overrides},
    )
    return km.KelmGPTForMultipleChoice(config).eval()


def statement(question: list[int], choice: list[int]) -> list[int]:
    return [START, *question, DELIM, *choice, EXTRACT]


def batch(rows: list[list[list[int]]], side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, C, L]`` ids and mask, padded with 0 on ``side``."""
    length = max(len(s) for q in rows for s in q)
    ids = torch.zeros(len(rows), len(rows[0]), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, q in enumerate(rows):
        for j, s in enumerate(q):
            span = slice(0, len(s)) if side == "right" else slice(length - len(s), length)
            ids[i, j, span] = torch.tensor(s)
            mask[i, j, span] = 1
    return ids, mask


ROWS = [
    [statement([5, 6, 7], [8]), statement([5, 6, 7], [9, 10, 11]), statement([5, 6, 7], [12])],
    [statement([20, 21], [22, 23]), statement([20, 21], [24]), statement([20, 21], [25, 26])],
]


def word_tokenizer(directory: Path | None = None) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer of 100 words (``w0`` ... ``w98`` and end-of-text)."""
    vocab = {"<|endoftext|>": 0, **{f"w{i}": i + 1 for i in range(V - 1)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    if directory is not None:
        fast.save_pretrained(directory)
    return fast


@pytest.mark.parametrize("backbone", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_shapes_and_choice_loss(backbone) -> None:
    model = make(backbone())
    ids, mask = batch(ROWS)
    labels = torch.tensor([1, 2])
    out = model(ids, mask, labels=labels)
    assert out.logits.shape == (2, 3)
    assert out.lm_loss is None and out.aux_loss is None  # eval mode: no LM loss by default
    expected = torch.nn.functional.cross_entropy(out.logits, labels)
    assert torch.allclose(out.loss, expected) and torch.allclose(out.mc_loss, expected)
    assert model(ids, mask, return_dict=False)[0].shape == (2, 3)


@pytest.mark.parametrize("backbone", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_extract_token_under_padding(backbone) -> None:
    """A statement's score is the same alone, right-padded and left-padded in a batch: the
    head reads the last real token and positions skip the padding."""
    model = make(backbone())
    alone = torch.stack([model(torch.tensor([[s]])).logits[0, 0] for q in ROWS for s in q]).view(
        2, 3
    )
    right = model(*batch(ROWS, "right")).logits
    left = model(*batch(ROWS, "left")).logits
    assert torch.allclose(alone, right, atol=1e-5)
    assert torch.allclose(alone, left, atol=1e-5)
    # the extract state matters: another last token gives another score
    changed = [[s[:-1] + [7] for s in q] for q in ROWS]
    assert not torch.allclose(model(*batch(changed)).logits, right)


def test_aux_lm_loss_weight() -> None:
    ids, mask = batch(ROWS)
    labels = torch.tensor([0, 1])
    off = make(lm_loss_weight=0.0).train()
    on = make(lm_loss_weight=0.5).train()
    out_off, out_on = off(ids, mask, labels=labels), on(ids, mask, labels=labels)
    assert out_off.aux_loss is None and torch.allclose(out_off.loss, out_off.mc_loss)
    assert torch.allclose(out_on.mc_loss, out_off.mc_loss)  # same weights, same choice loss
    assert out_on.lm_loss > 0
    assert torch.allclose(out_on.aux_loss, 0.5 * out_on.lm_loss)
    assert torch.allclose(out_on.loss, out_on.mc_loss + 0.5 * out_on.lm_loss)
    assert not torch.allclose(out_on.loss, out_off.loss)
    # the LM loss reaches the embeddings of statement tokens; without it only the head path does
    out_on.loss.backward()
    out_off.loss.backward()
    g_on = on.text_encoder.get_input_embeddings().weight.grad
    g_off = off.text_encoder.get_input_embeddings().weight.grad
    assert not torch.allclose(g_on, g_off)
    # explicit request in eval mode
    assert make(lm_loss_weight=0.5)(ids, mask, compute_lm_loss=True).lm_loss is not None


def test_lm_loss_ignores_padding_choices_and_special_targets() -> None:
    model = make(lm_loss_weight=1.0).train()
    ids, mask = batch(ROWS)
    keep = torch.tensor([[True, True, False], [True, True, True]])
    base = model(ids, mask, choice_mask=keep).lm_loss
    other = ids.clone()
    other[0, 2, 1:-1] = 50  # change the text of the padding choice only
    assert torch.allclose(model(other, mask, choice_mask=keep).lm_loss, base)
    assert not torch.allclose(model(other, mask).lm_loss, model(ids, mask).lm_loss)
    # statements of only special tokens leave nothing to predict: a zero loss, not NaN
    empty = torch.tensor([[[START, DELIM, EXTRACT]]])
    assert model(empty).lm_loss.item() == 0.0


def test_save_load_round_trip_and_auto(tmp_path: Path) -> None:
    model = make(lm_loss_weight=0.25)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "kelm_gpt" and saved["encoder_config"]["model_type"] == "gpt2"
    assert (tmp_path / "model.safetensors").is_file()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), km.KelmGPTConfig)
    loaded = AutoModelForMultipleChoice.from_pretrained(tmp_path)
    assert isinstance(loaded, km.KelmGPTForMultipleChoice)
    assert loaded.config.lm_loss_weight == 0.25
    assert loaded.config.special_token_ids == (START, DELIM, EXTRACT)
    ids, mask = batch(ROWS)
    assert torch.allclose(loaded(ids, mask).logits, model(ids, mask).logits, atol=1e-6)
    head = loaded.text_encoder.get_output_embeddings().weight
    assert head.data_ptr() == loaded.text_encoder.get_input_embeddings().weight.data_ptr()


def test_config_validation() -> None:
    with pytest.raises(StrictDataclassError, match="lm_loss_weight"):
        km.KelmGPTConfig(encoder_config=tiny_gpt2(), lm_loss_weight=-1.0)
    assert km.KelmGPTConfig().encoder_config.model_type == "openai-gpt"  # GPT-1 by default


def test_transfer_tokens_and_format() -> None:
    tok = word_tokenizer()
    assert transfer_token_ids(tok) is None
    ids = add_gpt1_special_tokens(tok)
    assert ids == {"start": V, "delimiter": V + 1, "extract": V + 2}
    assert add_gpt1_special_tokens(tok) == ids and len(tok) == V + 3  # idempotent
    assert tok.pad_token == "<|endoftext|>"
    assert transfer_token_ids(tok) == ids
    # Without a fast backend (token_to_id) the vocabulary answers, with the same result.
    assert transfer_token_ids(SimpleNamespace(get_vocab=tok.get_vocab)) == ids
    assert transfer_token_ids(SimpleNamespace(get_vocab=word_tokenizer().get_vocab)) is None
    plain = word_tokenizer()  # as clm pretraining adds them: the tokenizer's padding kept
    assert add_gpt1_special_tokens(plain, pad_token=False) == ids and plain.pad_token is None
    text = f"{TRANSFER_TOKENS['start']} w1 w2 {TRANSFER_TOKENS['extract']}"
    assert tok(text, add_special_tokens=False)["input_ids"] == [V, 2, 3, V + 2]  # never split

    assert encode_transfer([1, 2], [3], ids, 16) == [V, 1, 2, V + 1, 3, V + 2]
    cut = encode_transfer(list(range(1, 20)), [30, 31, 32, 33], ids, 10)
    assert len(cut) == 10 and cut[0] == V and cut[-1] == V + 2
    assert cut == [V, 1, 2, 3, 4, V + 1, 30, 31, 32, V + 2]  # longest first
    with pytest.raises(ValueError, match="at least 5"):
        encode_transfer([1], [2], ids, 4)


def test_gpt1_special_tokens_are_added_once(tmp_path: Path) -> None:
    tok = BertTokenizer(
        vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])}
    )
    first = add_gpt1_special_tokens(tok)
    assert set(first) == {"start", "delimiter", "extract"} and len(set(first.values())) == 3
    assert add_gpt1_special_tokens(tok) == first and len(tok) == 9
    ids = tok("a <|delim|> a <|extract|>", add_special_tokens=False)["input_ids"]
    assert ids == [5, first["delimiter"], 5, first["extract"]]
    tok.save_pretrained(tmp_path)
    again = BertTokenizer.from_pretrained(tmp_path)
    assert add_gpt1_special_tokens(again) == first


def test_from_causal_lm_grows_embeddings(tmp_path: Path) -> None:
    source = tmp_path / "lm"
    word_tokenizer(source)
    torch.manual_seed(1)
    lm = GPT2LMHeadModel(tiny_gpt2(vocab=V))
    lm.save_pretrained(source)
    tok = word_tokenizer()
    model = km.KelmGPTForMultipleChoice.from_causal_lm(source, tokenizer=tok, lm_loss_weight=0.5)
    emb = model.text_encoder.get_input_embeddings().weight
    assert emb.shape[0] == len(tok) == V + 3
    assert torch.equal(emb[:V], lm.get_input_embeddings().weight)
    assert model.config.special_token_ids == (V, V + 1, V + 2)
    assert model.config.encoder_name_or_path == str(source)
    # a config-only folder is a preset: random weights, a warning
    preset = tmp_path / "preset"
    tiny_gpt2(vocab=V).save_pretrained(preset)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km.KelmGPTForMultipleChoice.from_causal_lm(preset, tokenizer=word_tokenizer())
    assert any("random weights" in str(w.message) for w in caught)
    with pytest.raises(KelmError, match="cannot load a causal LM"):
        km.KelmGPTForMultipleChoice.from_causal_lm(tmp_path / "nope", tokenizer=word_tokenizer())

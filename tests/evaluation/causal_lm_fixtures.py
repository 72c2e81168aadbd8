"""Tiny causal LMs and questions for the zero-shot tests: a byte-level BPE trained here on the
fixture texts, random Llama and GPT-2 models over it, a pool of answered questions, and the
direct (unbatched, uncached) log-likelihood every score is checked against.

A plain module (imported by the tests and by this folder's conftest), not a conftest.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kelm.data.qa import Choice, QAItem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qa"

TEXTS = [
    "Question: where does a dog live? Answer: house",
    "Question: where does a fish live? Answer: water",
    "The man broke his toe because he dropped a hammer on his foot.",
    "The big cat was hungry so it ate ice cream. I went to an antique shop.",
    "If a lantern is not for sale, where is it likely to be? dark place, bus stop, Running",
    "Fact: dogs are animals that run. A dog can run, fly, read, write.",
]


def make_tokenizer(pre_tokenize: bool = True, vocab_size: int = 300):
    """A byte-level BPE over the fixture texts (``pre_tokenize=False``: merges may cross
    spaces, like a tokenizer that joins the prompt's end with the choice's start)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if pre_tokenize:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=alphabet, special_tokens=["<pad>"]
    )
    tok.train_from_iterator(TEXTS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")


def tiny_llama(vocab_size: int, max_positions: int = 256):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def tiny_gpt2(vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(config).eval()


def item(i: int, stem: str, choices: list[str], answer: int | None = 0, **meta: str) -> QAItem:
    labels = "ABCDE"
    return QAItem(
        f"q{i}",
        stem,
        [Choice(labels[j], t) for j, t in enumerate(choices)],
        labels[answer] if answer is not None else None,
        dict(meta),
    )


POOL = [
    item(0, "where does a dog live?", ["house", "sky", "water"], 0),
    item(1, "where does a fish live?", ["water", "street", "sky"], 0),
    item(2, "what can a bird do?", ["swim", "fly"], 1),
    item(3, "what can a fish do?", ["fly", "swim", "street"], 1),
    item(4, "where is a bird?", ["sky", "house", "street"], 0),
    item(5, "what is a dog?", ["animal", "street", "ocean"], 0),
    item(6, "what is a cat?", ["sky", "animal", "water", "dog"], 1),
    item(7, "where does a cat live?", ["ocean", "zoo", "house"], 2),
]


def direct_logprob(model, prefix: list[int], cont: list[int]) -> float:
    """``log P(cont | prefix)`` from one unbatched, uncached forward pass of the whole text."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prefix + cont])).logits[0].double(), -1)
    return float(sum(logp[len(prefix) - 1 + t, tok] for t, tok in enumerate(cont)))

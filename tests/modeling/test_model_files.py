"""The file manifest of a saved model folder: every file's sha256 recorded when saved, checked
before a load; a bit flipped inside the weights (which ``from_pretrained`` reads without a
word) is a one-line error naming the file; a folder saved without a manifest still loads."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
from modeling_fixtures import tiny_bert
from transformers import AutoModel, BertModel, BertTokenizer

from kelm.errors import KelmError
from kelm.modeling import encoders
from kelm.modeling.model_files import (
    KIND,
    MANIFEST,
    has_model_manifest,
    record_model_files,
    verify_model_files,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A tiny saved BERT with its tokenizer and manifest (as a run's ``model/``)."""
    out = tmp_path / "model"
    BertModel(tiny_bert(), add_pooling_layer=False).save_pretrained(out)
    BertTokenizer(vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "a", "b"])}).save_pretrained(
        out
    )
    record_model_files(out)
    return out


def _flip_weight_bit(file: Path) -> None:
    """Flip one bit in the tensor data (past the safetensors header): the file still loads."""
    data = bytearray(file.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[random.Random(0).randrange(header, len(data))] ^= 0x10
    file.write_bytes(bytes(data))


def test_manifest_lists_every_file_and_the_folder_still_loads(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["kind"] == KIND and manifest["format_version"] == 1
    on_disk = {p.name for p in folder.iterdir()} - {MANIFEST}
    assert set(manifest["files"]) == on_disk
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= on_disk
    assert verify_model_files(folder) is True
    assert AutoModel.from_pretrained(folder).config.hidden_size == 32  # the extra file is ignored


def test_a_flipped_weight_bit_loads_silently_but_is_refused(folder: Path) -> None:
    _flip_weight_bit(folder / "model.safetensors")
    AutoModel.from_pretrained(folder)  # why the manifest exists: transformers does not notice
    with pytest.raises(KelmError, match=r"model\.safetensors: checksum does not match"):
        verify_model_files(folder)


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_an_edited_or_missing_file_is_named(folder: Path, name: str) -> None:
    text = (folder / name).read_text()
    (folder / name).write_text(text.replace("3", "4", 1) if "3" in text else text + "x\n")
    with pytest.raises(KelmError, match=rf"{name}: checksum does not match"):
        verify_model_files(folder)
    (folder / name).unlink()
    with pytest.raises(KelmError, match=rf"{name}: missing from the saved model"):
        verify_model_files(folder)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\x00not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"kind": "kelm-graph-index", "format_version": 1}', "not a kelm saved model manifest"),
        (b'{"kind": "kelm-model", "format_version": 9, "files": {}}', "format version 9"),
        (b'{"kind": "kelm-model", "format_version": 1, "files": []}', "no 'files' record"),
        (
            b'{"kind": "kelm-model", "format_version": 1, "files": {"../x": "0"}}',
            "outside the folder",
        ),
    ],
)
def test_a_damaged_manifest_is_refused(folder: Path, content: bytes, message: str) -> None:
    (folder / MANIFEST).write_bytes(content)
    with pytest.raises(KelmError, match=message):
        verify_model_files(folder)


def test_a_folder_saved_without_a_manifest_loads_with_a_warning(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / MANIFEST).unlink()
    assert not has_model_manifest(folder)
    with caplog.at_level(logging.WARNING, logger="kelm.modeling.model_files"):
        assert verify_model_files(folder) is False
    assert "loaded unverified" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kelm.modeling.model_files"):
        assert verify_model_files(folder, required=False) is False  # any HF folder: silent
    assert caplog.text == ""


def test_check_model_folder_verifies_a_saved_model(folder: Path, tmp_path: Path) -> None:
    """A run's ``model/`` given as an encoder (``--set model.encoder=RUN/model``)."""
    encoders.check_model_folder(folder)
    _flip_weight_bit(folder / "model.safetensors")
    with pytest.raises(KelmError, match=r"model\.safetensors: checksum does not match"):
        encoders.check_model_folder(folder)
    # a Hugging Face folder without a kelm manifest passes unverified
    (folder / MANIFEST).unlink()
    encoders.check_model_folder(folder)

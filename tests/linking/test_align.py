"""Character spans to wordpiece indices, with a tiny WordPiece tokenizer built in the test."""

from __future__ import annotations

import pytest
import spacy
from spacy.tokens import Span

from kelm.errors import KelmError
from kelm.linking.align import align_spans, char_spans_to_tokens, doc_spans_to_tokens

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "bus",
    "stop",
    "dog",
    "##s",
    "run",
    "##ning",
    "big",
    "cat",
    "cafe",
    "at",
    "-",
    ".",
]


@pytest.fixture(scope="module")
def tokenizer():
    """A BERT-style fast tokenizer (lower-casing, accent stripping) from a 18-word vocab."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
    )


TEXT = "The dogs running at the Café bus-stop."


def pieces(tokenizer, encoding, indices):
    return [tokenizer.convert_ids_to_tokens(encoding["input_ids"])[i] for i in indices]


def test_spans_to_wordpieces(tokenizer):
    spans = [(4, 8), (9, 16), (24, 28), (29, 37), (0, 3)]  # dogs, running, Café, bus-stop, The
    encoding, indices = align_spans(tokenizer, TEXT, spans)
    assert [pieces(tokenizer, encoding, i) for i in indices] == [
        ["dog", "##s"],
        ["run", "##ning"],
        ["cafe"],
        ["bus", "-", "stop"],
        ["the"],
    ]


def test_partial_and_empty_spans(tokenizer):
    encoding, indices = align_spans(tokenizer, TEXT, [(5, 6), (8, 9), (37, 38), (38, 38)])
    # inside one piece -> that piece; the space between words -> nothing; "." -> "."
    assert [pieces(tokenizer, encoding, i) for i in indices] == [["dog"], [], ["."], []]


def test_special_tokens_never_match():
    offsets = [(0, 0), (0, 3), (4, 7), (0, 0)]
    assert char_spans_to_tokens(offsets, [(0, 7)]) == [[1, 2]]


def test_text_pair_uses_sequence_ids(tokenizer):
    encoding, indices = align_spans(
        tokenizer, "big cat", [(0, 8)], text_pair="the dogs", sequence=1
    )
    assert pieces(tokenizer, encoding, indices[0]) == ["the", "dog", "##s"]
    _, first = align_spans(tokenizer, "big cat", [(4, 7)], text_pair="the dogs")
    assert pieces(tokenizer, encoding, first[0]) == ["cat"]


def test_truncated_span_maps_to_nothing(tokenizer):
    _, indices = align_spans(tokenizer, TEXT, [(29, 37)], truncation=True, max_length=4)
    assert indices == [[]]


def test_bad_span():
    with pytest.raises(ValueError):
        char_spans_to_tokens([(0, 3)], [(5, 2)])


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(KelmError, match="fast tokenizer"):
        align_spans(Slow(), "text", [(0, 4)])


def test_doc_spans(tokenizer):
    doc = spacy.blank("en")(TEXT)
    doc.spans["kelm"] = [Span(doc, 1, 2, label="CONCEPT"), Span(doc, 5, 6, label="CONCEPT")]
    encoding, indices = doc_spans_to_tokens(doc, tokenizer)
    assert [pieces(tokenizer, encoding, i) for i in indices] == [["dog", "##s"], ["cafe"]]
    empty = spacy.blank("en")("nothing")
    assert doc_spans_to_tokens(empty, tokenizer)[1] == []

"""Character spans to wordpiece token indices, for any Hugging Face (fast) tokenizer.

The linker reports character offsets; fusion models need the positions of the subword tokens
that cover them. The alignment uses the tokenizer's own ``offset_mapping`` (fast tokenizers
only), so it is right whatever the tokenizer does to the text (lower-casing, accent
stripping, byte-level BPE with leading-space tokens, WordPiece ``##`` continuations).

A token belongs to a span when their character ranges overlap; special tokens (empty
offsets) never do. A span inside a single token maps to that token; a span that covers no
token (whitespace only, or cut off by truncation) maps to an empty list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kelm.errors import KelmError


def char_spans_to_tokens(
    offsets: Sequence[Sequence[int]] | np.ndarray,
    spans: Sequence[tuple[int, int]],
    sequence_ids: Sequence[int | None] | None = None,
    sequence: int = 0,
) -> list[list[int]]:
    """Token indices covering each character span.

    Args:
        offsets: ``(start, end)`` character offsets per token (``offset_mapping`` of one
            encoding); ``(0, 0)`` marks special tokens.
        spans: ``(start, end)`` character spans, end exclusive.
        sequence_ids: for an encoded text pair, which sequence each token comes from
            (``encoding.sequence_ids()``); the offsets of each sequence start at 0.
        sequence: the sequence the spans refer to (0: text, 1: text pair).

    Returns:
        For each span, the sorted token indices overlapping it.
    """
    # Plain Python: a statement or instance has a few dozen tokens and spans, where numpy's
    # per-call cost would dominate.
    rows = offsets.tolist() if isinstance(offsets, np.ndarray) else offsets
    if sequence_ids is not None and len(sequence_ids) != len(rows):
        raise ValueError("sequence_ids and offsets differ in length")
    usable = [
        (i, int(start), int(end))
        for i, (start, end) in enumerate(rows)
        if end > start and (sequence_ids is None or sequence_ids[i] == sequence)
    ]
    result = []
    for span_start, span_end in spans:
        if span_end < span_start:
            raise ValueError(f"span ({span_start}, {span_end}) ends before it starts")
        result.append([i for i, start, end in usable if start < span_end and end > span_start])
    return result


def align_spans(
    tokenizer: Any,
    text: str,
    spans: Sequence[tuple[int, int]],
    text_pair: str | None = None,
    sequence: int = 0,
    **encode_kwargs: Any,
) -> tuple[Any, list[list[int]]]:
    """Tokenise ``text`` (and ``text_pair``) and map character spans to token indices.

    Args:
        tokenizer: a Hugging Face *fast* tokenizer (``PreTrainedTokenizerFast``).
        text: the text the spans refer to (or the first of a pair).
        spans: ``(start, end)`` character spans.
        text_pair: optional second text.
        sequence: which text the spans refer to (0: ``text``, 1: ``text_pair``).
        **encode_kwargs: passed to the tokenizer (``truncation``, ``max_length``...).

    Returns:
        ``(encoding, token_indices)``: the tokenizer's output (with ``offset_mapping``) and,
        per span, its token indices.

    Raises:
        KelmError: the tokenizer cannot report offsets (a slow, Python tokenizer).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise KelmError(
            f"{type(tokenizer).__name__} gives no character offsets; load a fast "
            f"tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True))"
        )
    encoding = tokenizer(text, text_pair, return_offsets_mapping=True, **encode_kwargs)
    sequence_ids = encoding.sequence_ids() if text_pair is not None else None
    indices = char_spans_to_tokens(encoding["offset_mapping"], spans, sequence_ids, sequence)
    return encoding, indices


def doc_spans_to_tokens(
    doc: Any, tokenizer: Any, span_key: str = "kelm", **encode_kwargs: Any
) -> tuple[Any, list[list[int]]]:
    """Wordpiece indices of the linker spans of a spaCy doc (``doc.spans[span_key]``)."""
    spans = [(s.start_char, s.end_char) for s in doc.spans.get(span_key, [])]
    return align_spans(tokenizer, doc.text, spans, **encode_kwargs)

"""QA items -> tokenised examples: every "question [SEP] choice" statement of a question,
with the statement's retrieved subgraph and paths (subgraph families) or its entities aligned to
wordpieces (entity families), or in the GPT-1 transfer format (causal-LM families)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from kelm.errors import KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pipeline.entities import StatementMentions, align_entities

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from kelm.data.qa import QAItem
    from kelm.retrieval.store import RetrievalStore


def empty_graph() -> Data:
    """A statement graph without nodes (what a statement missing from the retrieval gets)."""
    from torch_geometric.data import Data

    return Data(
        node_ids=torch.zeros(0, dtype=torch.long),
        node_type=torch.zeros(0, dtype=torch.long),
        node_score=torch.zeros(0, dtype=torch.float32),
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        edge_type=torch.zeros(0, dtype=torch.long),
        num_nodes=0,
    )


@dataclass
class Example:
    """One question, tokenised, with the graph inputs of each choice.

    Attributes:
        id: the question id.
        labels: the choice labels, in file order.
        input_ids, token_type_ids: per choice, the tokens of "question [SEP] choice"
            (``token_type_ids`` is ``None`` for tokenizers without segment ids).
        label: index of the right choice, :data:`IGNORE_INDEX` when unknown.
        graphs: per choice, the PyG subgraph (graph models).
        paths: per choice, the ``(node_ids, relation_ids)`` paths (KagNet).
        entity_ids: per choice, the node id aligned to each token, ``-1`` where none (ERNIE).
        frozen: what the frozen text encoder computes for each choice (``[num_choices, H]``
            statement vectors, or ``[num_choices, L, H]`` token states): set by the training
            loop while the encoder is frozen, so it runs once per statement instead of once
            per epoch (:mod:`kelm.engine.frozen`).
    """

    id: str
    labels: list[str]
    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    label: int
    graphs: list[Data] | None = None
    paths: list[list[tuple[list[int], list[int]]]] | None = None
    entity_ids: list[list[int]] | None = None
    frozen: torch.Tensor | None = None

    @property
    def num_choices(self) -> int:
        return len(self.labels)


def build_examples(
    items: Sequence[QAItem],
    tokenizer: Any,
    max_length: int,
    *,
    store: RetrievalStore | None = None,
    with_paths: bool = False,
    mentions: Sequence[StatementMentions] | None = None,
) -> tuple[list[Example], dict[str, int]]:
    """Tokenise the statements of ``items`` and attach their graphs (when ``store``) or their
    aligned entities (when ``mentions``, from :func:`link_entities`).

    Returns:
        ``(examples, counts)`` with counts of ``statements``, ``empty_graphs`` (no node) and
        ``missing_graphs`` (not in the retrieval); with ``mentions`` also ``entities``
        (aligned) and ``statements_without_entities``.

    Raises:
        KelmError: ``mentions`` with a tokenizer that gives no character offsets.
    """
    questions = [item.question for item in items for _ in item.choices]
    answers = [choice.text for item in items for choice in item.choices]
    counts = {"statements": len(questions), "empty_graphs": 0, "missing_graphs": 0}
    if mentions is not None:
        counts.update(entities=0, statements_without_entities=0)
    if not questions:
        return [], counts
    if mentions is not None and not getattr(tokenizer, "is_fast", False):
        raise KelmError(
            f"{type(tokenizer).__name__} gives no character offsets, which entity alignment "
            "needs; use a fast tokenizer (model.tokenizer)"
        )
    transfer = _transfer_ids(tokenizer) if mentions is None else None
    if transfer is not None:  # a causal LM tokenizer with the GPT-1 transfer tokens (``gpt``)
        ids, types = transfer_statements(questions, answers, tokenizer, transfer, max_length), None
    else:
        enc = tokenizer(
            questions,
            answers,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=mentions is not None,
        )
        ids, types = enc["input_ids"], enc.get("token_type_ids")
    entity_rows: list[list[int]] | None = None
    if mentions is not None:
        if len(mentions) != len(questions):
            raise ValueError(f"{len(mentions)} mention lists for {len(questions)} statements")
        entity_rows = []
        for row, found in enumerate(mentions):
            aligned = align_entities(enc["offset_mapping"][row], enc.sequence_ids(row), found)
            linked = sum(e >= 0 for e in aligned)
            counts["entities"] += linked
            counts["statements_without_entities"] += int(linked == 0)
            entity_rows.append(aligned)
    examples: list[Example] = []
    row = 0
    for item in items:
        c = len(item.choices)
        graphs = paths = None
        if store is not None:
            graphs, paths = [], []
            for choice in item.choices:
                try:
                    i = store.index_of(item.id, choice.label)
                except KeyError:
                    counts["missing_graphs"] += 1
                    graphs.append(empty_graph())
                    paths.append([])
                    continue
                data = store.subgraph(i, with_inverse=True)
                counts["empty_graphs"] += int(data.num_nodes == 0)
                graphs.append(data)
                paths.append([(p.nodes, p.relations) for p in store.paths(i)] if with_paths else [])
        label = item.answer_index
        examples.append(
            Example(
                id=item.id,
                labels=[ch.label for ch in item.choices],
                input_ids=[list(x) for x in ids[row : row + c]],
                token_type_ids=[list(x) for x in types[row : row + c]] if types else None,
                label=IGNORE_INDEX if label is None else label,
                graphs=graphs,
                paths=paths if with_paths else None,
                entity_ids=entity_rows[row : row + c] if entity_rows is not None else None,
            )
        )
        row += c
    return examples, counts


def _transfer_ids(tokenizer: Any) -> dict[str, int] | None:
    from kelm.modeling.modeling_gpt import transfer_token_ids

    return transfer_token_ids(tokenizer)


def transfer_statements(
    questions: Sequence[str],
    answers: Sequence[str],
    tokenizer: Any,
    ids: dict[str, int],
    max_length: int,
) -> list[list[int]]:
    """Statements in the GPT-1 transfer format ``<start> question <delim> choice <extract>``
    (:func:`kelm.modeling.modeling_gpt.encode_transfer`), each distinct text tokenised once.

    Args:
        questions, answers: one question and one choice text per statement.
        tokenizer: a tokenizer carrying the transfer tokens.
        ids: their ids (``start``, ``delimiter``, ``extract``).
        max_length: tokens per statement (the texts are cut, the special tokens kept).
    """
    from kelm.modeling.modeling_gpt import encode_transfer

    texts = list(dict.fromkeys([*questions, *answers]))
    pieces = dict(zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True))
    return [
        encode_transfer(pieces[q], pieces[a], ids, max_length)
        for q, a in zip(questions, answers, strict=True)
    ]


__all__ = ["Example", "build_examples", "empty_graph", "transfer_statements"]

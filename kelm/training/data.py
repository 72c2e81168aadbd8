"""Training and evaluation data: QA items -> tokenised statements, subgraphs and paths -> batches.

Pipeline, per QA file (graph models only for steps 2-4):

1. :func:`read_items` reads a QA file (:mod:`kelm.data.qa`) and checks it (ids unique,
   answers present when training); :func:`split_items` holds out a seeded fraction.
2. :meth:`GraphResources.open` loads the graph index (or builds it once from ``graph.source``
   into the cache).
3. :meth:`GraphResources.store_for` writes the questions in use as a normalised JSONL (named by
   its content hash), grounds it (:func:`kelm.linking.ground.ground_file`) and retrieves
   subgraphs and paths (:func:`kelm.retrieval.retrieve`); both are cached by their own keys
   (graph checksum, input checksum, options), so a second run reuses them.
4. :func:`build_examples` tokenises every "question [SEP] choice" statement and attaches each
   statement's PyG ``Data`` subgraph (with inverse edges) and paths. A statement without
   grounded concepts gets the retrieval's empty graph; one missing from the retrieval gets an
   empty ``Data``: graph models still answer it.

The ``ernie`` model (no retrieval) instead links every question and choice text to graph
nodes with the concept linker (:func:`link_entities`: non-overlapping mentions, longest
first), and :func:`build_examples` puts each mention's node id on the first wordpiece of the
mention (``entity_ids``, ``-1`` elsewhere).

The ``gpt`` model's tokenizer carries the GPT-1 transfer tokens
(:func:`kelm.modeling.modeling_gpt.add_gpt1_special_tokens`); :func:`build_examples` then writes
each statement as ``<start> question <delim> choice <extract>`` (:func:`transfer_statements`).

:class:`Collator` pads a list of :class:`Example` into model inputs (shapes below); questions
with fewer choices than the widest one in the batch get padding choices (copies of their first
choice) masked out by ``choice_mask``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kelm._io import atomic_file, sha256_file
from kelm.errors import InputError, KelmError

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex
    from kelm.retrieval.store import RetrievalStore
    from kelm.training.config import GraphConfig

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label of a question without answer key (left out of the loss and the accuracy)."""


# ---------------------------------------------------------------------------------- items
def read_items(path: str | Path, *, need_answers: bool) -> list[QAItem]:
    """Read a QA file and check it for training or evaluation.

    Args:
        path: CommonsenseQA (either form) / OpenBookQA JSONL or COPA XML.
        need_answers: every item must have an answer key (training).

    Raises:
        InputError: missing, empty or malformed file, a repeated id, or (``need_answers``) an
            item without answer key.
    """
    from kelm.data.qa import read_qa

    items = read_qa(path)
    seen: dict[str, int] = {}
    for n, item in enumerate(items, start=1):
        if item.id in seen:
            raise InputError(
                f"{path}: duplicate id {item.id!r} (items {seen[item.id]} and {n}); "
                "ids must be unique"
            )
        seen[item.id] = n
        if need_answers and item.answer_index is None:
            raise InputError(
                f"{path}: item {item.id!r} (item {n}) has no answer key; training needs one "
                "for every question"
            )
    return items


def split_items(
    items: Sequence[QAItem], holdout: float, split_seed: int, max_train: int | None = None
) -> tuple[list[QAItem], list[QAItem]]:
    """Hold out ``round(holdout * n)`` questions, chosen by a permutation seeded with
    ``split_seed``; ``max_train`` keeps a seeded subset of the rest.

    Returns:
        ``(train, held_out)``, each in file order.
    """
    n = len(items)
    order = np.random.default_rng(split_seed).permutation(n)
    n_eval = int(round(holdout * n))
    if holdout > 0 and n_eval == 0 and n > 1:
        n_eval = 1
    if n_eval >= n:
        raise KelmError(f"data.holdout={holdout} leaves no training questions out of {n}")
    eval_idx = np.sort(order[:n_eval])
    train_idx = order[n_eval:]
    if max_train is not None:
        train_idx = train_idx[:max_train]
    train_idx = np.sort(train_idx)
    return [items[i] for i in train_idx], [items[i] for i in eval_idx]


# ---------------------------------------------------------------------------------- graphs
def default_cache_dir() -> Path:
    """``$KELM_CACHE/training`` (``~/.cache/kelm/training``)."""
    from kelm.paths import cache_dir

    return cache_dir() / "training"


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class GraphResources:
    """A loaded graph index plus the cache where its pipeline results live."""

    path: Path
    index: GraphIndex
    cache: Path

    @classmethod
    def open(cls, gcfg: GraphConfig, *, progress: bool = False) -> GraphResources:
        """Load ``gcfg.index``, or build the index from ``gcfg.source`` into the cache (once).

        Raises:
            KelmError: missing or corrupt index, unreadable sources.
        """
        from kelm.graph.index import GraphIndex

        cache = Path(gcfg.cache_dir) if gcfg.cache_dir else default_cache_dir()
        if gcfg.index:
            path = Path(gcfg.index)
        else:
            sources = [gcfg.source] if isinstance(gcfg.source, str) else list(gcfg.source or [])
            for src in sources:
                if not Path(src).exists():
                    raise InputError(f"{src}: graph source file not found (graph.source)")
            key = _digest(
                {
                    "format": gcfg.format,
                    "sources": [sha256_file(s) if Path(s).is_file() else str(s) for s in sources],
                }
            )
            path = cache / "graphs" / f"{gcfg.format}-{key[:16]}"
            if not (path / "manifest.json").is_file():
                from kelm.graph import build_index
                from kelm.graph.sources.base import BuildOptions

                log.info("building graph index %s from %s", path, ", ".join(map(str, sources)))
                build_index(sources, path, BuildOptions(format=gcfg.format), progress=progress)
        index = GraphIndex.load(path, verify=False)
        return cls(path, index, cache)

    def store_for(
        self, items: Sequence[QAItem], gcfg: GraphConfig, *, progress: bool = False
    ) -> RetrievalStore:
        """Ground and retrieve ``items`` (cached), and open the retrieval results."""
        from kelm.linking.ground import ground_file
        from kelm.retrieval.retrieve import RetrieveOptions, retrieve
        from kelm.retrieval.store import RetrievalStore

        qa_file = write_items_jsonl(items, self.cache / "qa")
        pipeline = gcfg.pipeline or "blank"
        grounded = (
            self.cache / "grounded" / f"{self.index.checksum[:16]}-{qa_file.stem}-{pipeline}.jsonl"
        )
        grounded.parent.mkdir(parents=True, exist_ok=True)
        ground_file(
            self.path,
            qa_file,
            grounded,
            pipeline=gcfg.pipeline,
            progress=progress,
            cache_dir=self.cache / "linker",
        )
        options = RetrieveOptions(
            max_nodes=gcfg.max_nodes,
            hops=gcfg.hops,
            paths=gcfg.paths,
            scorer=gcfg.scorer,
            context=gcfg.context,
        )
        key = _digest({"grounded": grounded.name, "options": asdict(options)})
        out = self.cache / "retrieval" / key[:20]
        retrieve(
            self.path,
            grounded,
            out,
            options,
            cache_dir=self.cache / "scorer",
            progress=progress,
        )
        return RetrievalStore(out)

    def link_entities(
        self, items: Sequence[QAItem], gcfg: GraphConfig, *, progress: bool = False
    ) -> list[StatementMentions]:
        """:func:`link_entities` with this graph and the cache's linker index."""
        return link_entities(
            items,
            self.index,
            pipeline=gcfg.pipeline,
            cache_dir=self.cache / "linker",
            progress=progress,
        )


# ---------------------------------------------------------------------------------- entities
EntityMention = tuple[int, int, int]
"""A linked mention: ``(start_char, end_char, node_id)`` in its text."""
StatementMentions = tuple[list[EntityMention], list[EntityMention]]
"""The mentions of one statement's question and of its choice."""


def link_entities(
    items: Sequence[QAItem],
    graph: GraphIndex,
    *,
    pipeline: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 2000,
    progress: bool = False,
) -> list[StatementMentions]:
    """Link the question and the choice text of every statement to graph nodes.

    The concept linker (the grounding's lemma n-gram index, :mod:`kelm.linking.linker`)
    finds every match in a text; overlapping matches are resolved longest first (then
    leftmost), and each kept mention takes the first of its nodes. Each distinct text is
    linked once.

    Args:
        items: the questions.
        graph: the graph index.
        pipeline: installed spaCy pipeline (default: blank English, lookup lemmas).
        cache_dir: linker index cache.
        batch_size: texts per linker batch.
        progress: a progress bar.

    Returns:
        Per statement (question-major, choices in file order): ``(question mentions,
        choice mentions)``, each sorted by position.
    """
    from tqdm.auto import tqdm

    from kelm.linking import Linker, LinkerOptions
    from kelm.linking.ground import make_nlp

    texts: dict[str, int] = {}
    for item in items:
        texts.setdefault(item.question, len(texts))
        for choice in item.choices:
            texts.setdefault(choice.text, len(texts))
    if not texts:
        return []
    nlp = make_nlp(pipeline)
    options = LinkerOptions(lemmas="pipeline" if pipeline else "lookup")
    linker = Linker(graph, nlp, options, cache_dir=cache_dir)
    ordered = list(texts)
    found: list[list[EntityMention]] = []
    with tqdm(
        total=len(ordered), desc="linking entities", unit="text", disable=not progress
    ) as bar:
        for start in range(0, len(ordered), batch_size):
            docs = list(nlp.pipe(ordered[start : start + batch_size]))
            for doc, mentions in zip(docs, linker.mentions(docs), strict=True):
                taken: set[int] = set()
                kept: list[EntityMention] = []
                for m in sorted(mentions, key=lambda m: (m.start - m.end, m.start)):
                    if m.node_ids and taken.isdisjoint(range(m.start, m.end)):
                        taken.update(range(m.start, m.end))
                        span = doc[m.start : m.end]
                        kept.append((span.start_char, span.end_char, int(m.node_ids[0])))
                found.append(sorted(kept))
            bar.update(len(docs))
    return [
        (found[texts[item.question]], found[texts[choice.text]])
        for item in items
        for choice in item.choices
    ]


def align_entities(
    offsets: Sequence[Sequence[int]],
    sequence_ids: Sequence[int | None],
    mentions: StatementMentions,
) -> list[int]:
    """Entity ids of one tokenised statement: each mention's node on the first wordpiece it
    covers, ``-1`` elsewhere; mentions cut off by truncation are dropped.

    Args:
        offsets: the statement's ``offset_mapping`` (per token).
        sequence_ids: which text each token comes from (0: question, 1: choice, None).
        mentions: the question's and the choice's mentions.
    """
    out = [-1] * len(offsets)
    for sequence, side in enumerate(mentions):
        if not side:
            continue
        # The overlap rule of kelm.linking.align.char_spans_to_tokens, in plain Python: a
        # statement has a few dozen tokens and mentions, where numpy's per-call cost dominates.
        tokens = [
            (i, start, end)
            for i, ((start, end), seq) in enumerate(zip(offsets, sequence_ids, strict=True))
            if seq == sequence and end > start
        ]
        for span_start, span_end, node in side:
            for i, start, end in tokens:
                if start < span_end and end > span_start:
                    out[i] = node
                    break
    return out


def write_items_jsonl(items: Sequence[QAItem], directory: Path) -> Path:
    """The items as CommonsenseQA-form JSONL named by its content hash (written once).

    Grounding reads only ids, question and choice texts, so any source format (COPA,
    OpenBookQA) grounds the same through this file; the stem is the item's
    :attr:`~kelm.data.qa.QAItem.grounding_text`.
    """
    lines = []
    for item in items:
        lines.append(
            json.dumps(
                {
                    "id": item.id,
                    "question": {
                        # What grounding reads (COPA: the premise alone).
                        "stem": item.grounding_text,
                        "choices": [{"label": c.label, "text": c.text} for c in item.choices],
                    },
                    "answerKey": item.answer or "",
                },
                ensure_ascii=False,
                sort_keys=True,
            )
        )
    content = ("\n".join(lines) + "\n").encode("utf-8")
    path = directory / f"{hashlib.sha256(content).hexdigest()[:20]}.jsonl"
    if not path.is_file() or path.stat().st_size != len(content):
        with atomic_file(path, "wb") as fh:
            fh.write(content)
    return path


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


# ---------------------------------------------------------------------------------- examples
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
    """

    id: str
    labels: list[str]
    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    label: int
    graphs: list[Data] | None = None
    paths: list[list[tuple[list[int], list[int]]]] | None = None
    entity_ids: list[list[int]] | None = None

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


# ---------------------------------------------------------------------------------- batches
class Collator:
    """Pads a list of :class:`Example` into model inputs.

    Args:
        pad_token_id: the tokenizer's padding id.
        max_hops: KagNet's ``K`` (paths are ``K + 1`` nodes).
        max_paths: paths per statement kept.

    Returns (``__call__``), with ``B`` questions, ``C`` the most choices of one, ``L`` the
    longest statement:

        - ``input_ids``, ``attention_mask``, ``token_type_ids``: ``[B, C, L]``
        - ``choice_mask``: ``[B, C]`` bool (False for padding choices)
        - ``labels``: ``[B]`` (:data:`IGNORE_INDEX` when unknown)
        - ``graphs``: a PyG ``Batch`` of the ``B * C`` statement graphs, question-major
        - ``path_nodes`` ``[B*C, P, K+1]``, ``path_rels`` ``[B*C, P, K]``, ``path_mask``
          ``[B*C, P]`` (KagNet)
        - ``entity_ids``: ``[B, C, L]``, ``-1`` where no entity and in padding (ERNIE)
    """

    def __init__(self, pad_token_id: int, max_hops: int = 3, max_paths: int = 32) -> None:
        self.pad_token_id = int(pad_token_id)
        self.max_hops = max_hops
        self.max_paths = max_paths

    def __call__(self, examples: Sequence[Example]) -> dict[str, Any]:
        from torch_geometric.data import Batch

        from kelm.modeling import pad_paths

        b = len(examples)
        c = max(e.num_choices for e in examples)
        length = max(len(ids) for e in examples for ids in e.input_ids)
        input_ids = torch.full((b, c, length), self.pad_token_id, dtype=torch.long)  # [B, C, L]
        attention_mask = torch.zeros(b, c, length, dtype=torch.long)  # [B, C, L]
        with_types = all(e.token_type_ids is not None for e in examples)
        token_type_ids = torch.zeros(b, c, length, dtype=torch.long)  # [B, C, L]
        choice_mask = torch.zeros(b, c, dtype=torch.bool)  # [B, C]
        with_entities = all(e.entity_ids is not None for e in examples)
        entity_ids = torch.full((b, c, length), -1, dtype=torch.long)  # [B, C, L]
        graphs: list[Data] = []
        paths: list[list[tuple[list[int], list[int]]]] = []
        for i, e in enumerate(examples):
            for j in range(c):
                k = j if j < e.num_choices else 0  # padding choices copy the first one
                ids = e.input_ids[k]
                input_ids[i, j, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[i, j, : len(ids)] = 1
                if with_types:
                    types = e.token_type_ids[k]  # type: ignore[index]
                    token_type_ids[i, j, : len(types)] = torch.tensor(types, dtype=torch.long)
                choice_mask[i, j] = j < e.num_choices
                if with_entities:
                    ents = e.entity_ids[k]  # type: ignore[index]
                    entity_ids[i, j, : len(ents)] = torch.tensor(ents, dtype=torch.long)
                if e.graphs is not None:
                    graphs.append(e.graphs[k])
                if e.paths is not None:
                    paths.append(e.paths[k])
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "choice_mask": choice_mask,
            "labels": torch.tensor([e.label for e in examples], dtype=torch.long),  # [B]
        }
        if with_types:
            batch["token_type_ids"] = token_type_ids
        if with_entities:
            batch["entity_ids"] = entity_ids
        if graphs:
            batch["graphs"] = Batch.from_data_list(graphs)  # B*C graphs
        if examples[0].paths is not None:
            batch.update(pad_paths(paths, max_hops=self.max_hops, max_paths=self.max_paths))
        return batch


def move_to(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch with every tensor (and the PyG ``Batch``) on ``device``."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


MODEL_INPUTS: dict[str, tuple[str, ...]] = {
    "lm": ("input_ids", "attention_mask", "token_type_ids"),
    "kagnet": (
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "graphs",
        "path_nodes",
        "path_rels",
        "path_mask",
    ),
    "qagnn": ("input_ids", "attention_mask", "token_type_ids", "graphs"),
    "ernie": ("input_ids", "attention_mask", "token_type_ids", "entity_ids"),
    "gpt": ("input_ids", "attention_mask", "choice_mask"),
}
"""The batch keys each model family's ``forward`` takes."""


def model_inputs(batch: dict[str, Any], model_type: str) -> dict[str, Any]:
    """The part of a collated batch that the model of ``model_type`` takes."""
    return {k: batch[k] for k in MODEL_INPUTS[model_type] if k in batch}


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This process's batches of one epoch: a permutation of ``range(n)`` seeded by
    ``(seed, epoch)`` cut into global batches of ``batch_size * world``, of which rank ``r``
    takes the ``r``-th slice. With several processes the permutation is padded by wrapping
    around so that every process gets the same number of full batches.

    The order depends only on ``(seed, epoch, rank, world)``, so a resumed run sees exactly
    the batches an uninterrupted one would.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    if n == 0:
        return []
    step = batch_size * world
    steps = -(-n // step)
    if world > 1:
        total = steps * step
        order = np.resize(order, total)  # wrap-around padding
    out = []
    for s in range(steps):
        lo = s * step + rank * batch_size
        chunk = order[lo : lo + batch_size]
        if len(chunk):
            out.append([int(i) for i in chunk])
    return out


__all__ = [
    "IGNORE_INDEX",
    "MODEL_INPUTS",
    "Collator",
    "Example",
    "GraphResources",
    "align_entities",
    "build_examples",
    "default_cache_dir",
    "empty_graph",
    "epoch_batches",
    "link_entities",
    "model_inputs",
    "move_to",
    "read_items",
    "split_items",
    "transfer_statements",
    "write_items_jsonl",
]

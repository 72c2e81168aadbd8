"""The explorer's state and questions, without the page: a graph loaded once, its linker,
grounder and retriever, the runs to compare and the questions of a QA file.

    explorer = Explorer("graphs/cn100k", runs=["runs/csqa-qagnn"], qa_file="dev.jsonl")
    answer = explorer.ask("Where would you put a lantern?", ["attic", "ocean", "sky"], "A")

:class:`Answer` holds everything the page shows of one question: the linked spans of its text,
per choice the grounded concepts, the retrieved subgraph and its question-answer paths (KagNet
scored when KG embeddings are given), and each run's scores and attention
(:mod:`kelm.explore.runs`). A bad question raises :class:`~kelm.errors.KelmError` with the
message the page shows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kelm.data.qa import Choice, QAItem
from kelm.errors import KelmError
from kelm.explore.lm import ZeroShotLM, read_zero_shot_metrics
from kelm.explore.runs import ExplainedRun, RunExplanation, path_text

log = logging.getLogger(__name__)

LABELS = "ABCDEFGHIJ"
MAX_CHOICES = len(LABELS)
MAX_TEXT = 2000  # characters of a question or choice (a statement, not a document)


@dataclass
class StatementView:
    """One (question, choice) statement: its grounding, subgraph and paths.

    ``paths`` are ``PathSet.to_list()`` in canonical order (best KagNet score first when
    scored); ``path_texts`` and ``path_scores`` go with them.
    """

    label: str
    choice: str
    question_concepts: list[str]
    answer_concepts: list[str]
    sub: Any
    paths: list[tuple[list[int], list[list[int]]]]
    path_texts: list[str]
    path_scores: list[float | None]


@dataclass
class Answer:
    """Everything the page shows of one question (:meth:`Explorer.ask`)."""

    item: QAItem
    text: str
    spans: list[dict[str, Any]]
    statements: list[StatementView]
    runs: list[RunExplanation] = field(default_factory=list)
    run_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class Explorer:
    """The explorer's graph, runs and questions (see the module docstring).

    Args:
        graph: graph index directory.
        runs: ``kelm train`` run directories to compare.
        qa_file: a QA file whose questions the page lists (answer keys optional).
        hops, max_nodes, paths: retrieval of the subgraph drawn per choice (``kelm show``'s).
        kge: a ``kelm embed-kg`` directory: KagNet path scores order the paths.
        device: where the runs' models run (default CPU).
        lm: a causal LM scoring the choices zero-shot (:class:`~kelm.explore.lm.ZeroShotLM`:
            a Hugging Face id, a folder, a ``.gguf`` file or ``default``), loaded on the first
            question; a ``kelm evaluate --zero-shot`` output folder among ``runs`` does the same.
        lm_normalization: the normalisation of ``lm``'s score column (sum, mean, pmi).

    Raises:
        KelmError: a missing or corrupt graph, run or QA file; settings out of range.
    """

    def __init__(
        self,
        graph: str | Path,
        runs: Sequence[str | Path] = (),
        qa_file: str | Path | None = None,
        *,
        hops: int = 2,
        max_nodes: int = 30,
        paths: int = 20,
        kge: str | Path | None = None,
        device: str | None = None,
        lm: str | Path | None = None,
        lm_normalization: str = "mean",
    ) -> None:
        from kelm.graph.index import GraphIndex
        from kelm.linking.ground import StatementLinker
        from kelm.retrieval.retrieve import RetrieveOptions, Retriever

        RetrieveOptions(max_nodes=max_nodes, hops=hops, paths=paths, scorer="none").validate()
        self.graph_dir = Path(graph)
        self.index = GraphIndex.load(graph)
        self.names = self.index.names.to_list()
        self.relations = self.index.relations
        self.grounder = StatementLinker(self.index)
        entity = relation = None
        if kge is not None:
            from kelm.kge.store import load_embeddings

            emb = load_embeddings(kge, self.index)
            entity, relation = emb.entity.numpy(), emb.relation.numpy()
        self.retriever = Retriever(
            self.index,
            max_nodes=max_nodes,
            hops=hops,
            max_paths=paths,
            entity_emb=entity,
            relation_emb=relation,
        )
        self.device = device
        self.runs: list[ExplainedRun | ZeroShotLM] = []
        if lm is not None:
            self.runs.append(ZeroShotLM(lm, normalization=lm_normalization, device=device))
        for run in runs:
            self.add_run(run)
        self.items: list[QAItem] = []
        if qa_file is not None:
            from kelm.pipeline import read_items

            self.items = read_items(qa_file, need_answers=False)
        self._linkers: dict[str, Any] = {}
        self._lower_names: list[str] | None = None

    # ------------------------------------------------------------------ runs
    def add_run(self, run_dir: str | Path) -> ExplainedRun | ZeroShotLM:
        """Load a run (once: a run already loaded is returned as it is). A ``kelm evaluate
        --zero-shot`` output folder adds its LM (loaded on the next question).

        Raises:
            KelmError: not a finished run, or one trained on another graph.
        """
        path = Path(str(run_dir).strip())
        if not str(run_dir).strip():
            raise KelmError("give a run directory")
        for run in self.runs:
            if run.run_dir.resolve() == path.resolve():
                return run
        if not (path / "config.resolved.yaml").is_file() and read_zero_shot_metrics(path):
            lm = ZeroShotLM.from_evaluation(path, self.device)
            self.runs.append(lm)
            return lm
        run = ExplainedRun(path, self.device)
        if run.graph is not None and run.graph.index.checksum != self.index.checksum:
            raise KelmError(
                f"{path}: trained on another graph ({run.graph.path}) than the explorer's "
                f"({self.graph_dir})"
            )
        self.runs.append(run)
        return run

    # ------------------------------------------------------------------ questions
    def item_titles(self) -> list[str]:
        """The QA file's questions as the page lists them: ``id: question``."""
        return [f"{item.id}: {item.question[:90]}" for item in self.items]

    def make_item(self, question: str, choices: Sequence[str], answer: str | None) -> QAItem:
        """A question typed in the page as a :class:`QAItem` (choices labelled A, B, ...).

        Raises:
            KelmError: an empty question, fewer than two choices, more than ten, a text too
                long, an answer that is not one of the labels.
        """
        question = (question or "").strip()
        texts = [c.strip() for c in choices if c and c.strip()]
        if not question:
            raise KelmError("type a question")
        if len(texts) < 2:
            raise KelmError("give at least two choices (one per line)")
        if len(texts) > MAX_CHOICES:
            raise KelmError(f"give at most {MAX_CHOICES} choices, not {len(texts)}")
        for text in [question, *texts]:
            if len(text) > MAX_TEXT:
                raise KelmError(
                    f"a question or choice of {len(text):,} characters (at most {MAX_TEXT:,})"
                )
        labels = LABELS[: len(texts)]
        answer = (answer or "").strip() or None
        if answer is not None and answer not in labels:
            raise KelmError(
                f"the answer must be one of the labels {', '.join(labels)}, not {answer!r}"
            )
        return QAItem(
            id="typed",
            question=question,
            choices=[Choice(label, text) for label, text in zip(labels, texts, strict=True)],
            answer=answer,
        )

    def ask(self, item: QAItem) -> Answer:
        """Link, ground and retrieve every choice of ``item`` and run every loaded run on it.

        A run that fails on the question (e.g. its graph cache is unreadable) is reported in
        ``run_errors`` and the others still answer."""
        start = time.perf_counter()
        text = item.question + "\n" + "\n".join(f"{c.label}. {c.text}" for c in item.choices)
        spans = self.link(text)["spans"]
        groundings = self.grounder.ground([(item.grounding_text, c.text) for c in item.choices])
        statements = []
        for choice, grounding in zip(item.choices, groundings, strict=True):
            sub, found = self.retriever(
                grounding.question_concepts,
                grounding.answer_concepts,
                statement=f"{item.question} {choice.text}",
            )
            paths = found.to_list()
            scores: list[float | None] = [None] * len(paths)
            if found.score is not None and len(paths):
                order = np.argsort(-np.nan_to_num(found.score, nan=-1.0), kind="stable").tolist()
                paths = [paths[i] for i in order]
                scores = [float(found.score[i]) for i in order]
            statements.append(
                StatementView(
                    label=choice.label,
                    choice=choice.text,
                    question_concepts=[self.names[i] for i in grounding.question_concepts],
                    answer_concepts=[self.names[i] for i in grounding.answer_concepts],
                    sub=sub,
                    paths=paths,
                    path_texts=[path_text(n, r, self.names, self.relations) for n, r in paths],
                    path_scores=scores,
                )
            )
        answer = Answer(item, text, spans, statements)
        for run in self.runs:
            try:
                answer.runs.append(run.explain(item))
            except KelmError as exc:
                answer.run_errors[run.name] = str(exc)
        answer.seconds = time.perf_counter() - start
        return answer

    # ------------------------------------------------------------------ linking
    def link(self, text: str, mode: str = "concept") -> dict[str, Any]:
        """``{"text", "spans"}`` of ``text`` as ``kelm link --json`` gives them
        (:func:`~kelm.linking.component.spans_json`; ``mode`` concept or entity, entity spans
        list their scored ``candidates``)."""
        if mode not in ("concept", "entity"):
            raise KelmError(f"linking mode must be concept or entity, not {mode!r}")
        from kelm.linking.component import spans_json

        nlp = self._linkers.get(mode)
        if nlp is None:
            from kelm.linking.ground import make_nlp

            nlp = make_nlp(None)
            nlp.add_pipe("kelm_linker", config={"graph": str(self.graph_dir), "mode": mode})
            self._linkers[mode] = nlp
        return spans_json(nlp(text))

    # ------------------------------------------------------------------ graph browser
    def search(self, query: str, limit: int = 50) -> list[str]:
        """Node names matching ``query``: the node of that name or alias first, then names that
        start with it, then names that contain it (case-insensitive)."""
        query = (query or "").strip()
        if not query:
            return []
        exact = [self.names[n] for n in self.index.lookup(query)]
        if self._lower_names is None:
            self._lower_names = [n.lower() for n in self.names]
        lowered = query.lower()
        q = lowered.replace(" ", "_")
        prefix, inside = [], []
        for name, lower in zip(self.names, self._lower_names, strict=True):
            if lower.startswith(q) or lower.startswith(lowered):
                prefix.append(name)
            elif q in lower or lowered in lower:
                inside.append(name)
            if len(prefix) >= limit:
                break
        found = list(dict.fromkeys(exact + prefix + inside))
        return found[:limit]

    def neighbours(self, name: str) -> dict[str, list[str]]:
        """The neighbours of the node ``name`` by relation (``~rel`` for incoming edges),
        relations in id order and neighbours by name.

        Raises:
            KelmError: no node of that name.
        """
        if name not in self.index:
            raise KelmError(f"no node named {name!r} in the graph")
        nodes, rels, _ = self.index.neighbors(name)
        grouped: dict[int, set[str]] = {}
        for node, rel in zip(nodes.tolist(), rels.tolist(), strict=True):
            grouped.setdefault(rel, set()).add(self.names[node])
        return {self.relations[r]: sorted(grouped[r]) for r in sorted(grouped)}


__all__ = ["LABELS", "Answer", "Explorer", "StatementView"]

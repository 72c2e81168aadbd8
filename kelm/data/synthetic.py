"""A knowledge-necessary QA task: a graph of made-up words and questions only that graph answers.

The words are pronounceable nonsense ("dakoven", "mirutel"), so a language model knows nothing
about them and the question text carries no signal: a text-only model stays at chance, and a
model that reads the graph correctly can reach 100%.

    task = make_task(SyntheticTaskConfig(hops=2, seed=0))
    write_task(task, "data/knowledge-2hop")  # graph.tsv, train.jsonl, test.jsonl, manifest.json

**1-hop**: every head word has one tail per relation (``head -UsedFor-> tail``, ...). A question
asks for one relation of one head ("What is a dakoven used for?"); the answer is that
relation's tail; ``linked_distractors`` distractors are tails of the same head by *other*
relations (so that an edge alone does not give the answer away) and the rest are tails of other
heads, not linked to this one.

**2-hop**: every head word is an instance of a class word of its own (``head -IsA-> class``) and
the relation edges hang off the class (``class -UsedFor-> tail``): the answer follows by
inheritance, two hops from the head; the linked distractors are the class's tails by other
relations.

Test questions are about heads that no training question mentions. Everything is drawn from
``numpy.random.default_rng(seed)``: one seed, one task, on any machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kelm._io import atomic_file, make_output_dir, write_json
from kelm.errors import KelmError

TEMPLATES: dict[str, str] = {
    "UsedFor": "What is a {head} used for?",
    "AtLocation": "Where would you find a {head}?",
    "CapableOf": "What can a {head} do?",
    "HasProperty": "What is a {head} like?",
    "MadeOf": "What is a {head} made of?",
    "Desires": "What does a {head} want?",
}
"""The asked relations and the question each one makes."""

ISA = "IsA"
LABELS = "ABCDEFGHIJ"
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "tr")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "n", "l", "r", "s", "k")
WORD_SPACE = (len(set(_ONSETS)) * len(set(_VOWELS))) ** 3 * len(set(_CODAS))
"""How many distinct made-up words there are (3 syllables, a coda on the last)."""


@dataclass
class SyntheticTaskConfig:
    """What :func:`make_task` generates.

    Args:
        hops: 1 (head -relation-> answer) or 2 (head -IsA-> class -relation-> answer).
        train_questions, test_questions: questions per split (test heads are never in train).
        choices: choices per question (the answer among them).
        linked_distractors: distractors linked to the head (2-hop: its class) by another
            relation; the rest are unlinked.
        relations: the asked relations (keys of :data:`TEMPLATES`); each head has one tail per
            relation, and each of its questions asks one of them.
        seed: the one seed of the words, the graph, the questions and the answer positions.
    """

    hops: int = 1
    train_questions: int = 2400
    test_questions: int = 600
    choices: int = 5
    linked_distractors: int = 2
    relations: list[str] = field(default_factory=lambda: list(TEMPLATES)[:4])
    seed: int = 0

    def validate(self) -> SyntheticTaskConfig:
        """Raises:
        KelmError: a setting out of range (naming it)."""
        if self.hops not in (1, 2):
            raise KelmError(f"hops must be 1 or 2, got {self.hops}")
        unknown = [r for r in self.relations if r not in TEMPLATES]
        if unknown or len(set(self.relations)) != len(self.relations) or not self.relations:
            raise KelmError(f"relations must be distinct names among {list(TEMPLATES)}")
        if not 2 <= self.choices <= len(LABELS):
            raise KelmError(f"choices must be between 2 and {len(LABELS)}")
        if not 0 <= self.linked_distractors <= min(self.choices - 1, len(self.relations) - 1):
            raise KelmError(
                "linked_distractors must be at most choices - 1 and at most the number of "
                "other relations"
            )
        for name in ("train_questions", "test_questions"):
            if getattr(self, name) < 1:
                raise KelmError(f"{name} must be at least 1")
        if self.words_needed() > WORD_SPACE // 2:
            total = self.train_questions + self.test_questions
            raise KelmError(
                f"train_questions + test_questions is {total:,}; the made-up vocabulary has "
                f"words for about {self.max_questions():,} questions of {len(self.relations)} "
                "relations"
            )
        if self.seed < 0:
            raise KelmError(f"seed must be 0 or more, not {self.seed}")
        return self

    def words_needed(self) -> int:
        """Distinct words of the task: each head, its class (2-hop) and one tail per relation."""
        per_head = len(self.relations)
        heads = -(-self.train_questions // per_head) + -(-self.test_questions // per_head)
        return heads * (per_head + self.hops)

    def max_questions(self) -> int:
        """The most questions the vocabulary allows: words are drawn until unused ones are
        found, so at most half of :data:`WORD_SPACE` is used (beyond it the drawing slows
        down, and past the whole space it never ends)."""
        per_head = len(self.relations)
        return (WORD_SPACE // 2) // (per_head + self.hops) * per_head


@dataclass
class SyntheticTask:
    """A generated task: the graph's triples and the questions of each split (CommonsenseQA
    records)."""

    config: SyntheticTaskConfig
    triples: list[tuple[str, str, str]]
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]


def _words(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """``n`` distinct made-up words of 3 syllables, none in ``taken`` (which they join)."""
    out: list[str] = []
    while len(out) < n:
        parts = [
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + (rng.choice(_CODAS) if i == 2 else "")
            for i in range(3)
        ]
        word = "".join(str(p) for p in parts)
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def make_task(config: SyntheticTaskConfig) -> SyntheticTask:
    """Generate the graph and the questions (see the module docstring).

    Raises:
        KelmError: a bad setting.
    """
    cfg = config.validate()
    rng = np.random.default_rng(cfg.seed)
    relations = list(cfg.relations)
    per_head = len(relations)
    n_train_heads = -(-cfg.train_questions // per_head)
    n_test_heads = -(-cfg.test_questions // per_head)
    taken: set[str] = set()
    heads = _words(rng, n_train_heads + n_test_heads, taken)
    # The node that holds a head's relation edges: the head itself, or (2-hop) its class.
    holders = heads if cfg.hops == 1 else _words(rng, len(heads), taken)
    tails = {h: dict(zip(relations, _words(rng, per_head, taken), strict=True)) for h in holders}
    triples: list[tuple[str, str, str]] = []
    for head, holder in zip(heads, holders, strict=True):
        if cfg.hops == 2:
            triples.append((head, ISA, holder))
        triples.extend((holder, r, tails[holder][r]) for r in relations)
    all_tails = [t for h in holders for t in tails[h].values()]

    def questions(indices: Sequence[int], limit: int, split: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in indices:
            head, holder = heads[i], holders[i]
            for relation in relations:
                if len(out) == limit:
                    return out
                mine = tails[holder]
                others = [mine[r] for r in relations if r != relation]
                linked = [others[j] for j in rng.permutation(len(others))]
                linked = linked[: cfg.linked_distractors]
                unlinked: list[str] = []
                while len(unlinked) < cfg.choices - 1 - len(linked):
                    cand = all_tails[int(rng.integers(len(all_tails)))]
                    if cand not in mine.values() and cand not in unlinked:
                        unlinked.append(cand)
                texts = [mine[relation], *linked, *unlinked]
                order = rng.permutation(len(texts))
                texts = [texts[j] for j in order]
                answer = int(np.flatnonzero(order == 0)[0])
                out.append(
                    {
                        "id": f"{split}-{len(out):05d}",
                        "question": {
                            "stem": TEMPLATES[relation].format(head=head),
                            "choices": [
                                {"label": LABELS[j], "text": t} for j, t in enumerate(texts)
                            ],
                        },
                        "answerKey": LABELS[answer],
                        "relation": relation,
                        "hops": cfg.hops,
                    }
                )
        return out

    train = questions(range(n_train_heads), cfg.train_questions, "train")
    test = questions(range(n_train_heads, len(heads)), cfg.test_questions, "test")
    return SyntheticTask(cfg, triples, train, test)


def write_task(task: SyntheticTask, out: str | Path) -> dict[str, Path]:
    """Write ``graph.tsv`` (``head<TAB>relation<TAB>tail``: ``kelm graph build --format tsv``),
    ``train.jsonl`` and ``test.jsonl`` (CommonsenseQA form) and ``manifest.json`` (the config,
    counts and each file's sha256) into ``out``, each atomically.

    Returns:
        The written paths by name.
    """
    out = make_output_dir(out)
    contents = {
        "graph.tsv": "".join(f"{h}\t{r}\t{t}\n" for h, r, t in task.triples),
        "train.jsonl": "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in task.train),
        "test.jsonl": "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in task.test),
    }
    paths: dict[str, Path] = {}
    for name, text in contents.items():
        with atomic_file(out / name, "w", encoding="utf-8") as fh:
            fh.write(text)
        paths[name] = out / name
    write_json(
        out / "manifest.json",
        {
            "kind": "kelm-synthetic-task",
            "config": asdict(task.config),
            "counts": {
                "triples": len(task.triples),
                "train_questions": len(task.train),
                "test_questions": len(task.test),
            },
            "sha256": {
                name: hashlib.sha256(text.encode("utf-8")).hexdigest()
                for name, text in contents.items()
            },
        },
    )
    paths["manifest.json"] = out / "manifest.json"
    return paths


__all__ = ["TEMPLATES", "SyntheticTask", "SyntheticTaskConfig", "make_task", "write_task"]

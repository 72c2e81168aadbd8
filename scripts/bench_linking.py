#!/usr/bin/env python
"""Benchmark statement grounding: kelm's lemma n-gram index against a spaCy ``Matcher``.

Grounds every (question, choice) statement of a CommonsenseQA file against a concept graph
(default: CN-100K from ``$KELM_DATA``, built once into the kelm cache) with kelm's
:class:`~kelm.linking.ground.StatementLinker`, and a random sample of them with a reference
baseline written the straightforward way: one spaCy ``Matcher`` pattern of ``LEMMA``s per
node name, on ``spacy.blank("en")`` with the lookup lemmatizer, applying the same rules
(pruning, answer/question split, fallback). Prints one JSON object::

    {"statements", "kelm_per_s", "baseline_per_s", "speedup", "agreement"}

``agreement`` is the share of sampled statements where both give the same question and
answer concept sets. Timings exclude loading (kelm's index is cached on disk; the baseline's
matcher is built in memory); details go to stderr.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from kelm.errors import KelmError
from kelm.linking.lexicon import PRONOUNS, STOPWORDS
from kelm.linking.options import DEFAULT_BLACKLIST

CSQA = "qa/csqa/train_rand_split_v1.0.jsonl"
CN100K = "kg/conceptnet100k/train.txt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--qa", type=Path, help=f"QA file (default: $KELM_DATA/{CSQA})")
    parser.add_argument(
        "--graph",
        type=Path,
        help=f"graph index directory (default: CN-100K built from "
        f"$KELM_DATA/{CN100K} into $KELM_CACHE/bench/cn100k)",
    )
    parser.add_argument(
        "--sample", type=int, default=500, help="statements grounded by the baseline (default 500)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="ground only the first N statements with kelm (default all)",
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="kelm batch size")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="kelm linker index cache (default $KELM_CACHE/linker)",
    )
    return parser.parse_args(argv)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_graph() -> Path:
    """CN-100K from the data directory, built once into the cache and reused."""
    from _bench import cached_graph

    return cached_graph(CN100K, "cn100k", "cn100k")


# ---------------------------------------------------------------------------------- baseline
class MatcherBaseline:
    """The straightforward implementation: a ``Matcher`` with one LEMMA pattern per name."""

    def __init__(self, names: list[str], max_ngram: int = 5) -> None:
        import spacy
        from spacy.matcher import Matcher

        self.nlp = spacy.blank("en")
        self.nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        self.nlp.initialize()
        self.names = set(names)
        self.matcher = Matcher(self.nlp.vocab)
        blacklist = set(DEFAULT_BLACKLIST)
        for name in names:
            doc = self.nlp(name.replace("_", " ").strip().lower())
            words = [t.text for t in doc]
            lemmas = [t.lemma_ for t in doc]
            if not words or len(words) > max_ngram or any(not w.strip() for w in words):
                continue
            if " ".join(words) in blacklist or " ".join(lemmas) in blacklist:
                continue
            if all(
                w in STOPWORDS
                or lem in STOPWORDS
                or lem in blacklist
                or not any(c.isalnum() for c in w)
                for w, lem in zip(words, lemmas, strict=True)
            ):
                continue
            if words[0] in PRONOUNS or words[-1] in PRONOUNS:
                continue
            self.matcher.add(name, [[{"LEMMA": lem} for lem in lemmas]])

    def ground(self, question: str, answer: str) -> tuple[set[str], set[str]]:
        """(question concepts, answer concepts) as sets of names."""
        doc = self.nlp(f"{question} {answer}".lower())
        q_len = len(self.nlp.make_doc(question.lower()))
        by_span: dict[tuple[int, int], list[str]] = {}
        for match_id, start, end in self.matcher(doc):
            by_span.setdefault((start, end), []).append(self.nlp.vocab.strings[match_id])
        in_answer, elsewhere = set(), set()
        for (start, end), names in by_span.items():
            (in_answer if start >= q_len else elsewhere).update(self.resolve(doc[start:end], names))
        answer_concepts = in_answer or self.fallback(doc[q_len:], set())
        question_concepts = (elsewhere - answer_concepts) or self.fallback(
            doc[:q_len], answer_concepts
        )
        return question_concepts, answer_concepts

    @staticmethod
    def resolve(span: Any, names: list[str]) -> list[str]:
        """Names sharing one lemma sequence: those spelled like the text, else like the
        lemmas, else all."""
        if len(names) > 1:
            for wanted in (" ".join(t.text for t in span), " ".join(t.lemma_ for t in span)):
                keep = [n for n in names if n.replace("_", " ") == wanted]
                if keep:
                    return keep
        return names

    def fallback(self, tokens: Any, exclude: set[str]) -> set[str]:
        words = [t.text for t in tokens if not t.is_space]
        if not words:
            return set()
        for whole in (" ".join(words), "_".join(words), tokens.text.strip()):
            if whole in self.names and whole not in exclude:
                return {whole}
        return {t.lemma_ for t in tokens if t.lemma_.strip() and t.lemma_ in self.names} - exclude


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from kelm.data.qa import read_qa
    from kelm.graph.index import GraphIndex
    from kelm.linking.ground import StatementLinker
    from kelm.paths import data_file

    qa = args.qa or data_file(CSQA)
    graph = GraphIndex.load(args.graph or default_graph())
    items = read_qa(qa)
    pairs = [(item.question, choice.text) for item in items for choice in item.choices]
    pairs = pairs[: args.limit] if args.limit else pairs

    start = time.perf_counter()
    linker = StatementLinker(graph, cache_dir=args.cache_dir)
    note(
        f"kelm index ready in {time.perf_counter() - start:.2f}s "
        f"({linker.linker.index.meta.get('keys', '?')} keys)"
    )
    start = time.perf_counter()
    groundings = []
    for i in range(0, len(pairs), args.batch_size):
        groundings += linker.ground(pairs[i : i + args.batch_size], args.batch_size)
    kelm_seconds = time.perf_counter() - start

    names = linker.names
    start = time.perf_counter()
    baseline = MatcherBaseline(names, linker.options.max_ngram)
    note(f"baseline matcher built in {time.perf_counter() - start:.1f}s")
    sample = sorted(
        random.Random(args.seed).sample(range(len(pairs)), min(args.sample, len(pairs)))
    )
    start = time.perf_counter()
    reference = [baseline.ground(*pairs[i]) for i in sample]
    baseline_seconds = time.perf_counter() - start

    same = 0
    for i, (ref_q, ref_a) in zip(sample, reference, strict=True):
        g = groundings[i]
        ours = ({names[n] for n in g.question_concepts}, {names[n] for n in g.answer_concepts})
        if ours == (ref_q, ref_a):
            same += 1
        else:
            note(
                f"differs: {pairs[i]}: kelm {sorted(ours[0])} | {sorted(ours[1])}; "
                f"baseline {sorted(ref_q)} | {sorted(ref_a)}"
            )
    kelm_per_s = len(pairs) / kelm_seconds if kelm_seconds else float("inf")
    baseline_per_s = len(sample) / baseline_seconds if baseline_seconds else float("inf")
    result = {
        "statements": len(pairs),
        "kelm_per_s": round(kelm_per_s, 1),
        "baseline_per_s": round(baseline_per_s, 2),
        "speedup": round(kelm_per_s / baseline_per_s, 1) if baseline_per_s else None,
        "agreement": round(same / len(sample), 4) if sample else None,
    }
    note(f"baseline sample: {len(sample)} statements")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except KelmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

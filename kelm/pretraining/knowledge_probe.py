"""A knowledge-necessary cloze probe: made-up entities whose probed facts only the graph holds.

The world (:func:`make_world`, one seed): ``tails`` made-up words (the words of
:mod:`kelm.data.synthetic`) and ``heads_per_tail`` made-up heads for each, every head used for
exactly one tail (``head -UsedFor-> tail``). One head per tail is a **probe head**: its fact is
in the graph and never in the text. The corpus (:func:`world_corpus`) states the other heads'
facts ("a {head} is used for {tail} ." in a few wordings) and mentions every entity, probe heads
included, in neutral sentences that say nothing about its use ("i saw a {head} yesterday .").

So the text alone cannot answer the probe: an MLM-only model has seen each probe head only in
neutral contexts and is at chance. An ERNIE model links the probe head to its node, whose
TransE vector was trained on the whole graph (``h + r ≈ t``: the heads of one tail sit near
``t - r``); the stated facts of the other heads teach it to read the tail from such a vector.

The probe (:func:`probe_world`) is at the entity level, because a made-up word is several
wordpieces: for a probe head and each candidate tail (all ``tails`` of the world) the sentence
"a {head} is used for [MASK] ... [MASK] ." gets as many masks as the candidate has wordpieces,
and the candidate's score is the mean log-probability of its wordpieces at the masks (all masked
at once, one forward pass per wordpiece count). The true tail's rank among the candidates gives
hits@1, hits@10 and MRR (ties count against it); chance hits@10 is ``10 / tails``. For an
objective with entities the head's first wordpiece carries its node id, as in pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kelm.data.synthetic import _words

RELATION = "UsedFor"
FACT_TEMPLATES = (
    "a {head} is used for {tail} .",
    "people use a {head} for {tail} .",
    "you can use a {head} for {tail} .",
)
NEUTRAL_TEMPLATES = (
    "i saw a {x} yesterday .",
    "there is a {x} over there .",
    "she talked about a {x} .",
    "this is a {x} .",
)
PROBE_TEMPLATE = "a {head} is used for {mask} ."


@dataclass
class World:
    """A generated world: ``facts`` maps every head to its tail; ``probe_heads`` are the heads
    whose facts the corpus never states."""

    tails: list[str]
    facts: dict[str, str]
    probe_heads: list[str]

    @property
    def triples(self) -> list[tuple[str, str, str]]:
        return [(h, RELATION, t) for h, t in self.facts.items()]


def make_world(tails: int = 200, heads_per_tail: int = 3, seed: int = 0) -> World:
    """``tails`` tails with ``heads_per_tail`` heads each (at least 2: one probed, one stated).

    Raises:
        ValueError: fewer than 2 heads per tail or no tail.
    """
    if heads_per_tail < 2 or tails < 1:
        raise ValueError("a world needs at least 1 tail and 2 heads per tail")
    rng = np.random.default_rng(seed)
    taken: set[str] = set()
    tail_words = _words(rng, tails, taken)
    facts: dict[str, str] = {}
    probe: list[str] = []
    for tail in tail_words:
        heads = _words(rng, heads_per_tail, taken)
        probe.append(heads[0])
        facts.update(dict.fromkeys(heads, tail))
    return World(tail_words, facts, probe)


def world_corpus(world: World, seed: int = 0) -> list[str]:
    """The corpus lines (shuffled): every stated fact in every wording, two neutral mentions of
    every head and tail; never a probe head's fact."""
    rng = np.random.default_rng(seed + 1)
    probe = set(world.probe_heads)
    lines = [
        t.format(head=h, tail=tail)
        for h, tail in world.facts.items()
        if h not in probe
        for t in FACT_TEMPLATES
    ]
    for x in [*world.facts, *world.tails]:
        for j in rng.choice(len(NEUTRAL_TEMPLATES), size=2, replace=False):
            lines.append(NEUTRAL_TEMPLATES[int(j)].format(x=x))
    order = rng.permutation(len(lines))
    return [lines[int(i)] for i in order]


def write_world(world: World, out: str | Path, seed: int = 0) -> dict[str, Path]:
    """``graph.tsv`` (``head<TAB>relation<TAB>tail``, every fact) and ``corpus/text.txt``."""
    out = Path(out)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    graph = out / "graph.tsv"
    graph.write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in world.triples), encoding="utf-8")
    corpus = out / "corpus" / "text.txt"
    corpus.write_text("\n".join(world_corpus(world, seed)) + "\n", encoding="utf-8")
    return {"graph": graph, "corpus": corpus.parent}


@torch.no_grad()
def probe_world(
    objective: Any, model: torch.nn.Module, world: World, graph: Any | None = None
) -> dict[str, Any]:
    """Rank every candidate tail for each probe head (see the module docstring).

    Args:
        objective: the run's objective (its tokenizer and :meth:`mlm_logits`).
        model: the kept model.
        world: the world.
        graph: the graph index, to link the probe heads (``None``: no entities).

    Returns:
        ``{"n", "candidates", "hits@1", "hits@10", "mrr", "chance_hits@1", "chance_hits@10",
        "chance_mrr", "heads_linked"}`` (``chance_*``: a uniformly random ranking's expectation).
    """
    tok = objective.tokenizer
    pieces = {t: tok(t, add_special_tokens=False)["input_ids"] for t in world.tails}
    by_len: dict[int, list[str]] = {}
    for t, ids in pieces.items():
        by_len.setdefault(len(ids), []).append(t)
    was_training = model.training
    model.eval()
    ranks: list[int] = []
    linked = 0
    for head in world.probe_heads:
        scores: dict[str, float] = {}
        for k, cands in sorted(by_len.items()):
            text = PROBE_TEMPLATE.format(head=head, mask=" ".join([tok.mask_token] * k))
            enc = tok([text], return_tensors="pt", return_offsets_mapping=True)
            entity_ids = torch.full_like(enc["input_ids"], -1)
            if graph is not None and head in graph:
                start = text.index(head)
                offsets = enc["offset_mapping"][0].tolist()
                first = next(i for i, (a, b) in enumerate(offsets) if a <= start < b)
                entity_ids[0, first] = graph.node_id(head)
                linked += k == min(by_len)
            batch = {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "token_type_ids": enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])),
                "entity_ids": entity_ids,
            }
            logits = objective.mlm_logits(model, batch).float()  # [1, L, V]
            at = (enc["input_ids"][0] == tok.mask_token_id).nonzero().flatten()  # [k]
            logp = logits[0, at].log_softmax(-1)  # [k, V]
            ids = torch.tensor([pieces[c] for c in cands])  # [C, k]
            per = logp.gather(1, ids.t()).t()  # [C, k]
            for c, s in zip(cands, per.mean(dim=1).tolist(), strict=True):
                scores[c] = s
        gold_tail = world.facts[head]
        gold = scores[gold_tail]
        # ties count against the gold tail: a model that scores every candidate alike ranks
        # it last, not first
        ranks.append(1 + sum(s >= gold for c, s in scores.items() if c != gold_tail))
    model.train(was_training)
    n = len(ranks)
    return {
        "n": n,
        "candidates": len(world.tails),
        "hits@1": sum(r <= 1 for r in ranks) / n,
        "hits@10": sum(r <= 10 for r in ranks) / n,
        "mrr": sum(1.0 / r for r in ranks) / n,
        "chance_hits@1": 1 / len(world.tails),
        "chance_hits@10": min(1.0, 10 / len(world.tails)),
        # a uniformly random rank's expected reciprocal: H(C) / C
        "chance_mrr": sum(1 / r for r in range(1, len(world.tails) + 1)) / len(world.tails),
        "heads_linked": linked,
    }


__all__ = ["World", "make_world", "probe_world", "world_corpus", "write_world"]

"""The knowledge-necessary probe: the world, its corpus, and the entity-level scoring."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import BertTokenizerFast

from kelm.pretraining.knowledge_probe import (
    PROBE_TEMPLATE,
    make_world,
    probe_world,
    world_corpus,
)


def test_world_is_seeded_and_probe_facts_never_stated() -> None:
    world = make_world(tails=12, heads_per_tail=3, seed=4)
    assert make_world(tails=12, heads_per_tail=3, seed=4) == world
    assert make_world(tails=12, heads_per_tail=3, seed=5) != world
    assert len(world.facts) == 36 and len(world.probe_heads) == 12
    assert sorted(world.facts[h] for h in world.probe_heads) == sorted(world.tails)
    lines = world_corpus(world)
    text = "\n".join(lines)
    for head in world.facts:  # every entity is mentioned
        assert f" {head} " in text
    for head in world.probe_heads:
        mine = [line for line in lines if f" {head} " in line]
        assert mine and all(world.facts[head] not in line for line in mine)
    stated = [h for h in world.facts if h not in world.probe_heads]
    for head in stated:
        assert any(world.facts[head] in line for line in lines if f" {head} " in line)


def _tokenizer(world: Any) -> BertTokenizerFast:
    """Every world word one wordpiece, but the first tail two (the multi-piece path)."""
    split = world.tails[0]
    words = [w for w in [*world.facts, *world.tails] if w != split]
    template = PROBE_TEMPLATE.format(head="", mask="").split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *template, *words]
    vocab += [split[:2], "##" + split[2:]]
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))})


class _Graph:
    def __init__(self, names: list[str]) -> None:
        self.ids = {n: i for i, n in enumerate(names)}

    def __contains__(self, name: str) -> bool:
        return name in self.ids

    def node_id(self, name: str) -> int:
        return self.ids[name]


class _Oracle:
    """Puts a high logit on the linked head's tail pieces at the masks (none when unlinked)."""

    def __init__(self, tokenizer: Any, world: Any, names: list[str]) -> None:
        self.tokenizer, self.world, self.names = tokenizer, world, names

    def mlm_logits(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["input_ids"]
        logits = torch.zeros(*ids.shape, len(self.tokenizer))
        linked = batch["entity_ids"][batch["entity_ids"] >= 0]
        if linked.numel():
            tail = self.world.facts[self.names[int(linked[0])]]
            pieces = self.tokenizer(tail, add_special_tokens=False)["input_ids"]
            masks = (ids[0] == self.tokenizer.mask_token_id).nonzero().flatten()
            if len(masks) == len(pieces):
                for pos, piece in zip(masks.tolist(), pieces, strict=True):
                    logits[0, pos, piece] = 10.0
        return logits


def test_probe_ranks_multi_piece_candidates_and_counts_ties_against_gold() -> None:
    world = make_world(tails=15, heads_per_tail=2, seed=1)
    tok = _tokenizer(world)
    assert len(tok(world.tails[0], add_special_tokens=False)["input_ids"]) == 2
    names = [*world.facts, *world.tails]
    oracle = _Oracle(tok, world, names)
    model = torch.nn.Linear(1, 1)
    linked = probe_world(oracle, model, world, _Graph(names))
    assert linked["heads_linked"] == 15
    assert linked["hits@1"] == 1.0 and linked["mrr"] == 1.0
    blind = probe_world(oracle, model, world, None)  # every candidate scores alike
    assert blind["heads_linked"] == 0
    assert blind["hits@10"] == 0.0 and blind["hits@1"] == 0.0
    assert blind["chance_hits@10"] == 10 / 15
    assert blind["chance_hits@1"] == 1 / 15
    # the expected reciprocal rank of a uniformly random rank among 15: H(15) / 15
    assert blind["chance_mrr"] == pytest.approx(3.3182289932 / 15, abs=1e-9)

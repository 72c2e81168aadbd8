"""Prompts of the zero-shot evaluation (:mod:`kelm.evaluation.prompts`), without a model: the
CommonsenseQA / OpenBookQA / COPA formats, a choice's tokens independent of its prompt (no merge
across the boundary, SentencePiece's own prefix space), seeded demonstration sampling that never
draws the question, its twin or another evaluated question, and demonstrations dropped from the
front to fit the context window."""

from __future__ import annotations

import pytest
from causal_lm_fixtures import FIXTURES, POOL, item, make_tokenizer

from kelm.data.qa import Choice, QAItem, read_qa
from kelm.errors import KelmError
from kelm.evaluation.prompts import (
    DemoSampler,
    PromptEncoder,
    build_prompt,
    build_requests,
    format_item,
)


# ---------------------------------------------------------------------------------- tokens
def test_continuation_tokens_are_exactly_those_of_the_choice(tokenizer) -> None:
    q = item(0, "where does a dog live?", ["house", "dark place", "bus stop"])
    (r,) = build_requests([q], tokenizer)
    for choice, ids in zip(q.choices, r.choice_ids, strict=True):
        assert ids == tokenizer(" " + choice.text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == " " + choice.text
    assert tokenizer.decode(r.prompt_ids) == "Question: where does a dog live?\nAnswer:"


def test_no_merge_across_the_prompt_choice_boundary() -> None:
    merging = make_tokenizer(pre_tokenize=False, vocab_size=400)
    q = item(0, "where does a dog live?", ["house", "water", "dark place"])
    (r,) = build_requests([q], merging)
    prompt = format_item(q).context
    merged_somewhere = False
    for choice, ids in zip(q.choices, r.choice_ids, strict=True):
        alone = merging(" " + choice.text, add_special_tokens=False)["input_ids"]
        joint = merging(prompt + " " + choice.text, add_special_tokens=False)["input_ids"]
        assert ids == alone  # the scored tokens never depend on the prompt
        merged_somewhere |= joint[len(r.prompt_ids) :] != alone
    # this tokenizer does merge across the boundary: a joint tokenisation would be wrong
    assert merged_somewhere


def test_tokenizer_with_own_prefix_space_gets_the_bare_text() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "\u2581house": 1, "\u2581dog": 2, "\u2581": 3, "house": 4, "dog": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    sp_like = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    encoder = PromptEncoder(sp_like)
    assert encoder.own_prefix_space
    assert encoder.continuation("house") == [1]


# ---------------------------------------------------------------------------------- prompts
def test_copa_cause_and_effect_phrasing() -> None:
    cause, effect = read_qa(FIXTURES / "copa.xml")
    parts = format_item(cause)
    assert parts.context == "The dog ran to the house because"
    assert parts.choices == ["the cat was at the bus stop.", "the lantern was on sale."]
    assert parts.unconditional == "because"
    parts = format_item(effect)
    assert parts.context == "The big cat was hungry so"
    assert parts.choices[0] == "it ate ice cream." and parts.unconditional == "so"
    mine = QAItem("9", "x", [Choice("1", "I left."), Choice("2", "It rained.")], "1", effect.meta)
    assert format_item(mine).choices == ["I left.", "it rained."]
    assert build_prompt(cause, [effect]) == (
        "The big cat was hungry so it went to an antique shop.\n\nThe dog ran to the house because"
    )


def test_question_prompts_csqa_and_openbookqa_fact() -> None:
    (obqa,) = read_qa(FIXTURES / "obqa.jsonl")
    parts = format_item(obqa)
    assert parts.context == "Fact: dogs are animals that run\nQuestion: A dog can\nAnswer:"
    assert parts.unconditional == "Answer:" and parts.choices == ["run", "fly", "read", "write"]
    for name in ("csqa_original.jsonl", "csqa_hf.jsonl"):
        for q in read_qa(FIXTURES / name):
            parts = format_item(q)
            assert parts.context == f"Question: {q.question}\nAnswer:"
            assert len(parts.choices) == len(q.choices)


# ---------------------------------------------------------------------------------- demos
def test_demo_sampling_is_seeded_and_never_draws_the_question_or_its_twin() -> None:
    question = POOL[0]
    twin = item(99, "where does a dog sleep?", ["water", "house", "sky"], 1)  # same choices
    copy = item(98, "Where does a dog   live?", ["street", "ocean", "zoo"], 0)  # same text
    pool = [*POOL, twin, copy]
    sampler = DemoSampler(pool, seed=7)
    first = sampler.sample(question, 4)
    assert [d.id for d in first] == [d.id for d in DemoSampler(pool, seed=7).sample(question, 4)]
    draws = set()
    for seed in range(40):
        demos = DemoSampler(pool, seed=seed).sample(question, 6)
        ids = [d.id for d in demos]
        assert len(set(ids)) == 6
        assert not {"q0", "q99", "q98"} & set(ids)
        draws.add(tuple(ids))
    assert len(draws) > 1  # the seed matters
    # the order of evaluation does not: a question's demos depend on (seed, id) only
    sampler = DemoSampler(pool, seed=7)
    sampler.sample(POOL[3], 5)
    assert [d.id for d in sampler.sample(question, 4)] == [d.id for d in first]


def test_evaluated_questions_are_never_demonstrations(tokenizer) -> None:
    evaluated = POOL[:3]
    requests = build_requests(evaluated, tokenizer, shots=5, pool=POOL, seed=0)
    for r in requests:
        assert len(r.demos) == 5 and not {"q0", "q1", "q2"} & set(r.demos)
    # a pool that is the evaluated set itself: leave-one-out
    requests = build_requests(POOL, tokenizer, shots=7, pool=POOL, exclude_evaluated=False)
    for r in requests:
        assert sorted(r.demos) == sorted(q.id for q in POOL if q.id != r.item.id)
    with pytest.raises(KelmError, match="fewer than --shots 6"):
        build_requests(evaluated, tokenizer, shots=6, pool=POOL)


def test_demo_pool_too_small_is_a_one_line_error(tokenizer) -> None:
    with pytest.raises(KelmError, match="fewer than --shots 8"):
        build_requests([POOL[0]], tokenizer, shots=8, pool=POOL)
    with pytest.raises(KelmError, match="--demos"):
        build_requests([POOL[0]], tokenizer, shots=1, pool=None)


# ---------------------------------------------------------------------------------- window
def test_context_overflow_drops_demos_from_the_front_and_counts_them(tokenizer) -> None:
    question = POOL[0]
    (full,) = build_requests([question], tokenizer, shots=5, pool=POOL, seed=1)
    assert full.dropped == 0 and len(full.demos) == 5
    encoder = PromptEncoder(tokenizer)
    lengths = [
        len(encoder.prompt(build_prompt(question, [d for d in POOL if d.id in full.demos[k:]])))
        for k in range(6)
    ]
    longest = max(len(c) for c in full.choice_ids)
    limit = lengths[3] + longest  # room for the last two demonstrations only
    (cut,) = build_requests([question], tokenizer, shots=5, pool=POOL, seed=1, max_length=limit)
    assert cut.dropped == 3 and cut.demos == full.demos[3:]
    assert len(cut.prompt_ids) + longest <= limit
    assert tokenizer.decode(cut.prompt_ids).endswith(format_item(question).context)


def test_question_that_does_not_fit_even_alone_names_its_id(tokenizer) -> None:
    with pytest.raises(KelmError, match="question 'q3'.*context window of 5"):
        build_requests([POOL[3]], tokenizer, shots=2, pool=POOL, max_length=5)

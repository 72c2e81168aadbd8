"""Prompts for zero-shot and few-shot multiple choice with causal LMs: the texts, the
demonstrations, and their tokenisation into scoring requests (no model is needed here).

Prompt formats (:func:`format_item`):

* CommonsenseQA / OpenBookQA: ``"Question: <stem>\\nAnswer:"`` + ``" <choice>"``; an OpenBookQA
  ``fact1`` goes first as ``"Fact: <fact1>\\n"``. The unconditional prompt of the PMI
  normalisation is ``"Answer:"``.
* COPA: the premise without its final full stop, then ``" because"`` (asks for the cause) or
  ``" so"`` (the effect), + ``" <alternative>"`` with its first letter lower-cased (``"I ..."``
  kept): ``"The man broke his toe because"`` + ``" he dropped a hammer on his foot."``. The
  unconditional prompt is the bare connective.

Knowledge (``--knowledge``, :mod:`kelm.evaluation.knowledge`): the question's facts, joined by
spaces into one line, go ``before`` the question (``"<facts>\\nQuestion: ...\\nAnswer:"``;
COPA: ``"<facts>\\n<premise> because"``) or ``after`` it (``"Question: ...\\n<facts>\\nAnswer:"``;
COPA: ``"<premise>.\\n<facts>\\nBecause"``). The unconditional prompt and the continuations
are those without knowledge, so PMI with knowledge is ``log P(choice | facts, question) -
log P(choice | "Answer:")``: the facts count as part of the question's evidence.

Few-shot: K demonstrations (the demo's prompt + its correct continuation) sampled per question
with a generator seeded by ``(seed, question id)``, joined by blank lines before the question
(:class:`DemoSampler`). The pool never contains the evaluated question itself nor a near-copy
of it (same id, same question text, or the same set of choices - Balanced COPA's mirrored twin
of an item), nor, by default, any other evaluated question (a training file that holds the
held-out questions gives only its other ones; a demonstration file that is the evaluated file
itself is used leave-one-out). When the prompt plus the longest choice exceeds the context
window, demonstrations are dropped from the front (the farthest from the question) and
counted; the question is never truncated (:func:`build_requests`).

Tokenisation (:class:`PromptEncoder`): the prompt and each continuation are tokenised
*separately* and concatenated, so that a choice's tokens are exactly the tokens of
``" <choice>"`` whatever the prompt (no BPE merge across the boundary, the same tokens in the
conditional and unconditional scores) and all choices of a question share the prompt's tokens
- what the prefix cache of :mod:`kelm.evaluation.loglik` needs. The leading space belongs to
the continuation; tokenizers that add their own prefix space (SentencePiece's dummy prefix) get
the bare text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm.errors import KelmError

if TYPE_CHECKING:
    from kelm.data.qa import QAItem

UNCONDITIONAL_QA = "Answer:"
"""The unconditional prompt of the PMI normalisation for question-answer items."""
COPA_CONNECTIVES = {"cause": "because", "effect": "so"}
DEMO_SEPARATOR = "\n\n"
KNOWLEDGE_POSITIONS = ("before", "after")


# ---------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class PromptParts:
    """The texts of one question, before demonstrations and tokenisation.

    Attributes:
        context: the conditional prompt (ends without whitespace).
        unconditional: the prompt of the PMI denominator.
        choices: the continuation texts, in choice order, without the leading space.
    """

    context: str
    unconditional: str
    choices: list[str]


def is_copa(item: QAItem) -> bool:
    """A COPA item (the reader keeps its premise and what it asks for)."""
    return "premise" in item.meta and item.meta.get("asks_for") in COPA_CONNECTIVES


def _lower_first(text: str) -> str:
    text = text.strip()
    if not text or text == "I" or text.startswith(("I ", "I'")):
        return text  # the pronoun keeps its capital
    return text[0].lower() + text[1:]


def format_item(item: QAItem, facts: Sequence[str] = (), position: str = "before") -> PromptParts:
    """Prompt, unconditional prompt and continuations of one item (see the module docstring).

    ``facts`` (sentences, :mod:`kelm.evaluation.knowledge`) form one line of knowledge,
    ``before`` the question or ``after`` it (see the module docstring); the unconditional
    prompt and the continuations do not change.
    """
    knowledge = " ".join(f.strip() for f in facts if f.strip())
    if position not in KNOWLEDGE_POSITIONS:
        raise ValueError(f"position must be one of {KNOWLEDGE_POSITIONS}, not {position!r}")
    if is_copa(item):
        connective = COPA_CONNECTIVES[item.meta["asks_for"]]
        premise = item.meta["premise"].strip()
        stated = premise
        if premise.endswith((".", "!")):
            premise = premise[:-1].rstrip()
        choices = [_lower_first(c.text) for c in item.choices]
        if not knowledge:
            context = f"{premise} {connective}"
        elif position == "before":
            context = f"{knowledge}\n{premise} {connective}"
        else:
            context = f"{stated}\n{knowledge}\n{connective[:1].upper()}{connective[1:]}"
        return PromptParts(context, connective, choices)
    lines = []
    if knowledge and position == "before":
        lines.append(knowledge)
    if item.meta.get("fact1"):
        lines.append(f"Fact: {item.meta['fact1'].strip()}")
    lines.append(f"Question: {item.question.strip()}")
    if knowledge and position == "after":
        lines.append(knowledge)
    lines.append("Answer:")
    return PromptParts("\n".join(lines), UNCONDITIONAL_QA, [c.text.strip() for c in item.choices])


def demo_text(item: QAItem) -> str:
    """A demonstration: the item's prompt followed by its correct continuation."""
    parts = format_item(item)
    index = item.answer_index
    if index is None:
        raise KelmError(f"demonstration {item.id!r} has no answer key")
    return f"{parts.context} {parts.choices[index]}"


def build_prompt(
    item: QAItem, demos: Sequence[QAItem], facts: Sequence[str] = (), position: str = "before"
) -> str:
    """The demonstrations and the question's prompt (with its facts), separated by blank
    lines. Demonstrations carry no facts: only the evaluated question is grounded."""
    context = format_item(item, facts, position).context
    return DEMO_SEPARATOR.join([*(demo_text(d) for d in demos), context])


# ---------------------------------------------------------------------------------- demos
def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _keys(item: QAItem) -> tuple[str, str, frozenset[str]]:
    return item.id, _norm(item.question), frozenset(_norm(c.text) for c in item.choices)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


class DemoSampler:
    """Seeded per-question sampling of K demonstrations from a pool of answered items.

    A question's demonstrations depend only on ``(seed, question id)``, not on the order or
    batching of the evaluation. Pool items that are the question itself or a near-copy
    (same id, same question text, or same set of choices) are never drawn.

    Args:
        pool: candidate demonstrations (items without an answer key are left out).
        seed: sampling seed.
        exclude: items removed from the pool altogether, with their near-copies (the
            evaluated questions, when the pool is a training file that may contain them).
    """

    def __init__(
        self, pool: Sequence[QAItem], seed: int = 0, exclude: Sequence[QAItem] = ()
    ) -> None:
        banned: list[set[Any]] = [set(), set(), set()]
        for item in exclude:
            for key, values in zip(_keys(item), banned, strict=True):
                values.add(key)
        self.pool = [
            item
            for item in pool
            if item.answer_index is not None
            and not any(k in b for k, b in zip(_keys(item), banned, strict=True))
        ]
        self.seed = int(seed)
        self._keys = [_keys(item) for item in self.pool]

    def _allowed(self, j: int, keys: tuple[str, str, frozenset[str]]) -> bool:
        return all(a != b for a, b in zip(self._keys[j], keys, strict=True))

    def sample(self, item: QAItem, k: int) -> list[QAItem]:
        """``k`` demonstrations for ``item``, in prompt order.

        Raises:
            KelmError: fewer than ``k`` usable items in the pool.
        """
        if k <= 0:
            return []
        keys = _keys(item)
        rng = np.random.default_rng([self.seed, _stable_int(item.id)])
        # A few spare draws absorb the (rare) excluded items; the full permutation otherwise.
        draw = rng.choice(len(self.pool), size=min(len(self.pool), k + 8), replace=False)
        chosen = [int(j) for j in draw if self._allowed(int(j), keys)][:k]
        if len(chosen) < k:
            chosen = [int(j) for j in rng.permutation(len(self.pool)) if self._allowed(j, keys)]
            chosen = chosen[:k]
        if len(chosen) < k:
            raise KelmError(
                f"the demonstration file has {len(chosen)} usable answered items for question "
                f"{item.id!r}, fewer than --shots {k}"
            )
        return [self.pool[j] for j in chosen]


# ---------------------------------------------------------------------------------- tokens
class PromptEncoder:
    """Token ids of prompts and continuations (see the module docstring on tokenisation).

    Args:
        tokenizer: a Hugging Face tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        plain = self._ids("a")
        with_special = list(tokenizer("a", add_special_tokens=True)["input_ids"])
        # The special tokens the tokenizer puts *before* a text (e.g. Llama's <s>); trailing
        # ones (an EOS) would end the prompt, so they are left out.
        self.leading: list[int] = []
        for k in range(len(with_special) - len(plain) + 1):
            if with_special[k : k + len(plain)] == plain:
                self.leading = with_special[:k]
                break
        # SentencePiece-style tokenizers add a prefix space themselves: " x" and "x" encode
        # alike, or the first piece of "x" already carries the word-start marker.
        first = tokenizer.convert_ids_to_tokens(plain[:1])
        self.own_prefix_space = self._ids(" a") == plain or (
            bool(first) and isinstance(first[0], str) and first[0].startswith("\u2581")
        )

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, text: str) -> list[int]:
        """The prompt's ids (with the tokenizer's leading special tokens, e.g. BOS)."""
        return self.leading + self._ids(text)

    def continuation(self, text: str) -> list[int]:
        """The ids of ``" " + text``, standing alone."""
        return self._ids(text if self.own_prefix_space else f" {text}")


@dataclass
class Request:
    """One question, tokenised: its prompt (with demonstrations) and its choices.

    Attributes:
        item: the question.
        prompt_ids: the conditional prompt.
        unconditional_ids: the PMI prompt.
        choice_ids: one list of ids per choice.
        demos: the ids of the demonstrations kept in the prompt.
        dropped: demonstrations sampled but dropped to fit the context window.
        facts: the knowledge sentences in the prompt.
    """

    item: QAItem
    prompt_ids: list[int]
    unconditional_ids: list[int]
    choice_ids: list[list[int]]
    demos: list[str] = field(default_factory=list)
    dropped: int = 0
    facts: list[str] = field(default_factory=list)


def build_requests(
    items: Sequence[QAItem],
    tokenizer: Any,
    *,
    shots: int = 0,
    pool: Sequence[QAItem] | None = None,
    seed: int = 0,
    max_length: int | None = None,
    exclude_evaluated: bool = True,
    knowledge: Mapping[str, Sequence[str]] | None = None,
    facts_position: str = "before",
) -> list[Request]:
    """Prompts with their demonstrations (and facts), tokenised, fitted to ``max_length``.

    Args:
        items: the questions to evaluate.
        tokenizer: the LM's tokenizer.
        shots: demonstrations per question (K).
        pool: the items demonstrations are drawn from (required when ``shots > 0``).
        seed: demonstration sampling seed.
        max_length: the context window in tokens (``None``: unlimited).
        exclude_evaluated: no evaluated question (nor a near-copy) is ever a demonstration;
            off: only the question itself is left out (leave-one-out, for a pool that *is*
            the evaluated set).
        knowledge: facts (sentences) by question id, put into that question's prompt
            (:func:`format_item`); questions not in it get none.
        facts_position: ``before`` or ``after`` the question.

    Raises:
        KelmError: a choice without tokens, a question that does not fit even without
            demonstrations, too small a pool.
    """
    if shots > 0 and not pool:
        raise KelmError("few-shot evaluation needs demonstrations (--demos TRAIN_FILE)")
    encoder = PromptEncoder(tokenizer)
    sampler = None
    if shots > 0:
        sampler = DemoSampler(pool or [], seed, exclude=items if exclude_evaluated else ())
    requests = []
    for item in items:
        facts = list(knowledge.get(item.id, ())) if knowledge else []
        parts = format_item(item, facts, facts_position)
        choice_ids = [encoder.continuation(text) for text in parts.choices]
        for c, ids in zip(item.choices, choice_ids, strict=True):
            if not ids:
                raise KelmError(f"question {item.id!r}: choice {c.label!r} has no tokens")
        longest = max(len(ids) for ids in choice_ids)
        uncond = encoder.prompt(parts.unconditional)
        demos = sampler.sample(item, shots) if sampler else []
        sampled = len(demos)
        prompt = encoder.prompt(build_prompt(item, demos, facts, facts_position))
        while max_length is not None and len(prompt) + longest > max_length and demos:
            demos = demos[1:]  # the farthest from the question goes first
            prompt = encoder.prompt(build_prompt(item, demos, facts, facts_position))
        if max_length is not None and max(len(prompt), len(uncond)) + longest > max_length:
            raise KelmError(
                f"question {item.id!r}: the prompt and its longest choice take "
                f"{len(prompt) + longest} tokens, more than the context window of {max_length} "
                "even without demonstrations"
            )
        requests.append(
            Request(
                item,
                prompt,
                uncond,
                choice_ids,
                [d.id for d in demos],
                sampled - len(demos),
                facts,
            )
        )
    return requests


__all__ = [
    "COPA_CONNECTIVES",
    "DEMO_SEPARATOR",
    "KNOWLEDGE_POSITIONS",
    "UNCONDITIONAL_QA",
    "DemoSampler",
    "PromptEncoder",
    "PromptParts",
    "Request",
    "build_prompt",
    "build_requests",
    "demo_text",
    "format_item",
    "is_copa",
]

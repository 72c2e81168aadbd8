"""Multiple-choice QA readers: CommonsenseQA, OpenBookQA and COPA into one :class:`QAItem`.

Accepted inputs (the format is recognised per file, and per line for JSONL):

* CommonsenseQA original JSONL (v1.0 with 3 choices, v1.11 with 5; any number is accepted)::

    {"id": ..., "question": {"stem": ..., "choices": [{"label": "A", "text": ...}, ...]},
     "answerKey": "A"}

* OpenBookQA JSONL: the same shape, with an optional ``fact1`` (kept in ``meta["fact1"]``).
* The flattened Hugging Face form of CommonsenseQA::

    {"id": ..., "question": "...", "question_concept": "...",
     "choices": {"label": ["A", ...], "text": [...]}, "answerKey": "A"}

* COPA / Balanced COPA XML (``.xml``)::

    <item id="1" asks-for="cause" most-plausible-alternative="1">
      <p>premise</p><a1>first alternative</a1><a2>second alternative</a2></item>

  COPA has no question text, so one is made from the premise and what the item asks for:
  ``"<premise> What was the cause?"`` (``asks-for="cause"``) or ``"<premise> What happened as
  a result?"`` (``asks-for="effect"``). The choices are labelled ``"1"`` and ``"2"``, the
  answer is ``most-plausible-alternative``. ``meta`` keeps ``premise`` and ``asks_for``.

A missing or empty ``answerKey`` gives ``answer=None`` (unlabelled test splits). Anything
malformed raises :class:`~kelm.errors.InputError` naming ``file:line`` and the field; so do a
question with fewer than 2 choices and an id that is not unique in its file (every reader:
``ground``, ``train`` and ``evaluate`` read through here).
"""

from __future__ import annotations

import json
import xml.parsers.expat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kelm.errors import InputError

COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What happened as a result?"}


@dataclass(frozen=True)
class Choice:
    """One answer option."""

    label: str
    text: str


@dataclass(frozen=True)
class QAItem:
    """A multiple-choice question.

    Attributes:
        id: the item id (as a string).
        question: the question text (for COPA: premise plus the asks-for question).
        choices: the options, in file order.
        answer: the label of the correct choice, or ``None`` when the file has no key.
        meta: extra strings from the file (``fact1``, ``question_concept``, ``premise``...).
    """

    id: str
    question: str
    choices: list[Choice]
    answer: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def answer_index(self) -> int | None:
        """Position of the correct choice, or ``None``."""
        labels = [c.label for c in self.choices]
        return labels.index(self.answer) if self.answer in labels else None

    @property
    def grounding_text(self) -> str:
        """The text whose concepts are the question's: for COPA the premise alone (the
        made-up "What was the cause?" would ground ``cause`` in every item), else the question."""
        return self.meta.get("premise", self.question)


def read_qa(path: str | Path) -> list[QAItem]:
    """Read a whole QA file (see the module docstring for the formats)."""
    return list(iter_qa(path))


def iter_qa(path: str | Path) -> Iterator[QAItem]:
    """Yield the items of a QA file: ``.xml`` is COPA, anything else JSON lines.

    Raises:
        InputError: the file is missing or empty, an item is malformed, or an id repeats.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such QA file")
    count = 0
    reader = iter_copa if path.suffix.lower() == ".xml" else iter_jsonl_qa
    for item in reader(path):
        count += 1
        yield item
    if count == 0:
        raise InputError(f"{path}: no QA items in the file")


def _unique_ids(path: Path, located: Iterator[tuple[int, QAItem]]) -> Iterator[QAItem]:
    """The items of ``(line, item)`` pairs, refusing a repeated id: statements, groundings,
    retrievals and predictions are all keyed by it, so every reader (ground, train, evaluate)
    needs it unique."""
    first: dict[str, int] = {}
    for line, item in located:
        if item.id in first:
            raise InputError(
                f"{path}:{line}: duplicate id {item.id!r} (first at line {first[item.id]}); "
                "ids must be unique"
            )
        first[item.id] = line
        yield item


# ---------------------------------------------------------------------------------- JSONL
def iter_jsonl_qa(path: str | Path) -> Iterator[QAItem]:
    """CommonsenseQA (original or Hugging Face form) and OpenBookQA JSON lines."""
    return _unique_ids(Path(path), _jsonl_items(Path(path)))


def _jsonl_items(path: Path) -> Iterator[tuple[int, QAItem]]:
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            where = f"{path}:{line_no}"
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{where}: not UTF-8 text") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield line_no, parse_qa_object(obj, where)


def parse_qa_object(obj: dict[str, Any], where: str = "<item>") -> QAItem:
    """One JSON object in any of the accepted forms; ``where`` prefixes error messages."""
    item_id = obj.get("id")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or item_id == "":
        raise InputError(f"{where}: field 'id' missing or not a string")
    question = obj.get("question")
    meta: dict[str, str] = {}
    if isinstance(question, dict):  # original CSQA / OpenBookQA
        stem = _string(question, "stem", where, "question.stem")
        choices = _choice_list(question.get("choices"), where)
    elif isinstance(question, str):  # flattened Hugging Face form
        stem = question
        choices = _choice_columns(obj.get("choices"), where)
        if isinstance(obj.get("question_concept"), str):
            meta["question_concept"] = obj["question_concept"]
    else:
        raise InputError(
            f"{where}: field 'question' missing (expected an object with 'stem' "
            f"and 'choices', or a string)"
        )
    if "fact1" in obj:
        meta["fact1"] = _string(obj, "fact1", where, "fact1")
    labels = [c.label for c in choices]
    if len(choices) < 2:
        # One choice is always "right": it would count as answered in every accuracy.
        raise InputError(
            f"{where}: only {len(choices)} choice ({labels}); a multiple-choice question "
            "needs at least 2"
        )
    if len(set(labels)) != len(labels):
        raise InputError(f"{where}: field 'choices' has repeated labels {labels}")
    answer = obj.get("answerKey")
    if answer in (None, ""):
        answer = None
    elif not isinstance(answer, str) or answer not in labels:
        raise InputError(f"{where}: field 'answerKey' {answer!r} is not one of the labels {labels}")
    return QAItem(str(item_id), stem, choices, answer, meta)


def _string(obj: dict[str, Any], key: str, where: str, name: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise InputError(f"{where}: field '{name}' missing or not a string")
    return value


def _choice_list(raw: Any, where: str) -> list[Choice]:
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: field 'question.choices' missing or not a non-empty list")
    choices = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InputError(f"{where}: field 'question.choices[{i}]' is not an object")
        label = _string(entry, "label", where, f"question.choices[{i}].label")
        text = _string(entry, "text", where, f"question.choices[{i}].text")
        choices.append(Choice(label, text))
    return choices


def _choice_columns(raw: Any, where: str) -> list[Choice]:
    if not isinstance(raw, dict):
        raise InputError(
            f"{where}: field 'choices' missing (expected {{'label': [...], 'text': [...]}})"
        )
    labels, texts = raw.get("label"), raw.get("text")
    for name, column in (("label", labels), ("text", texts)):
        if not isinstance(column, list) or not all(isinstance(v, str) for v in column):
            raise InputError(f"{where}: field 'choices.{name}' missing or not a list of strings")
    if len(labels) != len(texts) or not labels:
        raise InputError(
            f"{where}: fields 'choices.label' and 'choices.text' must be "
            f"non-empty lists of the same length ({len(labels)} vs {len(texts)})"
        )
    return [Choice(label, text) for label, text in zip(labels, texts, strict=True)]


# ---------------------------------------------------------------------------------- COPA
def iter_copa(path: str | Path) -> Iterator[QAItem]:
    """COPA / Balanced COPA XML items (see the module docstring for the question text).

    Parsed with expat so that every error can name the line of the offending ``<item>``.
    """
    return _unique_ids(Path(path), _copa_items(Path(path)))


def _copa_items(path: Path) -> Iterator[tuple[int, QAItem]]:
    parser = xml.parsers.expat.ParserCreate()
    items: list[tuple[int, QAItem]] = []
    state: dict[str, Any] = {"item": None, "field": None}

    def start(name: str, attrs: dict[str, str]) -> None:
        line = parser.CurrentLineNumber
        if name == "item":
            state["item"] = {"attrs": attrs, "line": line, "text": {}}
        elif state["item"] is not None and name in ("p", "a1", "a2"):
            state["field"] = name
            state["item"]["text"].setdefault(name, "")

    def end(name: str) -> None:
        if name == "item" and state["item"] is not None:
            items.append((state["item"]["line"], _copa_item(state["item"], path)))
            state["item"] = None
        elif name == state["field"]:
            state["field"] = None

    def chars(data: str) -> None:
        if state["item"] is not None and state["field"]:
            state["item"]["text"][state["field"]] += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                parser.Parse(chunk, False)
            except xml.parsers.expat.ExpatError as exc:
                raise InputError(
                    f"{path}:{exc.lineno}: not well-formed COPA XML "
                    f"({xml.parsers.expat.errors.messages[exc.code]})"
                ) from None
            yield from items
            items.clear()
        try:
            parser.Parse(b"", True)
        except xml.parsers.expat.ExpatError as exc:
            raise InputError(
                f"{path}:{exc.lineno}: not well-formed COPA XML "
                f"({xml.parsers.expat.errors.messages[exc.code]})"
            ) from None
    yield from items


def _copa_item(raw: dict[str, Any], path: Path) -> QAItem:
    where = f"{path}:{raw['line']}"
    attrs, text = raw["attrs"], raw["text"]
    item_id = attrs.get("id", "").strip()
    if not item_id:
        raise InputError(f"{where}: COPA <item> attribute 'id' missing")
    asks_for = attrs.get("asks-for", "")
    if asks_for not in COPA_QUESTIONS:
        raise InputError(
            f"{where}: COPA <item> attribute 'asks-for' must be 'cause' or "
            f"'effect', not {asks_for!r}"
        )
    parts = {}
    for name in ("p", "a1", "a2"):
        value = " ".join(text.get(name, "").split())
        if not value:
            raise InputError(f"{where}: COPA <item id={item_id!r}> has no <{name}> text")
        parts[name] = value
    answer = attrs.get("most-plausible-alternative")
    if answer in (None, ""):
        answer = None
    elif answer not in ("1", "2"):
        raise InputError(
            f"{where}: COPA <item> attribute 'most-plausible-alternative' must be "
            f"1 or 2, not {answer!r}"
        )
    question = f"{parts['p']} {COPA_QUESTIONS[asks_for]}"
    choices = [Choice("1", parts["a1"]), Choice("2", parts["a2"])]
    return QAItem(item_id, question, choices, answer, {"premise": parts["p"], "asks_for": asks_for})

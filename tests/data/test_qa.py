"""QA readers: CommonsenseQA (both forms), OpenBookQA, COPA, and their error messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kelm.data.qa import Choice, QAItem, parse_qa_object, read_qa
from kelm.errors import InputError, KelmError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qa"
DATA = Path(
    os.environ.get("KELM_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data"
)


def test_csqa_original():
    items = read_qa(FIXTURES / "csqa_original.jsonl")
    assert [i.id for i in items] == ["q1", "q2", "q3"]  # the blank line is skipped
    first = items[0]
    assert first.question == "If a lantern is not for sale, where is it likely to be?"
    assert first.choices == [
        Choice("A", "antique shop"),
        Choice("B", "house"),
        Choice("C", "dark place"),
    ]
    assert first.answer == "B" and first.answer_index == 1


def test_csqa_huggingface_form_with_five_choices():
    items = read_qa(FIXTURES / "csqa_hf.jsonl")
    assert [len(i.choices) for i in items] == [5, 5]
    assert items[0].meta == {"question_concept": "cat"}
    assert items[0].answer == "A"
    assert items[1].answer is None and items[1].answer_index is None  # "" = unlabelled


def test_openbookqa_fact():
    (item,) = read_qa(FIXTURES / "obqa.jsonl")
    assert item.id == "7-980" and item.meta["fact1"] == "dogs are animals that run"
    assert [c.label for c in item.choices] == ["A", "B", "C", "D"]


def test_copa_question_from_premise_and_asks_for():
    first, second = read_qa(FIXTURES / "copa.xml")
    assert first == QAItem(
        "1",
        "The dog ran to the house. What was the cause?",
        [Choice("1", "The cat was at the bus stop."), Choice("2", "The lantern was on sale.")],
        "1",
        {"premise": "The dog ran to the house.", "asks_for": "cause"},
    )
    assert second.question == "The big cat was hungry. What happened as a result?"
    assert second.answer == "2"


def test_integer_id_and_bom(tmp_path):
    path = tmp_path / "bom.jsonl"
    choices = [{"label": "A", "text": "t"}, {"label": "B", "text": "u"}]
    obj = {"id": 7, "question": {"stem": "s", "choices": choices}}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(obj).encode() + b"\n")
    assert read_qa(path)[0].id == "7"


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"question": {"stem": "s", "choices": [{"label": "A", "text": "t"}]}}', "'id'"),
    ('{"id": "x", "question": 5}', "'question'"),
    ('{"id": "x", "question": {"choices": [{"label": "A", "text": "t"}]}}', "'question.stem'"),
    ('{"id": "x", "question": {"stem": "s", "choices": []}}', "'question.choices'"),
    (
        '{"id": "x", "question": {"stem": "s", "choices": [{"label": "A"}]}}',
        "'question.choices[0].text'",
    ),
    (
        '{"id": "x", "question": {"stem": "s", "choices": [{"label": "A", "text": "t"}, '
        '{"label": "A", "text": "u"}]}}',
        "repeated labels",
    ),
    (
        '{"id": "x", "question": {"stem": "s", "choices": [{"label": "A", "text": "t"}, '
        '{"label": "B", "text": "u"}]}, "answerKey": "Z"}',
        "'answerKey'",
    ),
    (  # one choice is always "right": it used to count as answered correctly
        '{"id": "x", "question": {"stem": "s", "choices": [{"label": "A", "text": "t"}]}, '
        '"answerKey": "A"}',
        "at least 2",
    ),
    ('{"id": "x", "question": "s", "choices": {"label": ["A"], "text": ["t"]}}', "at least 2"),
    (
        '{"id": "ok", "question": "s", "choices": {"label": ["A", "B"], "text": ["t", "u"]}}',
        "duplicate id 'ok' (first at line 1)",
    ),
    (
        '{"id": "x", "question": "s", "choices": {"label": ["A", "B"], "text": ["t"]}}',
        "same length",
    ),
    ('{"id": "x", "question": "s", "choices": {"label": ["A"], "text": [3]}}', "'choices.text'"),
    ('{"id": "x", "question": "s"}', "'choices'"),
    (
        '{"id": "x", "fact1": 3, "question": {"stem": "s", "choices": '
        '[{"label": "A", "text": "t"}]}}',
        "'fact1'",
    ),
]


@pytest.mark.parametrize("line, field", BAD_LINES)
def test_malformed_lines_name_file_line_and_field(tmp_path, line, field):
    path = tmp_path / "bad.jsonl"
    good = (
        '{"id": "ok", "question": {"stem": "s", "choices": [{"label": "A", "text": "t"}, '
        '{"label": "B", "text": "u"}]}}'
    )
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(InputError) as err:
        read_qa(path)
    message = str(err.value)
    assert f"{path}:3:" in message and field in message
    assert "\n" not in message


def test_duplicate_copa_ids_name_the_line(tmp_path):
    path = tmp_path / "dup.xml"
    text = (FIXTURES / "copa.xml").read_text()
    path.write_text(text.replace('id="2"', 'id="1"'))
    with pytest.raises(InputError, match=r"dup\.xml:\d+: duplicate id '1' \(first at line \d+\)"):
        read_qa(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1.jsonl:1: not UTF-8"):
        read_qa(path)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match="no QA items"):
        read_qa(path)


def test_missing_file(tmp_path):
    with pytest.raises(KelmError, match="no such QA file"):
        read_qa(tmp_path / "none.jsonl")


COPA_ITEM = '<item id="{id}" asks-for="{asks}" most-plausible-alternative="{mpa}">{body}</item>'
GOOD_BODY = "<p>P.</p><a1>A.</a1><a2>B.</a2>"


@pytest.mark.parametrize(
    "attrs, body, message",
    [
        ({"id": "", "asks": "cause", "mpa": "1"}, GOOD_BODY, "'id' missing"),
        ({"id": "1", "asks": "reason", "mpa": "1"}, GOOD_BODY, "'asks-for'"),
        ({"id": "1", "asks": "cause", "mpa": "3"}, GOOD_BODY, "'most-plausible-alternative'"),
        ({"id": "1", "asks": "cause", "mpa": "1"}, "<p>P.</p><a1>A.</a1>", "no <a2>"),
        ({"id": "1", "asks": "cause", "mpa": "1"}, "<p> </p><a1>A.</a1><a2>B.</a2>", "no <p>"),
    ],
)
def test_bad_copa_items(tmp_path, attrs, body, message):
    path = tmp_path / "copa.xml"
    path.write_text("<copa-corpus>\n\n" + COPA_ITEM.format(body=body, **attrs) + "\n</copa-corpus>")
    with pytest.raises(InputError) as err:
        read_qa(path)
    assert f"{path}:3:" in str(err.value) and message in str(err.value)


def test_copa_not_well_formed(tmp_path):
    path = tmp_path / "copa.xml"
    path.write_text("<copa-corpus>\n<item id='1' asks-for='cause'>\n<p>x</a1>\n</copa-corpus>")
    with pytest.raises(InputError, match=r"copa.xml:3: not well-formed"):
        read_qa(path)


def test_copa_without_answer(tmp_path):
    path = tmp_path / "copa.xml"
    path.write_text(
        "<copa-corpus><item id='9' asks-for='effect'>" + GOOD_BODY + "</item></copa-corpus>"
    )
    assert read_qa(path)[0].answer is None


def test_parse_object_default_location():
    with pytest.raises(InputError, match="<item>: field 'id'"):
        parse_qa_object({})


@pytest.mark.shared
@pytest.mark.skipif(not (DATA / "qa").is_dir(), reason="shared QA data not available")
def test_real_files():
    csqa = read_qa(DATA / "qa" / "csqa" / "train_rand_split_v1.0.jsonl")
    assert len(csqa) == 7610 and all(len(i.choices) == 3 and i.answer for i in csqa)
    copa = read_qa(DATA / "qa" / "copa" / "balacopa-dev-all.xml")
    assert len(copa) == 1000 and {i.meta["asks_for"] for i in copa} == {"cause", "effect"}

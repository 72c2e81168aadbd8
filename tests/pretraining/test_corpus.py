"""Corpus readers: text files (line / paragraph units, bad files) and WordNet glosses."""

from __future__ import annotations

from pathlib import Path

import pytest

from kelm.errors import InputError
from kelm.pretraining.corpus import read_text_corpus, read_wordnet_corpus, split_gloss

WORDNET = Path(__file__).resolve().parents[1] / "fixtures" / "wordnet"


def test_wordnet_reader_links_sentences_to_their_synsets() -> None:
    docs = read_wordnet_corpus(WORDNET)
    by_id = {d.id: d for d in docs}
    dog = by_id["dog.n.01"]
    assert [u.text for u in dog.units] == [
        "dog: a member of the genus Canis that has been domesticated by man since prehistoric "
        "times",
        "the dog barked all night",
    ]
    assert {u.synset for d in docs for u in d.units} == set(by_id)
    assert all(u.synset == d.id for d in docs for u in d.units)
    plain = read_wordnet_corpus(WORDNET, examples=False, label_prefix=False, max_documents=2)
    assert len(plain) == 2 and all(len(d.units) == 1 for d in plain)
    assert not plain[0].units[0].text.startswith("entity:")


def test_split_gloss() -> None:
    assert split_gloss('a tree; "the oak fell"; "an old oak"') == (
        "a tree",
        ["the oak fell", "an old oak"],
    )
    assert split_gloss("no examples here") == ("no examples here", [])


def test_text_units_by_line_or_paragraph(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one line\nwrapped\n\nnext para\n", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    lines = read_text_corpus([tmp_path])
    assert [u.text for u in lines[0].units] == ["one line", "wrapped", "next para"]
    assert len(lines) == 1  # a file without text is no document
    paras = read_text_corpus([tmp_path], units="paragraph")
    assert [u.text for u in paras[0].units] == ["one line wrapped", "next para"]


def test_empty_missing_and_non_utf8_corpora_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="corpus is empty"):
        read_text_corpus([empty])
    with pytest.raises(InputError, match="not found"):
        read_text_corpus([tmp_path / "nope.txt"])
    latin = tmp_path / "latin.txt"
    latin.write_bytes("fine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin\.txt:2: not UTF-8") as info:
        read_text_corpus([latin])
    assert "\n" not in str(info.value)

"""WordNet 3.0 from its database files (``data.*`` and ``index.*``, format wndb(5WN)).

Reads an NLTK data directory (``.../corpora/wordnet`` or any folder above it) or a plain
WordNet ``dict`` directory such as Debian's ``/usr/share/wordnet``; nltk is not needed.

Nodes are synsets named as NLTK names them, ``<first lemma>.<pos>.<NN>`` (``dog.n.01``): the
first lemma lower-cased, the synset type (``n``, ``v``, ``a``, ``s`` for satellite adjectives,
``r``) and the synset's position in that lemma's ``index.<pos>`` entry. The label is the first
lemma (``_`` -> space), the aliases all lemmas (lower-cased, ``_`` -> space, markers such as
``(a)`` stripped) and the node text the gloss. Every pointer becomes an edge between synsets
(lexical pointers too) named after its symbol (``@`` -> ``hypernym``), as stored in the files:
WordNet lists both directions itself (hypernym and hyponym).

Besides the graph reader, :func:`iter_synsets` gives the synsets one by one as
:class:`SynsetRecord` (name, type, lemmas, gloss) for readers that want the text, not the graph
(the pretraining corpus).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from kelm.errors import InputError
from kelm.graph.sources.base import BuildOptions, LineIssues, SourceOutput

#: data/index file suffix per synset type; satellites (``s``) live with adjectives.
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
FILE_POS = ("noun", "verb", "adj", "adv")
EXPECTED_FILES = [f"{kind}.{pos}" for kind in ("data", "index") for pos in FILE_POS]

POINTERS = {
    "@": "hypernym",
    "@i": "instance_hypernym",
    "~": "hyponym",
    "~i": "instance_hyponym",
    "#m": "member_holonym",
    "#s": "substance_holonym",
    "#p": "part_holonym",
    "%m": "member_meronym",
    "%s": "substance_meronym",
    "%p": "part_meronym",
    "!": "antonym",
    "*": "entailment",
    ">": "cause",
    "&": "similar_to",
    "^": "also_see",
    "$": "verb_group",
    "=": "attribute",
    "+": "derivation",
    ";c": "domain_topic",
    "-c": "member_of_domain_topic",
    ";r": "domain_region",
    "-r": "member_of_domain_region",
    ";u": "domain_usage",
    "-u": "member_of_domain_usage",
    "<": "participle",
}
PERTAINYM = "pertainym"  # ``\`` from an adjective
DERIVED_FROM = "derived_from"  # ``\`` from an adverb
RELATION_ORDER = list(POINTERS.values()) + [PERTAINYM, DERIVED_FROM]

_MARKER = re.compile(r"\([a-z]+\)$")


def read_wordnet(path: Path, options: BuildOptions, issues: LineIssues) -> SourceOutput:
    """Read a WordNet 3.0 database directory.

    Raises:
        InputError: ``path`` is not a directory or lacks any of the ``data.*``/``index.*``
            files; (``strict``) a malformed line.
    """
    del options  # no WordNet-specific options
    folder = find_wordnet_dir(Path(path))
    senses = {pos: _read_index(folder / f"index.{pos}", issues) for pos in FILE_POS}

    synsets: list[_Synset] = []
    # synset offset (8 digits, as written) -> name, per data file
    by_file: dict[str, dict[str, str]] = {pos: {} for pos in FILE_POS}
    lines_read = 0
    for pos in FILE_POS:
        file = folder / f"data.{pos}"
        for number, line in _lines(file, issues):
            lines_read += 1
            if line.startswith("  "):  # license header
                continue
            try:
                synset = _parse_data_line(line, pos)
            except ValueError as exc:
                issues.add(file, number, str(exc))
                continue
            synset.name = _synset_name(synset, senses[pos], file, number, issues)
            if synset.offset in by_file[pos]:
                issues.add(file, number, f"duplicate synset offset {synset.offset}")
                continue
            by_file[pos][synset.offset] = synset.name
            synset.file, synset.line = file, number
            synsets.append(synset)

    targets = {letter: by_file[pos] for letter, pos in POS_FILES.items()}
    pointer_names = {"adv": {**POINTERS, "\\": DERIVED_FROM}}
    pointer_names.update({pos: {**POINTERS, "\\": PERTAINYM} for pos in ("noun", "verb", "adj")})
    no_targets: dict[str, str] = {}
    heads: list[str] = []
    relations: list[str] = []
    tails: list[str] = []
    for synset in synsets:
        bad: str | None = None
        symbols = pointer_names[synset.file_pos]
        for symbol, offset, target_pos in synset.pointers:
            relation = symbols.get(symbol)
            target = targets.get(target_pos, no_targets).get(offset)
            if relation is None:
                bad = bad or f"unknown pointer symbol {symbol!r}"
            elif target is None:
                bad = bad or f"pointer to unknown synset {offset} {target_pos}"
            else:
                heads.append(synset.name)
                relations.append(relation)
                tails.append(target)
        if bad:  # the synset and its valid pointers are kept
            issues.add(synset.file, synset.line, bad)

    names = [s.name for s in synsets]
    alias_nodes: list[str] = []
    alias_texts: list[str] = []
    for synset in synsets:
        aliases = synset.aliases()
        alias_nodes += [synset.name] * len(aliases)
        alias_texts += aliases
    out = SourceOutput(
        triples=[
            pa.table(
                {
                    "head": pa.array(heads, pa.string()),
                    "relation": pa.array(relations, pa.string()),
                    "tail": pa.array(tails, pa.string()),
                    "weight": pa.array(np.ones(len(heads), np.float32)),
                }
            )
        ]
        if heads
        else [],
        nodes=[pa.array(names, pa.string())] if names else [],
        labels=[
            pa.table(
                {
                    "node": pa.array(names, pa.string()),
                    "label": pa.array([s.label for s in synsets], pa.string()),
                }
            )
        ],
        aliases=[
            pa.table(
                {
                    "node": pa.array(alias_nodes, pa.string()),
                    "alias": pa.array(alias_texts, pa.string()),
                }
            )
        ],
        texts=[
            pa.table(
                {
                    "node": pa.array(names, pa.string()),
                    "text": pa.array([s.gloss for s in synsets], pa.string()),
                }
            )
        ],
        relation_order=list(RELATION_ORDER),
    )
    out.lines_read = lines_read
    return out


def find_wordnet_dir(path: Path) -> Path:
    """The folder holding ``data.noun`` etc.: ``path`` itself, or one below it (NLTK's
    ``corpora/wordnet``, a ``dict`` folder).

    Raises:
        InputError: not a directory, or some database files are missing.
    """
    if not path.is_dir():
        raise InputError(
            f"{path}: not a directory; expected a WordNet 3.0 database directory "
            "(e.g. nltk_data or /usr/share/wordnet)"
        )
    candidates = [path, path / "corpora" / "wordnet", path / "wordnet", path / "dict"]
    candidates += sorted(p.parent for p in path.glob("*/*/data.noun"))
    candidates += sorted(p.parent for p in path.glob("*/*/*/data.noun"))
    best, best_missing = path, EXPECTED_FILES
    for folder in candidates:
        missing = [f for f in EXPECTED_FILES if not (folder / f).is_file()]
        if not missing:
            return folder
        if len(missing) < len(best_missing):
            best, best_missing = folder, missing
    hint = ""
    if not (best / "data.noun").exists() and any(path.rglob("wordnet.zip")):
        hint = "; found wordnet.zip: unzip it first"
    where = best if best == path else f"{path} (looked in {best})"
    raise InputError(
        f"{where}: not a WordNet 3.0 database directory, missing {', '.join(best_missing)}{hint}"
    )


@dataclass(frozen=True)
class SynsetRecord:
    """One synset of the database as text.

    Args:
        name: NLTK's name, ``<first lemma>.<type>.<NN>`` (``dog.n.01``).
        pos: the synset type: ``n``, ``v``, ``a``, ``s`` (satellite adjective) or ``r``.
        lemmas: the lemmas as written (``_`` for spaces, case kept, markers such as ``(a)``
            stripped), first lemma first.
        gloss: the whole gloss field: the definition, then any double-quoted examples.
    """

    name: str
    pos: str
    lemmas: tuple[str, ...]
    gloss: str

    @property
    def label(self) -> str:
        """The first lemma, ``_`` -> space (the node label of the graph reader)."""
        return self.lemmas[0].replace("_", " ")


def iter_synsets(path: str | Path, issues: LineIssues | None = None) -> Iterator[SynsetRecord]:
    """The synsets of a WordNet 3.0 database in file order (noun, verb, adj, adv files), each
    file read only when the synsets before it have been consumed.

    Named as :func:`read_wordnet` names its nodes; malformed lines are reported to ``issues``
    (a fresh :class:`LineIssues` when not given) and skipped. Unlike the graph reader, a
    repeated synset offset is yielded again.

    Raises:
        InputError: (on the first ``next``) ``path`` is not a WordNet database folder (see
            :func:`find_wordnet_dir`); with a strict ``issues``, a malformed line.
    """
    folder = find_wordnet_dir(Path(path))
    issues = LineIssues() if issues is None else issues
    for pos in FILE_POS:
        senses = _read_index(folder / f"index.{pos}", issues)
        file = folder / f"data.{pos}"
        for number, line in _lines(file, issues):
            if line.startswith("  "):  # licence header
                continue
            try:
                synset = _parse_data_line(line, pos)
            except ValueError as exc:
                issues.add(file, number, str(exc))
                continue
            name = _synset_name(synset, senses, file, number, issues)
            yield SynsetRecord(name, synset.ss_type, tuple(synset.lemmas), synset.gloss)


class _Synset:
    __slots__ = (
        "offset",
        "file_pos",
        "ss_type",
        "lemmas",
        "pointers",
        "gloss",
        "name",
        "file",
        "line",
    )

    def __init__(
        self,
        offset: str,
        file_pos: str,
        ss_type: str,
        lemmas: list[str],
        pointers: list[tuple[str, str, str]],
        gloss: str,
    ) -> None:
        self.offset = offset
        self.file_pos = file_pos
        self.ss_type = ss_type
        self.lemmas = lemmas
        self.pointers = pointers
        self.gloss = gloss
        self.name = ""
        self.file: Path | None = None
        self.line = 0

    @property
    def label(self) -> str:
        return self.lemmas[0].replace("_", " ")

    def aliases(self) -> list[str]:
        """Lemma names, lower-cased, ``_`` -> space, without duplicates."""
        seen = dict.fromkeys(
            " ".join(lemma.replace("_", " ").lower().split()) for lemma in self.lemmas
        )
        return [a for a in seen if a]


def _lines(file: Path, issues: LineIssues):
    """``(line_number, text)`` of a database file; undecodable lines are reported."""
    with open(file, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                issues.add(file, number, "invalid UTF-8")
                continue
            text = text.rstrip("\r\n")
            if text.strip():
                yield number, text


def _read_index(file: Path, issues: LineIssues) -> dict[str, list[str]]:
    """lemma -> synset offsets in sense order, from ``index.<pos>``."""
    senses: dict[str, list[int]] = {}
    for number, line in _lines(file, issues):
        if line.startswith("  "):
            continue
        fields = line.split()
        try:
            synset_cnt = int(fields[2])
            p_cnt = int(fields[3])
            offsets = fields[6 + p_cnt :]
            if (
                synset_cnt < 1
                or len(offsets) != synset_cnt
                or not all(len(o) == 8 and o.isdigit() for o in offsets)
            ):
                raise ValueError
        except (IndexError, ValueError):
            issues.add(file, number, "malformed index line")
            continue
        senses[fields[0]] = offsets
    return senses


def _parse_data_line(line: str, file_pos: str) -> _Synset:
    """One ``data.<pos>`` line; ``ValueError`` with a reason if it is malformed."""
    head, bar, gloss = line.partition("|")
    if not bar:
        raise ValueError("no gloss separator '|'")
    fields = head.split()
    try:
        offset = fields[0]
        ss_type = fields[2]
        w_cnt = int(fields[3], 16)
        lemmas = [_MARKER.sub("", w) if "(" in w else w for w in fields[4 : 4 + 2 * w_cnt : 2]]
        i = 4 + 2 * w_cnt
        p_cnt = int(fields[i])
        pointer_fields = fields[i + 1 : i + 1 + 4 * p_cnt]
    except (IndexError, ValueError):
        raise ValueError("malformed synset line") from None
    if len(offset) != 8 or not offset.isdigit() or not fields[1].isdigit():
        raise ValueError("malformed synset line")
    if POS_FILES.get(ss_type) != file_pos:
        raise ValueError(f"synset type {ss_type!r} in data.{file_pos}")
    if w_cnt < 1 or len(lemmas) != w_cnt or not all(lemmas):
        raise ValueError("malformed word list")
    if len(pointer_fields) != 4 * p_cnt:
        raise ValueError("truncated pointer list")
    # (symbol, target offset, target type); a malformed target offset is found unknown later
    pointers = list(
        zip(pointer_fields[0::4], pointer_fields[1::4], pointer_fields[2::4], strict=True)
    )
    return _Synset(offset, file_pos, ss_type, lemmas, pointers, gloss.strip())


def _synset_name(
    synset: _Synset, senses: dict[str, list[str]], file: Path, number: int, issues: LineIssues
) -> str:
    """NLTK's name: first lemma, synset type, 1-based position in the lemma's index entry."""
    lemma = synset.lemmas[0].lower()
    offsets = senses.get(lemma)
    if offsets is None or synset.offset not in offsets:
        issues.add(file, number, f"{lemma!r} {synset.offset} missing from index.{synset.file_pos}")
        return f"{lemma}.{synset.ss_type}.{synset.offset}"
    return f"{lemma}.{synset.ss_type}.{offsets.index(synset.offset) + 1:02d}"

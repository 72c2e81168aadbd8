"""Pretraining corpora: documents made of text units.

Two readers:

* :func:`read_text_corpus` — plain text files. **Each file is one document**, UTF-8 (a BOM is
  accepted). With ``units="line"`` (default) every non-blank line is one unit: write one
  sentence per line, or one paragraph per line; with ``units="paragraph"`` the lines of each
  blank-line separated block are joined by spaces into one unit (wrapped paragraphs). Blank
  lines never produce units. A folder stands for every ``*.txt`` file below it, in path order.
* :func:`read_wordnet_corpus` — the WordNet 3.0 database (``data.noun`` ...): **one document per
  synset**, whose units are its gloss (``"dog: a member of the genus Canis ..."`` with the
  first lemma as prefix by default) and its example sentences (the double-quoted parts of the
  gloss field), each :class:`Unit` carrying the synset's NLTK name (``dog.n.01``). The file
  parsing is :mod:`kelm.graph.sources.wordnet`'s
  (:func:`~kelm.graph.sources.wordnet.iter_synsets`).

Problems are one-line :class:`~kelm.errors.InputError`: a missing file, a file that is not
UTF-8 (naming the line), a corpus without any text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kelm._io import sha256_file
from kelm.errors import InputError

_QUOTED = re.compile(r'"([^"]*)"')


@dataclass
class Unit:
    """One text unit (a sentence or a paragraph) and, when known, the synset it belongs to."""

    text: str
    synset: str | None = None


@dataclass
class Document:
    """A document: an id (file path or synset name) and its units, in order."""

    id: str
    units: list[Unit] = field(default_factory=list)


# ---------------------------------------------------------------------------------- text
def text_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files of a text corpus: files as given, folders expanded to their ``*.txt`` files.

    Raises:
        InputError: a path does not exist, or a folder holds no ``*.txt`` file.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise InputError(f"{path}: folder holds no *.txt file (corpus.paths)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: corpus file not found (corpus.paths)")
    return files


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert the corpus file to UTF-8"
        ) from None


def read_text_file(path: str | Path, units: str = "line") -> Document:
    """One text file as a document (see the module docstring for ``units``).

    Raises:
        InputError: the file is not UTF-8.
    """
    path = Path(path)
    text = _decode(path)
    out: list[Unit] = []
    if units == "paragraph":
        block: list[str] = []
        for line in [*text.splitlines(), ""]:
            if line.strip():
                block.append(" ".join(line.split()))
            elif block:
                out.append(Unit(" ".join(block)))
                block = []
    else:
        out = [Unit(" ".join(line.split())) for line in text.splitlines() if line.strip()]
    return Document(str(path), out)


def read_text_corpus(
    paths: Sequence[str | Path], units: str = "line", max_documents: int | None = None
) -> list[Document]:
    """The documents of text files (one per file; files without text are skipped).

    Raises:
        InputError: missing or non-UTF-8 file, or no text at all.
    """
    files = text_files(paths)
    if max_documents is not None:
        files = files[:max_documents]
    docs = [d for d in (read_text_file(f, units) for f in files) if d.units]
    if not docs:
        shown = ", ".join(str(f) for f in files[:3]) or ", ".join(map(str, paths))
        raise InputError(f"{shown}: the corpus is empty (no non-blank line in any file)")
    return docs


# ---------------------------------------------------------------------------------- wordnet
def split_gloss(gloss: str) -> tuple[str, list[str]]:
    """A WordNet gloss field split into its definition and its example sentences.

    ``'a member of the genus Canis; "the dog barked all night"'`` gives
    ``("a member of the genus Canis", ["the dog barked all night"])``. The definition is the
    text before the first quote, without trailing ``;``; examples are the quoted parts.
    """
    first = gloss.find('"')
    definition = gloss if first < 0 else gloss[:first]
    definition = " ".join(definition.strip().rstrip(";").split())
    examples = [" ".join(m.split()) for m in _QUOTED.findall(gloss)]
    return definition, [e for e in examples if e]


def read_wordnet_corpus(
    path: str | Path,
    *,
    examples: bool = True,
    label_prefix: bool = True,
    max_documents: int | None = None,
) -> list[Document]:
    """The glosses (and example sentences) of a WordNet 3.0 database, one document per synset.

    Args:
        path: the database folder (or a folder above it, e.g. an NLTK data folder).
        examples: add each synset's example sentences as further units.
        label_prefix: gloss units read ``"<first lemma>: <definition>"``.
        max_documents: keep the first N synsets (in file order: noun, verb, adj, adv).

    Raises:
        InputError: not a WordNet database folder, or no gloss at all.
    """
    from kelm.graph.sources.wordnet import find_wordnet_dir, iter_synsets

    folder = find_wordnet_dir(Path(path))
    docs: list[Document] = []
    for synset in iter_synsets(folder):
        definition, sentences = split_gloss(synset.gloss)
        units: list[Unit] = []
        if definition:
            text = f"{synset.label}: {definition}" if label_prefix else definition
            units.append(Unit(text, synset.name))
        if examples:
            units += [Unit(s, synset.name) for s in sentences]
        if units:
            docs.append(Document(synset.name, units))
        if max_documents is not None and len(docs) >= max_documents:
            return docs
    if not docs:
        raise InputError(f"{folder}: no WordNet gloss found in the data files")
    return docs


def wordnet_files(path: str | Path) -> list[Path]:
    """The database files the WordNet reader reads (for cache keys)."""
    from kelm.graph.sources.wordnet import EXPECTED_FILES, find_wordnet_dir

    folder = find_wordnet_dir(Path(path))
    return [folder / name for name in EXPECTED_FILES]


# ---------------------------------------------------------------------------------- config
def read_corpus(corpus: Any) -> list[Document]:
    """The documents a :class:`~kelm.pretraining.config.CorpusConfig` describes."""
    if corpus.kind == "wordnet":
        return read_wordnet_corpus(
            corpus.wordnet,
            examples=corpus.wordnet_examples,
            label_prefix=corpus.wordnet_label_prefix,
            max_documents=corpus.max_documents,
        )
    return read_text_corpus(corpus.paths, corpus.units, corpus.max_documents)


def corpus_identity(corpus: Any) -> dict[str, Any]:
    """Everything that determines the documents of a corpus config: its options and the
    sha256 of every input file (part of the instance cache key)."""
    import dataclasses

    options = dataclasses.asdict(corpus)
    files = wordnet_files(corpus.wordnet) if corpus.kind == "wordnet" else text_files(corpus.paths)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{sha256_file(f)}\n".encode())
    options.pop("paths", None)
    options.pop("wordnet", None)
    return {**options, "files": len(files), "content_sha256": digest.hexdigest()}


__all__ = [
    "Document",
    "Unit",
    "corpus_identity",
    "read_corpus",
    "read_text_corpus",
    "read_text_file",
    "read_wordnet_corpus",
    "split_gloss",
    "text_files",
    "wordnet_files",
]

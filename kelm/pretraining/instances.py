"""Corpus documents -> linked, tokenised, packed instances, cached on disk.

Per document (:mod:`kelm.pretraining.corpus`), per unit of text:

1. **Link** (objectives with entities; :mod:`kelm.pretraining.entity_linking`): the
   ``kelm_linker`` spaCy component finds mentions of graph nodes (concept or entity mode).
   Concept mode keeps overlapping matches; one entity per mention is kept here, longest
   mentions first, so that mentions never overlap; a mention's entity is its best node.
2. **Tokenise** with the backbone's fast tokenizer (no special tokens) and **align** each
   mention to its wordpieces (:func:`kelm.linking.align.char_spans_to_tokens`): the entity id
   goes on the *first* wordpiece of the mention, ``-1`` everywhere else.
3. **Pack** consecutive units of one document into instances of at most ``max_length``
   wordpieces, special tokens included: ``[CLS] units [SEP]`` (``single``), or
   ``[CLS] A [SEP] B [SEP]`` (``pair``, for next-sentence / sentence-order objectives: A is
   the first half of the packed units, B the rest; an instance of one unit is cut in the
   middle, at a word start). A unit longer than the room is truncated, and counted
   (``truncated_units``, ``truncated_tokens``, ``entities_truncated``).

The result, an :class:`InstanceStore`, is cached under
``<cache_dir>/instances/<key>/`` where the key digests every option that changes it: the
corpus (options and the sha256 of each input file), the tokenizer (its full serialisation),
``max_length``, the segment format and the linking setup (graph checksum, linker options,
lemma source). Preparation writes shards of ``shard_documents`` documents into
``<key>.partial/``; an interrupted preparation resumes at the first missing shard; the
finished directory is published whole. Arrays are safetensors, metadata JSON.

The cache follows kelm's integrity rule: each shard's sha256 is recorded when it is written
(in its ``shard-*.json``, then in the manifest's ``files``) and the manifest's ``checksum`` is
the digest of its fields; loading checks both (each shard hashed once per process), and
:func:`prepare_instances` prepares again, with a warning, a cache that does not match (or one
written before the checksums were recorded) instead of training on modified instances.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import (
    check_manifest_checksum,
    fields_checksum,
    output_lock,
    publish_dir,
    sha256_file,
    verify_file,
    write_json,
)
from kelm.errors import InputError, KelmError
from kelm.pretraining.packing import ARRAYS as _ARRAYS
from kelm.pretraining.packing import COUNTS as _COUNTS
from kelm.pretraining.packing import Packer, Unit

if TYPE_CHECKING:
    from kelm.pretraining.corpus import Document
    from kelm.pretraining.entity_linking import EntityLinker

log = logging.getLogger(__name__)

KIND = "kelm-pretrain-instances"
FORMAT_VERSION = 1
IDENTITY = ("kind", "format_version", "key", "counts", "shards", "files")
"""The manifest fields its ``checksum`` digests (:func:`kelm._io.fields_checksum`)."""
SEGMENT_FORMATS = ("single", "pair")


def default_cache_dir() -> Path:
    """``$KELM_CACHE/pretraining`` (``~/.cache/kelm/pretraining``)."""
    from kelm.paths import cache_dir

    return cache_dir() / "pretraining"


def tokenizer_identity(tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's class and a digest of its full serialisation (vocab, normaliser...)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:  # a slow tokenizer: its vocabulary
        text = json.dumps(sorted(tokenizer.get_vocab().items()))
    return {
        "class": type(tokenizer).__name__,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "specials": _specials(tokenizer),
    }


def _specials(tokenizer: Any) -> list[int]:
    """The ids wrapped around instances: ``[CLS]``/``[SEP]`` (else BOS/EOS, else none)."""
    first = tokenizer.cls_token_id
    last = tokenizer.sep_token_id
    if first is None or last is None:
        first, last = tokenizer.bos_token_id, tokenizer.eos_token_id
    if first is None or last is None:
        return []
    return [int(first), int(last)]


# ---------------------------------------------------------------------------------- store
@dataclass
class Instance:
    """One packed instance.

    Attributes:
        input_ids: wordpiece ids, special tokens included, ``[L]``.
        entity_ids: graph node id on the first wordpiece of each mention, -1 elsewhere, ``[L]``.
        word_starts: 1 on the first wordpiece of each word (and on special tokens), ``[L]``.
        sep: pair format: position of the ``[SEP]`` that closes segment A; -1 otherwise.
        doc: the document's number in the corpus.
    """

    input_ids: np.ndarray
    entity_ids: np.ndarray
    word_starts: np.ndarray
    sep: int
    doc: int

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


class InstanceStore:
    """Packed instances in memory (flat arrays + offsets), loaded from a cache directory.

    Attributes:
        path: the directory.
        manifest: kind, version, key, counts, shards.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.path = path
        self.manifest = manifest
        self.input_ids = arrays["input_ids"]
        self.entity_ids = arrays["entity_ids"]
        self.word_starts = arrays["word_starts"]
        self.seps = arrays["seps"]
        self.docs = arrays["docs"]
        lengths = arrays["lengths"].astype(np.int64)
        self.offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.manifest["counts"])

    @property
    def segments(self) -> str:
        return str(self.manifest["key"]["segments"])

    def __len__(self) -> int:
        return int(self.seps.shape[0])

    def __getitem__(self, i: int) -> Instance:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return Instance(
            self.input_ids[lo:hi],
            self.entity_ids[lo:hi],
            self.word_starts[lo:hi],
            int(self.seps[i]),
            int(self.docs[i]),
        )

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def split(
        self, holdout: float, seed: int, max_eval: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hold out the instances of ``round(holdout * documents)`` documents chosen by a
        permutation seeded with ``seed`` (whole documents, so no text is in both parts).

        Returns:
            ``(train, eval)`` instance indices, ascending; ``eval`` cut to ``max_eval``.

        Raises:
            KelmError: the split leaves no training instance.
        """
        n_docs = int(self.counts["documents"])
        n_eval = int(round(holdout * n_docs))
        if holdout > 0 and n_eval == 0 and n_docs > 1:
            n_eval = 1
        held = np.zeros(max(n_docs, 1), dtype=bool)
        held[np.random.default_rng(seed).permutation(n_docs)[:n_eval]] = True
        is_eval = held[self.docs] if len(self) else np.zeros(0, dtype=bool)
        train = np.flatnonzero(~is_eval)
        evaluation = np.flatnonzero(is_eval)
        if max_eval is not None:
            evaluation = evaluation[:max_eval]
        if len(train) == 0:
            raise KelmError(
                f"data.holdout={holdout} leaves no training instance out of {len(self)} "
                f"({n_docs} documents); lower it or add text"
            )
        return train, evaluation

    @classmethod
    def load(cls, path: str | Path) -> InstanceStore:
        """Load a prepared directory, checked against its manifest (see the module docstring).

        Raises:
            KelmError: not a complete instance directory, or one whose manifest or shards are
                not what was written.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KelmError(f"{path}: not a prepared instance directory ({exc})") from None
        if not isinstance(manifest, dict):
            raise KelmError(f"{path / 'manifest.json'}: expected a JSON object")
        if manifest.get("kind") != KIND or manifest.get("format_version") != FORMAT_VERSION:
            raise KelmError(f"{path}: not a kelm instance directory of version {FORMAT_VERSION}")
        files = manifest.get("files")
        if not isinstance(files, dict) or not isinstance(manifest.get("shards"), list):
            raise KelmError(f"{path}: no shard checksums (written by an older kelm)")
        check_manifest_checksum(
            manifest,
            fields_checksum(manifest, IDENTITY),
            path / "manifest.json",
            what="instance cache",
            error=KelmError,
        )
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
        for shard in manifest["shards"]:
            verify_file(path / shard, files.get(shard), what="instance cache", error=KelmError)
            try:
                arrays = load_file(str(path / shard))
            except (SafetensorError, OSError) as exc:
                raise KelmError(f"{path / shard}: unreadable ({exc}); delete {path}") from None
            for name in _ARRAYS:
                parts[name].append(arrays[name])
        joined = {name: np.concatenate(parts[name]) for name in _ARRAYS}
        return cls(path, manifest, joined)


# ---------------------------------------------------------------------------------- units
def _units_of_shard(
    texts: list[str],
    tokenizer: Any,
    linker: EntityLinker | None,
    link_batch_size: int,
    counts: dict[str, int],
) -> list[Unit]:
    """Link, tokenise and align a shard's texts."""
    from kelm.linking.align import char_spans_to_tokens

    if not getattr(tokenizer, "is_fast", False):
        raise KelmError(
            f"{type(tokenizer).__name__} gives no character offsets; pretraining needs a fast "
            "tokenizer"
        )
    mentions: list[list[tuple[int, int, int]]] | None = None
    if linker is not None:
        mentions, dropped = linker.link(texts, batch_size=link_batch_size)
        counts["mentions_overlapping"] += dropped
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    units: list[Unit] = []
    for i in range(len(texts)):
        ids = np.asarray(enc["input_ids"][i], dtype=np.int32)
        words = enc.word_ids(i)
        starts = np.ones(len(ids), dtype=np.uint8)
        for j in range(1, len(ids)):
            starts[j] = words[j] is None or words[j] != words[j - 1]
        ents = np.full(len(ids), -1, dtype=np.int32)
        if mentions is not None and mentions[i]:
            spans = [(s, e) for s, e, _ in mentions[i]]
            counts["mentions"] += len(spans)
            tokens = char_spans_to_tokens(enc["offset_mapping"][i], spans)
            for (_, _, node), toks in zip(mentions[i], tokens, strict=True):
                if not toks or ents[toks[0]] >= 0:
                    counts["mentions_unaligned"] += 1
                    continue
                ents[toks[0]] = node
        if mentions is not None and not (ents >= 0).any():
            counts["units_without_entities"] += 1
        counts["units"] += 1
        counts["empty_units"] += int(len(ids) == 0)
        units.append(Unit(ids, ents, starts))
    return units


# ---------------------------------------------------------------------------------- prepare
def instance_key(
    corpus: dict[str, Any],
    tokenizer: Any,
    max_length: int,
    segments: str,
    linking: dict[str, Any] | None,
) -> dict[str, Any]:
    """The cache key of a preparation: every option that changes the instances."""
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "corpus": corpus,
        "tokenizer": tokenizer_identity(tokenizer),
        "max_length": int(max_length),
        "segments": segments,
        "linking": linking,
    }


def instance_dir(key: dict[str, Any], cache_dir: str | Path) -> Path:
    """``<cache_dir>/instances/<digest of key>``."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return Path(cache_dir) / "instances" / hashlib.sha256(text.encode()).hexdigest()[:20]


def prepare_instances(
    documents: Sequence[Document],
    tokenizer: Any,
    *,
    key: dict[str, Any],
    cache_dir: str | Path,
    linker: EntityLinker | None = None,
    shard_documents: int = 5000,
    link_batch_size: int = 256,
    progress: bool = False,
    run_shards: Callable[[Path, list[ShardJob]], None] | None = None,
) -> InstanceStore:
    """Prepare (or reuse) the instances of ``documents`` (see the module docstring).

    Args:
        documents: the corpus.
        tokenizer: a fast tokenizer.
        key: :func:`instance_key` of this preparation (names the cache directory).
        cache_dir: cache root.
        linker: links the units (objectives with entities); ``None``: no entities.
        shard_documents: documents per shard (the unit of resumption).
        link_batch_size: texts per spaCy batch.
        progress: a tqdm bar over shards.
        run_shards: prepares the missing shards elsewhere, ``run_shards(partial, jobs)``
            writing each with :func:`write_shard` into ``partial`` (on a Dask cluster:
            :mod:`kelm.pretraining.instances_dask`); ``None``: here, one after another.

    Raises:
        KelmError: a slow tokenizer; InputError: a unit too long for spaCy.
    """
    out = instance_dir(key, cache_dir)
    store = _prepared(out, key)
    if store is not None:
        return store
    with output_lock(out):  # another process preparing the same instances finishes first
        store = _prepared(out, key)
        if store is not None:
            return store
        partial = out.with_name(out.name + ".partial")
        key_file = partial / "key.json"
        plain_key = json.loads(json.dumps(key, default=str))
        if partial.is_dir():
            try:
                same = json.loads(key_file.read_text(encoding="utf-8")) == plain_key
            except (OSError, json.JSONDecodeError):
                same = False
            if not same:
                shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True, exist_ok=True)
        if not key_file.is_file():
            write_json(key_file, plain_key)

        segments = key["segments"]
        if segments not in SEGMENT_FORMATS:
            raise KelmError(f"unknown segment format {segments!r} ({', '.join(SEGMENT_FORMATS)})")
        n_shards = max(1, -(-len(documents) // shard_documents))
        # shards done by an earlier, interrupted preparation are kept
        jobs = [
            ShardJob(
                s,
                s * shard_documents,
                [
                    [u.text for u in d.units]
                    for d in documents[s * shard_documents : (s + 1) * shard_documents]
                ],
            )
            for s in range(n_shards)
            if not _shard_done(partial, f"shard-{s:05d}")
        ]
        if run_shards is not None:
            run_shards(partial, jobs)
        else:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=n_shards,
                initial=n_shards - len(jobs),
                desc="preparing instances",
                unit="shard",
                disable=not progress,
            )
            for job in jobs:
                write_shard(partial, job, tokenizer, linker, link_batch_size, key)
                bar.update(1)
            bar.close()

        totals = dict.fromkeys(_COUNTS, 0)
        shards = []
        files = {}
        for s in range(n_shards):
            name = f"shard-{s:05d}"
            shard_counts = json.loads((partial / f"{name}.json").read_text(encoding="utf-8"))
            for k in _COUNTS:
                totals[k] += int(shard_counts.get(k, 0))
            shards.append(f"{name}.safetensors")
            files[f"{name}.safetensors"] = shard_counts["sha256"]
        if totals["instances"] == 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise InputError(
                "the corpus gives no instance: every unit is empty after tokenisation"
                + (" or unpairable" if segments == "pair" else "")
            )
        import kelm

        manifest = {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "kelm_version": kelm.__version__,
            "key": plain_key,
            "counts": totals,
            "shards": shards,
            "files": files,
        }
        manifest["checksum"] = fields_checksum(manifest, IDENTITY)
        write_json(partial / "manifest.json", manifest)
        publish_dir(partial, out)
        log.info("prepared %d instances in %s", totals["instances"], out)
        return InstanceStore.load(out)


def _prepared(out: Path, key: dict[str, Any]) -> InstanceStore | None:
    """The complete instance store in ``out`` prepared under ``key``, else ``None``."""
    if not (out / "manifest.json").is_file():
        return None
    try:
        store = InstanceStore.load(out)
    except KelmError as exc:  # damaged or modified: prepared again, never trained on
        log.warning("instance cache %s is not usable (%s); preparing it again", out, exc)
        return None
    return store if store.manifest.get("key") == json.loads(json.dumps(key, default=str)) else None


@dataclass(frozen=True)
class ShardJob:
    """One shard to prepare: its number, the corpus number of its first document and the
    texts of each document's units."""

    number: int
    first_document: int
    documents: list[list[str]]


def write_shard(
    partial: Path,
    job: ShardJob,
    tokenizer: Any,
    linker: EntityLinker | None,
    link_batch_size: int,
    key: dict[str, Any],
) -> None:
    """Link, tokenise and pack one shard into ``partial/shard-NNNNN.safetensors``, then its
    record ``shard-NNNNN.json`` (its counts and sha256: the shard is done once it is there)."""
    name = f"shard-{job.number:05d}"
    packer = Packer(int(key["max_length"]), _specials(tokenizer), key["segments"])
    counts = packer.counts
    texts = [text for doc in job.documents for text in doc]
    units = _units_of_shard(texts, tokenizer, linker, link_batch_size, counts)
    row = 0
    for offset, doc in enumerate(job.documents):
        packer.add_document(job.first_document + offset, units[row : row + len(doc)])
        row += len(doc)
    counts["documents"] = len(job.documents)
    _write_shard(partial / f"{name}.safetensors", packer.arrays())
    # The shard's record, written after it: its counts and its sha256.
    sha = sha256_file(partial / f"{name}.safetensors")
    write_json(partial / f"{name}.json", {**counts, "sha256": sha})


def _shard_done(partial: Path, name: str) -> bool:
    """Whether an earlier, interrupted preparation finished shard ``name``: its record exists
    and its safetensors file is the one the record's sha256 names."""
    try:
        record = json.loads((partial / f"{name}.json").read_text(encoding="utf-8"))
        verify_file(partial / f"{name}.safetensors", record.get("sha256"), what="", error=OSError)
    except (OSError, ValueError, AttributeError):
        return False
    return True


def _write_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    tmp.replace(path)


__all__ = [
    "Instance",
    "InstanceStore",
    "SEGMENT_FORMATS",
    "ShardJob",
    "default_cache_dir",
    "instance_dir",
    "instance_key",
    "prepare_instances",
    "tokenizer_identity",
    "write_shard",
]

"""Preparing pretraining instances on a Dask cluster (``kelm pretrain --scheduler``).

The corpus is prepared in the shards of the single-process preparation
(:func:`kelm.pretraining.instances.prepare_instances`, ``data.shard_documents`` documents
each, the unit of work and of resuming): each missing shard is linked, tokenised and packed on
a worker by :func:`~kelm.pretraining.instances.write_shard`, which writes it and then its
record into the preparation's ``<key>.partial/`` folder, as the single-process loop does. A
worker process loads the tokenizer, one spaCy pipeline and one linker index (from the shared
cache) the first time and keeps them for every later shard; it checks that they are those of
the cache key (the tokenizer's serialisation, the graph checksum and linker options), so a
worker that sees another graph or model fails instead of writing other instances.

An interrupted preparation (on one process or on the cluster) resumes at the shards without a
valid record; the client then writes the manifest and publishes the cache exactly as the
single-process preparation does: the same files, byte for byte, read by the same reader.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kelm.errors import KelmError
from kelm.pretraining.instances import ShardJob, tokenizer_identity, write_shard

_LOADED: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def dask_shard_runner(
    client: Any,
    tokenizer: Any,
    linker_setup: dict[str, Any] | None,
    *,
    key: dict[str, Any],
    link_batch_size: int = 256,
    progress: bool = False,
) -> Callable[[Path, list[ShardJob]], None]:
    """A ``run_shards`` for :func:`~kelm.pretraining.instances.prepare_instances` that
    prepares the shards on the workers of ``client``.

    Args:
        client: a ``distributed.Client``; its workers must see the preparation's cache
            folder, the graph and the linker cache at the same paths (a shared file system).
        tokenizer: the run's tokenizer (saved beside the preparation for the workers).
        linker_setup: ``EntityLinker``'s arguments (``graph``, ``mode``, ``pipeline``,
            ``cache_dir``), or ``None`` without entities.
        key: the preparation's cache key (:func:`~kelm.pretraining.instances.instance_key`).
        link_batch_size: texts per spaCy batch.
        progress: a bar over shards.
    """

    def run(partial: Path, jobs: list[ShardJob]) -> None:
        from distributed import as_completed
        from tqdm.auto import tqdm

        if not jobs:
            return
        # The workers load the tokenizer from here (a folder beside the preparation, so the
        # published cache holds what a single-process preparation writes, nothing more).
        saved = partial.with_name(partial.name + ".tokenizer")
        shutil.rmtree(saved, ignore_errors=True)
        tokenizer.save_pretrained(str(saved))
        setup = {
            "tokenizer": str(saved),
            "linker": linker_setup,
            "key": key,
            "link_batch_size": link_batch_size,
        }
        futures = [
            client.submit(prepare_shard, setup, str(partial), job, pure=False) for job in jobs
        ]
        try:
            with tqdm(
                total=len(jobs), desc="preparing instances", unit="shard", disable=not progress
            ) as bar:
                for future in as_completed(futures):
                    future.result()  # re-raises a worker's error here
                    bar.update(1)
        finally:
            client.cancel(futures)
            shutil.rmtree(saved, ignore_errors=True)

    return run


# ---------------------------------------------------------------------- on the workers
def _loaded(setup: dict[str, Any]) -> tuple[Any, Any]:
    """This worker process's tokenizer and linker for ``setup``, loaded once and checked
    against the cache key."""
    import json

    name = json.dumps(setup, sort_keys=True, default=str)
    if name not in _LOADED:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(setup["tokenizer"], use_fast=True)
        key = setup["key"]
        if tokenizer_identity(tokenizer) != key["tokenizer"]:
            raise KelmError(f"{setup['tokenizer']}: this worker loads another tokenizer")
        linker = None
        if setup["linker"] is not None:
            from kelm.pretraining.entity_linking import EntityLinker

            s = setup["linker"]
            linker = EntityLinker(s["graph"], s["mode"], s["pipeline"], cache_dir=s["cache_dir"])
            identity = json.loads(json.dumps(linker.identity(), default=str))
            if identity != json.loads(json.dumps(key["linking"], default=str)):
                raise KelmError(
                    f"{s['graph']}: this worker links with another graph, linker or lemma "
                    "source than the client (a shared file system and one environment needed)"
                )
        _LOADED[name] = (tokenizer, linker)
    return _LOADED[name]


def prepare_shard(setup: dict[str, Any], partial: str, job: ShardJob) -> int:
    """Prepare one shard into ``partial`` (:func:`~kelm.pretraining.instances.write_shard`);
    returns its number."""
    with _LOCK:  # threads of one worker share its pipeline: one shard at a time
        tokenizer, linker = _loaded(setup)
        write_shard(
            Path(partial), job, tokenizer, linker, int(setup["link_batch_size"]), setup["key"]
        )
    return job.number


__all__ = ["dask_shard_runner", "prepare_shard"]

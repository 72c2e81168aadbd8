"""The data of a pretraining run: the corpus read, linked (objectives with entities), tokenised
and packed into cached instances (:mod:`~kelm.pretraining.instances`), on this process or, with
a scheduler, in shards on a Dask cluster (:mod:`~kelm.pretraining.instances_dask`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kelm.pretraining.config import PretrainConfig


def prepare_data(
    cfg: PretrainConfig,
    objective_cls: Any,
    options: Any,
    tokenizer: Any,
    knowledge: Any,
    *,
    progress: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
) -> Any:
    """Read the corpus and prepare (or reuse) its instances for this objective; with
    ``scheduler`` (:func:`kelm.cluster.dask_client`) the shards are prepared on a Dask
    cluster (:mod:`kelm.pretraining.instances_dask`), into the same cache."""
    from kelm.pretraining.corpus import corpus_identity, read_corpus
    from kelm.pretraining.entity_linking import EntityLinker
    from kelm.pretraining.instances import (
        default_cache_dir,
        instance_dir,
        instance_key,
        prepare_instances,
    )

    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else default_cache_dir()
    # the segment format is a property of the objective's options: a throwaway instance tells
    probe = objective_cls(cfg, options, tokenizer, knowledge)
    linker = None
    if objective_cls.needs_entities:
        linker = EntityLinker(
            knowledge.path,
            cfg.knowledge.linker_mode,
            cfg.knowledge.pipeline,
            # the default linker cache is shared with `kelm link`; a run's own cache_dir keeps
            # everything of the run in one place
            cache_dir=cache / "linker" if cfg.data.cache_dir else None,
        )
    key = instance_key(
        corpus_identity(cfg.corpus),
        tokenizer,
        cfg.data.max_length,
        probe.segments,
        linker.identity() if linker is not None else None,
    )
    cached = (instance_dir(key, cache) / "manifest.json").is_file()
    # cached: the corpus need not be read again (nor a cluster started)
    documents: list[Any] = [] if cached else read_corpus(cfg.corpus)

    def prepare(run_shards: Any = None) -> Any:
        return prepare_instances(
            documents,
            tokenizer,
            key=key,
            cache_dir=cache,
            linker=linker,
            shard_documents=cfg.data.shard_documents,
            link_batch_size=cfg.data.link_batch_size,
            progress=progress,
            run_shards=run_shards,
        )

    if scheduler is None or cached:
        return prepare()
    from kelm.cluster import dask_client
    from kelm.paths import cache_dir as kelm_cache
    from kelm.pretraining.instances_dask import dask_shard_runner

    setup = None
    if linker is not None:
        setup = {
            "graph": str(Path(knowledge.path).resolve()),
            "mode": cfg.knowledge.linker_mode,
            "pipeline": cfg.knowledge.pipeline,
            # the client's linker cache (built or found above), at its resolved path
            "cache_dir": str((cache if cfg.data.cache_dir else kelm_cache()) / "linker"),
        }
    with dask_client(scheduler, workers=workers) as client:
        return prepare(
            dask_shard_runner(
                client,
                tokenizer,
                setup,
                key=key,
                link_batch_size=cfg.data.link_batch_size,
                progress=progress,
            )
        )


__all__ = ["prepare_data"]

"""Grounding a QA file on a Dask cluster (``kelm ground --scheduler``), resumable by partition.

The statements are cut into partitions of ``partition_size``; each partition is grounded on
a worker, whose process loads one spaCy pipeline and one linker index (from the shared cache)
the first time and keeps them for every later partition, and runs ``nlp.pipe`` over the
partition in batches. A worker writes its partition as ``<out>.parts/part-NNNNN.jsonl``
(renamed into place when whole) and then a sidecar recording its statements and sha256: a
re-run with the same key (graph, questions, linker settings, partition size) keeps every
partition whose sidecar and content still match and grounds only the others.

When every partition is there, the client concatenates them into ``<out>`` and writes the
manifest of :mod:`kelm.linking.grounded_file`: the published file and its manifest are those
of the single-process grounding, byte for byte, and are read by the same readers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from kelm._io import check_output_file, output_lock, replace_file, sha256_file, write_json
from kelm.errors import KelmError
from kelm.linking.grounded_file import (
    GroundedWriter,
    GroundReport,
    count_empty,
    is_complete,
    partial_paths,
    publish,
)

if TYPE_CHECKING:
    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex
    from kelm.linking.options import LinkerOptions

PARTITION_SIZE = 20_000


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def ground_file_distributed(
    graph: str | Path | GraphIndex,
    qa_file: str | Path | Sequence[QAItem],
    out: str | Path,
    *,
    client: Any,
    options: LinkerOptions | None = None,
    pipeline: str | None = None,
    batch_size: int = 1000,
    partition_size: int = PARTITION_SIZE,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> GroundReport:
    """:func:`~kelm.linking.ground.ground_file` on the Dask cluster of ``client`` (see the
    module docstring); the arguments are those of ``ground_file``, ``processes`` aside.

    Args:
        client: a ``distributed.Client``; its workers must see the graph, the linker cache
            and the output's directory at the same paths (a shared file system).
        partition_size: statements per partition (the unit of work and of resuming).
    """
    from kelm.linking.ground import prepare_grounding

    if partition_size < 1:
        raise KelmError(f"partition size must be at least 1, not {partition_size}")
    start = time.perf_counter()
    prepared = prepare_grounding(graph, qa_file, out, options, pipeline, cache_dir, start)
    if isinstance(prepared, GroundReport):
        return prepared
    graph_index, linker, rows, manifest = prepared
    out = check_output_file(Path(out))
    with output_lock(out):
        if is_complete(out, manifest):  # another process grounded it while this one waited
            return GroundReport(out, len(rows), len(rows), True, *count_empty(out), 0.0)
        # The client's linker has built (or found) the cached index; workers load that cache.
        key = {**manifest, "partition_size": partition_size}
        folder = parts_dir(out)
        if _read_json(folder / "key.json") != json.loads(json.dumps(key)):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            write_json(folder / "key.json", key)
        bounds = [
            (a, min(a + partition_size, len(rows))) for a in range(0, len(rows), partition_size)
        ]
        done = {k for k, (a, b) in enumerate(bounds) if _complete(folder, k, b - a)}
        resumed = sum(bounds[k][1] - bounds[k][0] for k in done)
        setup = (
            str(Path(graph_index.path).resolve()),
            linker.options.to_dict(),
            str(cache_dir) if cache_dir else None,
            pipeline,
        )
        futures = [
            client.submit(
                ground_partition,
                setup,
                [_row(item, choice) for item, choice in rows[a:b]],
                str(folder),
                k,
                batch_size,
                pure=False,
            )
            for k, (a, b) in enumerate(bounds)
            if k not in done
        ]
        _wait(futures, len(rows), resumed, progress)
        partial, partial_manifest = partial_paths(out)
        with open(partial, "wb") as fh:
            for k in range(len(bounds)):
                with open(folder / f"part-{k:05d}.jsonl", "rb") as part:
                    shutil.copyfileobj(part, fh, 4 << 20)
        # The parts folder is the resume state; a single-process run's partial is replaced.
        publish(out, partial, partial_manifest, manifest)
        shutil.rmtree(folder, ignore_errors=True)
    return GroundReport(
        out, len(rows), resumed, False, *count_empty(out), time.perf_counter() - start
    )


def _row(item: QAItem, choice: Any) -> tuple[str, str, str, str, str]:
    return (item.id, item.question, item.grounding_text, choice.label, choice.text)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _complete(folder: Path, k: int, statements: int) -> bool:
    """A partition written whole: its sidecar matches its statements and content."""
    side = _read_json(folder / f"part-{k:05d}.json")
    file = folder / f"part-{k:05d}.jsonl"
    return (
        isinstance(side, dict)
        and side.get("statements") == statements
        and file.is_file()
        and sha256_file(file) == side.get("sha256")
    )


def _wait(futures: list[Any], total: int, initial: int, progress: bool) -> None:
    from distributed import as_completed
    from tqdm import tqdm

    with tqdm(
        total=total, initial=initial, unit="stmt", desc="grounding", disable=not progress
    ) as bar:
        for future in as_completed(futures):
            bar.update(future.result())  # re-raises a worker's error here


# ---------------------------------------------------------------------- on the workers
_LINKERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _linker(setup: tuple[str, dict[str, Any], str | None, str | None]) -> Any:
    """This worker process's linker for ``setup``, loaded once (one spaCy pipeline and one
    linker index per worker, whatever the number of partitions it grounds)."""
    key = json.dumps(setup, sort_keys=True)
    if key not in _LINKERS:
        from kelm.linking.ground import _init_worker

        _init_worker(*setup)  # the process-pool initialiser: same loading, same options
        from kelm.linking import ground

        _LINKERS[key] = ground._WORKER
    return _LINKERS[key]


def ground_partition(
    setup: tuple[str, dict[str, Any], str | None, str | None],
    rows: list[tuple[str, str, str, str, str]],
    folder: str,
    k: int,
    batch_size: int,
) -> int:
    """Ground one partition into ``part-k.jsonl`` (then its sidecar); return its statements."""
    target = Path(folder) / f"part-{k:05d}.jsonl"
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}-{threading.get_ident()}")
    with _LOCK:  # threads of one worker share its pipeline: one partition at a time
        linker = _linker(setup)
        writer = GroundedWriter(tmp, linker.names)
        try:
            for a in range(0, len(rows), batch_size):
                batch = rows[a : a + batch_size]
                groundings = linker.ground([(r[2], r[4]) for r in batch])
                writer.write(
                    [
                        (
                            SimpleNamespace(id=r[0], question=r[1]),
                            SimpleNamespace(label=r[3], text=r[4]),
                        )
                        for r in batch
                    ],
                    groundings,
                )
        except BaseException:
            writer.close()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        writer.close()
    replace_file(tmp, target)
    write_json(
        target.with_suffix(".json"), {"statements": len(rows), "sha256": sha256_file(target)}
    )
    return len(rows)

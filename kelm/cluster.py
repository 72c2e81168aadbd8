"""Dask clusters for the commands that accept ``--scheduler`` (graph builds, grounding).

``--scheduler`` takes:

* ``local`` -- a ``LocalCluster`` on this machine: ``workers`` processes of one thread each;
* ``slurm:CONFIG`` -- a ``dask_jobqueue.SLURMCluster`` from a YAML file whose ``cluster``
  mapping holds ``SLURMCluster``'s arguments (``cores``, ``memory``, ``queue``, ``account``,
  ``walltime``, ``job_extra_directives``, ...) and whose ``jobs`` (default 1) is the number of
  SLURM jobs to start (see ``scripts/slurm/``);
* anything else -- the address of a running scheduler (``tcp://host:8786``), e.g. one started
  by ``dask scheduler`` and ``dask worker`` on the nodes of a cluster.

Dask is an optional dependency (``pip install 'kelm[distributed]'``; SLURM also needs
``dask-jobqueue``): without it ``--scheduler`` is an error naming the package.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kelm.errors import KelmError


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise KelmError(
            f"--scheduler needs {package}, which is not installed: pip install '{package}'"
        ) from None


def read_slurm_config(path: str | Path) -> tuple[dict[str, Any], int]:
    """The ``SLURMCluster`` arguments and the number of jobs of a ``slurm:CONFIG`` file."""
    import yaml

    from kelm._io import read_small_text

    path = Path(path)
    text = read_small_text(path, what="SLURM cluster config", error=KelmError)
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KelmError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise KelmError(
            f"{path}: expected a mapping with a 'cluster' mapping of SLURMCluster options"
        )
    jobs = config.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise KelmError(f"{path}: 'jobs' must be a positive integer, not {jobs!r}")
    unknown = set(config) - {"cluster", "jobs"}
    if unknown:
        raise KelmError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (cluster, jobs)")
    return dict(config["cluster"]), jobs


@contextlib.contextmanager
def dask_client(scheduler: str, *, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (see the module docstring), closed after.

    Raises:
        KelmError: Dask (or dask-jobqueue) missing, a bad config, or no scheduler at the
            address.
    """
    if not scheduler.strip():
        raise KelmError("--scheduler is blank: give local, slurm:CONFIG or a scheduler address")
    distributed = _require("distributed", "dask[distributed]")
    # The scheduler's and nannies' start/stop chatter is not the command's output.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if workers is not None and workers < 1:
        raise KelmError(f"--workers must be at least 1, not {workers}")
    if scheduler == "local":
        n = workers or max(1, min(4, os.cpu_count() or 1))
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
    elif scheduler.startswith("slurm:"):
        options, jobs = read_slurm_config(scheduler[len("slurm:") :])
        jobqueue = _require("dask_jobqueue", "dask-jobqueue")
        try:
            cluster = jobqueue.SLURMCluster(**options)
        except (TypeError, ValueError) as exc:
            raise KelmError(f"{scheduler}: invalid SLURMCluster options ({exc})") from None
        cluster.scale(jobs=jobs)
    else:
        cluster = None
    try:
        if cluster is None:
            try:
                client = distributed.Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise KelmError(
                    f"--scheduler {scheduler!r}: no Dask scheduler reachable there ({exc}); "
                    "give local, slurm:CONFIG or a scheduler address such as tcp://host:8786"
                ) from None
        else:
            client = distributed.Client(cluster)
        with client:
            if cluster is not None and scheduler.startswith("slurm:"):
                client.wait_for_workers(1)
            yield client
    finally:
        if cluster is not None:
            cluster.close()

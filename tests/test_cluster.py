"""``--scheduler`` values: SLURM configs (the shipped example builds a job script), errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kelm.cluster import dask_client, read_slurm_config
from kelm.errors import KelmError

EXAMPLE = Path(__file__).resolve().parents[1] / "scripts" / "slurm" / "dask-cluster.yaml"


def test_example_config_makes_a_slurm_job_script():
    jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed")
    options, jobs = read_slurm_config(EXAMPLE)
    assert jobs == 4
    cluster = jobqueue.SLURMCluster(**options)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p cpu" in script and "#SBATCH -A my-project" in script
    assert "--nworkers 8" in script


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a mapping with a 'cluster' mapping"),
        ("cluster: {cores: 2}\njobs: 0", "'jobs' must be a positive integer"),
        ("cluster: {cores: 2}\nworkers: 3", "unknown key"),
        ("cluster: [", "not valid YAML"),
    ],
)
def test_bad_slurm_configs_are_one_line_errors(tmp_path, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(KelmError, match=message):
        read_slurm_config(config)


def test_blank_scheduler_and_bad_worker_counts(tmp_path):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    with pytest.raises(KelmError, match="blank"), dask_client("  "):
        pass
    with pytest.raises(KelmError, match="at least 1"), dask_client("local", workers=0):
        pass

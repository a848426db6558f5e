"""Fixtures of the Dask tests: a real cluster (a `dask scheduler` and two `dask worker`s on 127.0.0.1)
bound to the session's real Prefect server, and the three-group training runs the tests read.

The runs are module-scoped: one training run on the cluster and one in this process with the same
settings and seeds, shared by the tests that check where the groups ran, what they produced and
what was stored (tests/dask/runs.py has the settings and helpers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dask.runs import REPO, TrainingRun, train_three_groups
from tests.harness.ci import running
from tests.harness.dask_cluster import DaskCluster
from tests.harness.prefect_server import PrefectServer


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer) -> Iterator[DaskCluster]:
    """A scheduler and two one-thread workers whose tasks report to the session's Prefect server."""
    env = prefect_server.env(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2, env=env, cwd=REPO)
    with running(cluster, "Dask cluster") as started:
        yield started


@pytest.fixture(scope="module")
def cluster_run(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer, dask_cluster: DaskCluster
) -> TrainingRun:
    """Three small groups trained on the cluster, demo data."""
    return train_three_groups(prefect_server, tmp_path_factory.mktemp("on-dask"), dask_address=dask_cluster.address)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer) -> TrainingRun:
    """The same three groups, same settings and seeds, trained in this process (Prefect's default runner)."""
    return train_three_groups(prefect_server, tmp_path_factory.mktemp("local"), dask_address=None)


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"

"""Fixtures of the deployment tests: the deployments registered from prefect.yaml on the session's
real Prefect server (tests/conftest.py's `prefect_server`), with a process worker serving them
(tests/deploy/deployments.py has the names and helpers).

The slow parts (a `prefect deploy`, a worker, a training run) happen once per session and are
shared by the tests that need them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deployments import (
    PAST_SESSION,
    PROCESS_DEPLOYMENTS,
    PROCESS_POOL,
    REPO,
    TINY_SETTINGS,
    registered_and_paused,
    run_deployment,
)
from tests.harness.prefect_server import PrefectServer, PrefectWorker


@pytest.fixture(scope="session")
def process_deployments(prefect_server: PrefectServer) -> dict[str, Any]:
    """`prefect --no-prompt deploy` of both process deployments, read back from the API by name.

    Their schedules are paused right after they are read (`registered_and_paused`): a scheduled run
    would write into the repository's data/ folder.
    """
    prefect_server.create_work_pool(PROCESS_POOL, type="process")
    names = [arg for name in PROCESS_DEPLOYMENTS for arg in ("--name", name)]
    prefect_server.cli("--no-prompt", "deploy", *names, cwd=REPO, timeout=300)
    return registered_and_paused(prefect_server, PROCESS_DEPLOYMENTS)


@pytest.fixture(scope="session")
def process_worker(prefect_server: PrefectServer, process_deployments: dict[str, Any]) -> Iterator[PrefectWorker]:
    """A `prefect worker start --pool market-forecast-process`, started outside the repository.

    It does not matter where the worker starts: each flow run's pull step (recorded by
    `prefect deploy`) moves it into the checkout.
    """
    worker = prefect_server.start_worker(PROCESS_POOL, cwd=prefect_server.home)
    yield worker
    prefect_server.stop_worker(worker)


@pytest.fixture(scope="session")
def model_store(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer, process_worker: PrefectWorker
) -> Path:
    """An output_dir holding a champion, trained by a run of train-model/train-model-process."""
    store = tmp_path_factory.mktemp("model-store")
    run = run_deployment(
        prefect_server,
        "train-model/train-model-process",
        {"as_of": PAST_SESSION, "output_dir": str(store), "settings": TINY_SETTINGS},
    )
    assert run.command.returncode == 0, f"training run failed:\n{run.output[-4000:]}\n{process_worker.log_tail()}"
    assert (store / "models" / "champion.json").is_file(), f"no champion promoted:\n{run.output[-4000:]}"
    return store

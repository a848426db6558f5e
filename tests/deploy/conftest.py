"""Shared pieces of the deployment tests: the repository's deployment files, parsed, and the
deployments registered from prefect.yaml on the session's real Prefect server (tests/conftest.py's
`prefect_server`), with a process worker serving them.

The slow parts (a `prefect deploy`, a worker, a training run) happen once per session and are
shared by the tests that need them.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
LOCK_FILE = REPO / "requirements.lock"
RUNTIME_LOCK_FILE = REPO / "requirements-runtime.lock"

PROCESS_POOL = "market-forecast-process"
DOCKER_POOL = "market-forecast-docker"
PROCESS_DEPLOYMENTS = {"daily-forecast-process": "daily-forecast", "train-model-process": "train-model"}
DOCKER_DEPLOYMENTS = {"daily-forecast-docker": "daily-forecast", "train-model-docker": "train-model"}

DAILY_CRON = "30 9 * * 1-5"
WEEKLY_CRON = "0 18 * * 0"
MARKET_TZ = "America/New_York"

# A past NYSE session (a Friday) the runs are replayed for.
PAST_SESSION = "2026-11-20"

# Tiny training for the champion the daily run needs: seconds, and a gate it always passes.
TINY_SETTINGS: dict[str, Any] = {
    "history_start": "2023-01-01",
    "epochs": 2,
    "lstm_units": 4,
    "batch_size": 64,
    "level_window": 20,
    "backtest": {"origin_step": 5},
    "champion_gate": {"max_mase": 100},
}

RUN_TIMEOUT_SECONDS = 240
_UUID_LINE = re.compile(r"UUID:\s*([0-9a-f-]{36})")


def origin_url_without_credentials() -> str:
    """The checkout's `origin` URL as the image's source label carries it ("" without a remote)."""
    proc = subprocess.run(["git", "remote", "get-url", "origin"], cwd=REPO, capture_output=True, text=True)
    return re.sub(r"://[^/@]*@", "://", proc.stdout.strip()) if proc.returncode == 0 else ""


def load_prefect_yaml() -> dict[str, Any]:
    """prefect.yaml as Prefect reads it (yaml.safe_load, anchors resolved)."""
    return yaml.safe_load(PREFECT_YAML.read_text())


def deployment_configs() -> dict[str, dict[str, Any]]:
    """The deployments of prefect.yaml by name."""
    return {d["name"]: d for d in load_prefect_yaml()["deployments"]}


@dataclass(frozen=True)
class DeploymentRun:
    """A `prefect deployment run ... --watch` call and the flow run it created (if any)."""

    command: subprocess.CompletedProcess[str]
    flow_run_id: UUID | None

    @property
    def output(self) -> str:
        return self.command.stdout + self.command.stderr


def run_deployment(server: Any, name: str, params: Mapping[str, Any], *, watch: bool = True) -> DeploymentRun:
    """`prefect deployment run '<name>' -p k=v ... [--watch]` against the test server.

    Values are passed as the CLI takes them: JSON for dicts and numbers, plain text for strings.
    """
    args = ["deployment", "run", name]
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += ["-p", f"{key}={text}"]
    if watch:
        args += ["--watch", "--watch-timeout", str(RUN_TIMEOUT_SECONDS)]
    proc = server.cli(*args, cwd=REPO, check=False, timeout=RUN_TIMEOUT_SECONDS + 60)
    found = _UUID_LINE.search(proc.stdout)
    return DeploymentRun(proc, UUID(found.group(1)) if found else None)


def wait_for_final_state(server: Any, flow_run_id: UUID, timeout: float = RUN_TIMEOUT_SECONDS) -> Any:
    """The flow run once it is in a final state (read through the API)."""
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {flow_run_id} not final after {timeout} s: {flow_run.state}")
            time.sleep(1)


def worker_log(worker: Any) -> str:
    """The tail of a worker's log, for assertion messages."""
    try:
        return "\n".join(Path(worker.log_path).read_text(errors="replace").splitlines()[-60:])
    except OSError:
        return "<no worker log>"


@pytest.fixture(scope="session")
def process_deployments(prefect_server: Any) -> dict[str, Any]:
    """`prefect --no-prompt deploy` of both process deployments, read back from the API by name.

    Their schedules are paused right after they are read, so that no scheduled run (09:30 New York
    on a weekday, 18:00 on Sunday) can start in the middle of the session and write into the
    repository's data/ folder.
    """
    prefect_server.create_work_pool(PROCESS_POOL, type="process")
    names = [arg for name in PROCESS_DEPLOYMENTS for arg in ("--name", name)]
    prefect_server.cli("--no-prompt", "deploy", *names, cwd=REPO, timeout=300)
    registered: dict[str, Any] = {}
    with prefect_server.client() as client:
        for deployment_name, flow_name in PROCESS_DEPLOYMENTS.items():
            registered[deployment_name] = client.read_deployment_by_name(f"{flow_name}/{deployment_name}")
        for deployment in registered.values():
            for schedule in deployment.schedules:
                client.update_deployment_schedule(deployment.id, schedule.id, active=False)
        # Runs the scheduler may have created in between are removed as well.
        ids = [d.id for d in registered.values()]
        for flow_run in client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids))):
            client.delete_flow_run(flow_run.id)
    return registered


@pytest.fixture(scope="session")
def process_worker(prefect_server: Any, process_deployments: dict[str, Any]) -> Iterator[Any]:
    """A `prefect worker start --pool market-forecast-process`, started outside the repository.

    It does not matter where the worker starts: each flow run's pull step (recorded by
    `prefect deploy`) moves it into the checkout.
    """
    worker = prefect_server.start_worker(PROCESS_POOL, cwd=prefect_server.home)
    yield worker
    prefect_server.stop_worker(worker)


@pytest.fixture(scope="session")
def model_store(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: Any, process_worker: Any
) -> Path:
    """An output_dir holding a champion, trained by a run of train-model/train-model-process."""
    store = tmp_path_factory.mktemp("model-store")
    run = run_deployment(
        prefect_server,
        "train-model/train-model-process",
        {"as_of": PAST_SESSION, "output_dir": str(store), "settings": TINY_SETTINGS},
    )
    assert run.command.returncode == 0, f"training run failed:\n{run.output[-4000:]}\n{worker_log(process_worker)}"
    assert (store / "models" / "champion.json").is_file(), f"no champion promoted:\n{run.output[-4000:]}"
    return store

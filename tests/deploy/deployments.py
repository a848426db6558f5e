"""What the deployment tests share: the repository's deployment files, parsed, the names and
schedules prefect.yaml must register, and `prefect deployment run` against the session's server.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from tests.harness.prefect_server import PrefectServer
from tests.harness.settings import promoting_settings

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
LOCK_FILE = REPO / "requirements.lock"
PROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# The images' locks, by Dockerfile target.
IMAGE_LOCK_FILES = {"daily": REPO / "requirements-daily.lock", "training": REPO / "requirements-training.lock"}

PROCESS_POOL = "market-forecast-process"
DOCKER_POOL = "market-forecast-docker"
PROCESS_DEPLOYMENTS = {"daily-forecast-process": "daily-forecast", "train-model-process": "train-model"}
DOCKER_DEPLOYMENTS = {"daily-forecast-docker": "daily-forecast", "train-model-docker": "train-model"}

DAILY_CRON = "30 9 * * 1-5"
WEEKLY_CRON = "0 18 * * 0"
MARKET_TZ = "America/New_York"

# A past NYSE session (a Friday) the runs are replayed for.
PAST_SESSION = "2026-11-20"

# Tiny training for the champion the daily run needs: seconds, and a gate it always passes. As the
# `settings` parameter of a deployment run: the fields promoting_settings() sets, as JSON.
TINY_SETTINGS: dict[str, Any] = promoting_settings().model_dump(mode="json", exclude_unset=True)

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


def registered_and_paused(server: PrefectServer, deployments: Mapping[str, str]) -> dict[str, Any]:
    """Deployments (name -> flow name) read back from the API, their schedules paused at once.

    Runs the scheduler may have created in between are deleted too, so that no scheduled run (09:30
    New York on a weekday, 18:00 on Sunday) starts in the middle of the session.
    """
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with server.client() as client:
        registered = {name: client.read_deployment_by_name(f"{flow}/{name}") for name, flow in deployments.items()}
        for deployment in registered.values():
            for schedule in deployment.schedules:
                client.update_deployment_schedule(deployment.id, schedule.id, active=False)
        ids = [d.id for d in registered.values()]
        for flow_run in client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids))):
            client.delete_flow_run(flow_run.id)
    return registered


def run_deployment(server: PrefectServer, name: str, params: Mapping[str, Any], *, watch: bool = True) -> DeploymentRun:
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

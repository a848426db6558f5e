"""What the container tests share: the stack's parts and how a test runs a deployment in it.

The session fixtures that build the stack are in tests/docker/conftest.py.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.deploy.deployments import DOCKER_DEPLOYMENTS, REPO, TINY_SETTINGS
from tests.harness.docker_engine import DockerEngine
from tests.harness.flow_runs import wait_for_state
from tests.harness.fred_server import FredServer
from tests.harness.prefect_server import PrefectServer
from tests.harness.smtp import SmtpSink

IMAGE_REPOSITORY = "market-forecast"
TRAIN = "train-model/train-model-docker"
DAILY = "daily-forecast/daily-forecast-docker"
# The Dockerfile target each Docker deployment builds and runs (prefect.yaml's build steps).
DEPLOYMENT_TARGETS = {"daily-forecast-docker": "daily", "train-model-docker": "training"}
RECIPIENT = "ops@example.org"
SMTP_USER = "market-forecast-alerts"
AZURE_CONTAINER = "market-forecast-docker-tests"
FLOW_RUN_LABEL = "io.prefect.flow-run-id"  # prefect-docker's label of a flow run's container
RUN_TIMEOUT_SECONDS = 420  # a cold container on a busy 2-core machine: TensorFlow import included
DEPLOY_TIMEOUT_SECONDS = 1800  # the cold image build (TensorFlow's wheel) and the push

# What every test run adds to the deployment's job variables (`prefect deployment run
# --job-variable key=<json>`); stream_output (true) and auto_remove (false) are prefect.yaml's own.
TEST_JOB_VARIABLES: dict[str, Any] = {
    "image_pull_policy": "Always",  # production: IfNotPresent (tags are commits)
    "network_mode": "host",  # what prefect-docker picks by itself for an API on 127.0.0.1
    "container_create_kwargs": {"extra_hosts": {"host.docker.internal": "127.0.0.1"}},
}

# The demo history the FRED-compatible servers serve, up to the day after the last as_of used.
FRED_DATA_END = date(2026, 11, 23)


class LoginSmtpSink(SmtpSink):
    """An SmtpSink that accepts mail only after AUTH with one user name and password (no TLS)."""

    def __init__(self, username: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        super().__init__()
        self.logins: list[bool] = []

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == username.encode()
                and auth_data.password == password.encode()
            )
            self.logins.append(ok)
            return AuthResult(success=ok)

        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=False,
        )


@dataclass
class Secrets:
    """The credentials the blocks hold; none of them may show up around a container."""

    fred_api_key: str = field(default_factory=lambda: secrets.token_hex(16))  # 32 lower-case hex
    smtp_password: str = field(default_factory=lambda: f"smtp-{secrets.token_urlsafe(18)}")
    azure_connection_string: str = ""
    azure_account_key: str = ""

    def values(self) -> dict[str, str]:
        return {
            "FRED API key": self.fred_api_key,
            "SMTP password": self.smtp_password,
            "Azure account key": self.azure_account_key,
            "Azure connection string": self.azure_connection_string,
        }


@dataclass
class DockerStack:
    """What the container tests share."""

    engine: DockerEngine
    server: PrefectServer
    sink: LoginSmtpSink
    fred: FredServer
    fred_slow: FredServer
    fred_down: FredServer
    azurite: Any
    secrets: Secrets
    base_image: str
    git_sha: str
    images: dict[str, str]  # Dockerfile target -> <registry>/market-forecast:<git sha>-<target>
    deployments: dict[str, Any]
    deploy_output: str
    deploy_seconds: float
    worker: Any
    log_dir: Path

    def run(
        self,
        name: str,
        params: Mapping[str, Any],
        *,
        watch: bool = False,
        job_variables: Mapping[str, Any] | None = None,
    ) -> tuple[UUID | None, subprocess.CompletedProcess[str]]:
        """`prefect deployment run '<name>' -p k=v ... --job-variable k=<json> ...` [--watch]."""
        args = ["deployment", "run", name]
        for key, value in params.items():
            args += ["-p", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
        for key, value in {**TEST_JOB_VARIABLES, **(job_variables or {})}.items():
            args += ["--job-variable", f"{key}={json.dumps(value)}"]
        if watch:
            args += ["--watch", "--watch-timeout", str(RUN_TIMEOUT_SECONDS)]
        proc = self.server.cli(*args, cwd=REPO, check=False, timeout=RUN_TIMEOUT_SECONDS + 60)
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", proc.stdout)
        return (UUID(found.group(1)) if found else None), proc

    def start_slow_training(self, as_of: str) -> UUID:
        """A training run (tiny settings) on the FRED server that never answers (block `fred-slow`):
        it stays in its fetch stage (see `wait_until_fred_slow_asked`)."""
        settings = {**TINY_SETTINGS, "fetch": {"timeout_seconds": 600}}
        run_id, proc = self.run(TRAIN, {"as_of": as_of, "fred_block": "fred-slow", "settings": settings})
        assert run_id is not None, proc.stdout + proc.stderr
        return run_id

    def wait_until_fred_slow_asked(self, *, beyond: int = 0, timeout: float = 300) -> None:
        """Until the slow FRED server has more than `beyond` requests: a run is waiting in its fetch stage."""
        deadline = time.monotonic() + timeout
        while len(self.fred_slow.requests()) <= beyond:
            assert time.monotonic() < deadline, f"the run never asked FRED\n{self.worker_log()}"
            time.sleep(0.2)

    def wait_final(self, flow_run_id: UUID, timeout: float = RUN_TIMEOUT_SECONDS) -> Any:
        return wait_for_state(self.server, flow_run_id, lambda r: r.state.is_final(), timeout=timeout, what="final")

    def image_of(self, deployment: str) -> str:
        """The image a deployment runs: the daily image for daily-forecast, the training one else."""
        return self.images[DEPLOYMENT_TARGETS[deployment]]

    def containers(self, flow_run_id: UUID) -> list[Any]:
        """The containers the worker created for a flow run (docker-py Container objects)."""
        with self.engine.session() as client:
            found = client.containers.list(all=True, filters={"label": f"{FLOW_RUN_LABEL}={flow_run_id}"})
            for container in found:
                container.reload()
            return found

    def container(self, flow_run_id: UUID) -> Any:
        found = self.containers(flow_run_id)
        assert len(found) == 1, (
            f"expected one container for flow run {flow_run_id}, found {len(found)}\n{self.worker_log()}"
        )
        return found[0]

    def worker_log(self, lines: int = 80) -> str:
        return str(self.worker.log_tail(lines))


def git_sha() -> str:
    """The commit `prefect deploy` tags the image with (prefect.yaml's git-sha step)."""
    proc = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"the image is tagged with the commit; `git rev-parse` failed: {proc.stderr}")
    return proc.stdout.strip()


def demo_fred(api_key: str) -> FredServer:
    """A started FRED-compatible server with the demo history of the default series."""
    from tasks.core.demo import generate_demo_series
    from tasks.core.settings import Settings

    return FredServer(generate_demo_series(Settings().series, FRED_DATA_END), api_key=api_key).start()


def deploy_docker_flavour(server: PrefectServer, engine: DockerEngine, base: str, log_path: Path) -> tuple[str, float]:
    """`prefect --no-prompt deploy` of both Docker deployments; its output goes to `log_path`."""
    names = [arg for name in DOCKER_DEPLOYMENTS for arg in ("--name", name)]
    env = server.env(
        MARKET_FORECAST_IMAGE=f"{engine.registry}/{IMAGE_REPOSITORY}",
        MARKET_FORECAST_BASE_IMAGE=base,
        **engine.env(),
    )
    began = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [server.prefect_executable, "--no-prompt", "deploy", *names],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=DEPLOY_TIMEOUT_SECONDS,
        )
    seconds = time.monotonic() - began
    output = log_path.read_text(errors="replace")
    assert proc.returncode == 0, f"prefect deploy (build and push) failed:\n{output[-6000:]}"
    return output, seconds


def container_text(container: Any) -> str:
    """Everything `docker logs` and `docker inspect` show of a container."""
    logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
    return logs + "\n" + json.dumps(container.attrs, default=str)

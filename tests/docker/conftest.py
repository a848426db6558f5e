"""The container tests' stack: a real Docker engine and registry, the project's image built and
pushed by `prefect deploy`, a Docker worker, and the services the containers talk to.

Everything here is made once per session (the image build is the expensive part):

- `docker_engine`: tests/harness/docker_engine.py (the user's engine or a private dockerd) with a
  private `docker-registry` on 127.0.0.1;
- `base_image`: the stand-in for python:3.11-slim (Debian packages; cached between sessions);
- `stack`: a Prefect server of its own (so the production tag `market-forecast` and the
  production block names can be used without meeting other test folders' runs), an SMTP sink
  that requires a login, three FRED-compatible servers (healthy, slow, failing), a container on
  the session's Azurite; the blocks made by `python -m blocks setup --create-container`, the
  alert automations by `python -m blocks automations`; the `market-forecast-docker` work pool;
  `prefect --no-prompt deploy --name daily-forecast-docker --name train-model-docker` from the
  repository (prefect.yaml's build and push steps: the image built from `Dockerfile` on the
  stand-in base and pushed to the registry); and `prefect worker start --pool
  market-forecast-docker` with DOCKER_HOST set.

Runs are started with `prefect deployment run` and the job variables of TEST_JOB_VARIABLES: the
image is pulled from the registry for every run (`Always`), the containers use the host's
network (the services are on 127.0.0.1) and are kept after they exit (their logs and
`docker inspect` are read by the tests; the engine is removed at the end of the session).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.alerts.conftest import SmtpSink, run_blocks_command, wait_for_state
from tests.conftest import unavailable
from tests.deploy.conftest import DOCKER_DEPLOYMENTS, DOCKER_POOL, REPO
from tests.fred_server import Fault, FredServer
from tests.harness.docker_engine import DockerEngine, DockerUnavailable, ensure_base_image
from tests.prefect_server import PrefectServer

IMAGE_REPOSITORY = "market-forecast"
RECIPIENT = "ops@example.org"
SMTP_USER = "market-forecast-alerts"
AZURE_CONTAINER = "market-forecast-docker-tests"
HOOK_GRACE_SECONDS = 20  # the failure automation's wait for the hook (production: 60)
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
    image: str  # <registry>/market-forecast:<git sha>, what the deployments run
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

    def wait_final(self, flow_run_id: UUID, timeout: float = RUN_TIMEOUT_SECONDS) -> Any:
        return wait_for_state(self.server, flow_run_id, lambda r: r.state.is_final(), timeout=timeout, what="final")

    def containers(self, flow_run_id: UUID) -> list[Any]:
        """The containers the worker created for a flow run (docker-py Container objects)."""
        with self.engine.session() as client:
            found = client.containers.list(all=True, filters={"label": f"{FLOW_RUN_LABEL}={flow_run_id}"})
            for container in found:
                container.reload()
            return found

    def container(self, flow_run_id: UUID) -> Any:
        found = self.containers(flow_run_id)
        assert len(found) == 1, f"expected one container for flow run {flow_run_id}, found {len(found)}\n{self.worker_log()}"
        return found[0]

    def worker_log(self, lines: int = 80) -> str:
        try:
            return "\n".join(Path(self.worker.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no worker log>"


def git_sha() -> str:
    """The commit `prefect deploy` tags the image with (prefect.yaml's git-sha step)."""
    proc = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"the image is tagged with the commit; `git rev-parse` failed: {proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A Docker engine and a private registry for the session (stopped at its end)."""
    engine = DockerEngine()
    try:
        engine.start()
    except DockerUnavailable as exc:
        unavailable(f"no Docker engine for the container tests: {exc}")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    """The stand-in for python:3.11-slim, from the cache or built (debootstrap)."""
    try:
        return ensure_base_image(docker_engine)
    except DockerUnavailable as exc:
        unavailable(f"the stand-in base image could not be made: {exc}")
        raise  # unreachable: unavailable() fails or skips


def _demo_fred(api_key: str) -> FredServer:
    from tasks.demo import generate_demo_series
    from tasks.settings import Settings

    return FredServer(generate_demo_series(Settings().series, FRED_DATA_END), api_key=api_key).start()


def _deploy(server: PrefectServer, engine: DockerEngine, base: str, log_path: Path) -> tuple[str, float]:
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


@pytest.fixture(scope="session")
def stack(
    docker_engine: DockerEngine, base_image: str, azurite: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerStack]:
    """The deployed image, a Docker worker and the services, for every container test."""
    from blocks.fred import FredCredentials
    from tests.azurite_harness import ACCOUNT_KEY

    log_dir = tmp_path_factory.mktemp("docker-stack")
    keys = Secrets(azure_connection_string=azurite.connection_string, azure_account_key=ACCOUNT_KEY)
    server = PrefectServer(log_dir / "prefect")
    sink = LoginSmtpSink(SMTP_USER, keys.smtp_password)
    freds: list[FredServer] = []
    try:
        azurite.start()  # the session's Azurite, again if a test before stopped it (no-op if running)
        server.start()
        sink.start()
        fred, fred_slow, fred_down = (_demo_fred(keys.fred_api_key) for _ in range(3))
        freds += [fred, fred_slow, fred_down]
        # The slow server answers nothing for 10 minutes (a run is killed while it waits); the
        # failing one answers every request with HTTP 500.
        fred_slow.inject(*[Fault("timeout", delay=600)] * 50)
        fred_down.inject(*[500] * 500)
    except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
        for item in (*freds, sink, server):
            item.stop()
        unavailable(f"the container tests' services could not start: {exc}")

    env = server.env(
        FRED_API_KEY=keys.fred_api_key,
        FRED_API_URL=fred.url,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        EMAIL_SMTP_TYPE="INSECURE",
        EMAIL_USER=SMTP_USER,
        EMAIL_PASS=keys.smtp_password,
        NOTIFICATION_EMAIL=RECIPIENT,
        AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string,
        AZURE_CONTAINER_NAME=AZURE_CONTAINER,
    )
    worker = None
    try:
        setup = run_blocks_command(server, "setup", "--create-container", env=env)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        automations = run_blocks_command(server, "automations", "--hook-grace-seconds", str(HOOK_GRACE_SECONDS), env=server.env())
        assert automations.returncode == 0, automations.stdout + automations.stderr
        with server.settings():
            FredCredentials(api_key=keys.fred_api_key, api_url=fred_slow.url).save("fred-slow", overwrite=True)
            FredCredentials(api_key=keys.fred_api_key, api_url=fred_down.url).save("fred-down", overwrite=True)
        server.create_work_pool(DOCKER_POOL, type="docker")

        output, seconds = _deploy(server, docker_engine, base_image, log_dir / "deploy.log")
        deployments = _registered_and_paused(server)
        worker = server.start_worker(DOCKER_POOL, cwd=log_dir, extra_env=docker_engine.env(), ready_timeout=90)
        sha = git_sha()
        yield DockerStack(
            engine=docker_engine,
            server=server,
            sink=sink,
            fred=fred,
            fred_slow=fred_slow,
            fred_down=fred_down,
            azurite=azurite,
            secrets=keys,
            base_image=base_image,
            git_sha=sha,
            image=f"{docker_engine.registry}/{IMAGE_REPOSITORY}:{sha}",
            deployments=deployments,
            deploy_output=output,
            deploy_seconds=seconds,
            worker=worker,
            log_dir=log_dir,
        )
    finally:
        server.stop()  # the worker first
        for item in (*freds, sink):
            item.stop()


def _registered_and_paused(server: PrefectServer) -> dict[str, Any]:
    """The two Docker deployments read back; their schedules paused, scheduled runs deleted."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with server.client() as client:
        registered = {name: client.read_deployment_by_name(f"{flow}/{name}") for name, flow in DOCKER_DEPLOYMENTS.items()}
        for deployment in registered.values():
            for schedule in deployment.schedules:
                client.update_deployment_schedule(deployment.id, schedule.id, active=False)
        ids = [d.id for d in registered.values()]
        for flow_run in client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids))):
            client.delete_flow_run(flow_run.id)
    return registered


def container_text(container: Any) -> str:
    """Everything `docker logs` and `docker inspect` show of a container."""
    logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
    return logs + "\n" + json.dumps(container.attrs, default=str)

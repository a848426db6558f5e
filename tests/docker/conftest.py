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

from collections.abc import Iterator
from typing import Any

import pytest

from tests.alerts.stack import HOOK_GRACE_SECONDS, run_blocks_command
from tests.deploy.deployments import DOCKER_DEPLOYMENTS, DOCKER_POOL, registered_and_paused
from tests.docker.stack import (
    AZURE_CONTAINER,
    DEPLOYMENT_TARGETS,
    IMAGE_REPOSITORY,
    RECIPIENT,
    SMTP_USER,
    DockerStack,
    LoginSmtpSink,
    Secrets,
    demo_fred,
    deploy_docker_flavour,
    git_sha,
)
from tests.harness.ci import unavailable
from tests.harness.docker_engine import DockerEngine, DockerUnavailable, ensure_base_image
from tests.harness.fred_server import Fault, FredServer
from tests.harness.prefect_server import PrefectServer


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


@pytest.fixture(scope="session")
def stack(
    docker_engine: DockerEngine, base_image: str, azurite: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerStack]:
    """The deployed image, a Docker worker and the services, for every container test."""
    from blocks.fred import FredCredentials
    from tests.harness.azurite import ACCOUNT_KEY

    log_dir = tmp_path_factory.mktemp("docker-stack")
    keys = Secrets(azure_connection_string=azurite.connection_string, azure_account_key=ACCOUNT_KEY)
    server = PrefectServer(log_dir / "prefect")
    sink = LoginSmtpSink(SMTP_USER, keys.smtp_password)
    freds: list[FredServer] = []
    try:
        azurite.start()  # the session's Azurite, again if a test before stopped it (no-op if running)
        server.start()
        sink.start()
        fred, fred_slow, fred_down = (demo_fred(keys.fred_api_key) for _ in range(3))
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
        automations = run_blocks_command(
            server, "automations", "--hook-grace-seconds", str(HOOK_GRACE_SECONDS), env=server.env()
        )
        assert automations.returncode == 0, automations.stdout + automations.stderr
        with server.settings():
            FredCredentials(api_key=keys.fred_api_key, api_url=fred_slow.url).save("fred-slow", overwrite=True)
            FredCredentials(api_key=keys.fred_api_key, api_url=fred_down.url).save("fred-down", overwrite=True)
        server.create_work_pool(DOCKER_POOL, type="docker")

        output, seconds = deploy_docker_flavour(server, docker_engine, base_image, log_dir / "deploy.log")
        deployments = registered_and_paused(server, DOCKER_DEPLOYMENTS)
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
            images={
                target: f"{docker_engine.registry}/{IMAGE_REPOSITORY}:{sha}-{target}"
                for target in DEPLOYMENT_TARGETS.values()
            },
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

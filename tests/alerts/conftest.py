"""Shared pieces of the alerting tests: an SMTP sink (tests/harness/smtp.py), the project's alert
blocks and automations on the session's real Prefect server, a process work pool with a worker.

The automations are created for the tag `TEST_TAG` (not the production tag `market-forecast`, so
that other test folders' runs on the same server never reach them), with short windows:
HOOK_GRACE_SECONDS for the failure automation, DEADLINE_SECONDS for the daily deadline. Every
block, automation and deployment created here is removed at the end of the module that used it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.conftest import unavailable
from tests.harness.smtp import SmtpSink

REPO = Path(__file__).resolve().parents[2]
TEST_TAG = "mf-alerts-test"
WORK_POOL = "mf-alerts-pool"
IDLE_POOL = "mf-alerts-idle"  # no worker ever polls it: its runs go Late
HOOK_GRACE_SECONDS = 20  # production default 60; Prefect's minimum is 10, 20 leaves the hook room on a busy machine
DEADLINE_SECONDS = 60  # from Late or Running; a failing daily run (TF import included) finishes well within it
RECIPIENT = "ops@example.org"
UI_URL = "http://127.0.0.1:4200"
PAST_SESSION = "2026-11-20"  # a Friday, a NYSE session
ALERT_VARIABLES = (
    "FRED_API_KEY",
    "FRED_API_URL",
    "EMAIL_USER",
    "EMAIL_PASS",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_SMTP_TYPE",
    "EMAIL_FROM",
    "NOTIFICATION_EMAIL",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CONTAINER_NAME",
    "MARKET_FORECAST_ALERT_BLOCK",
)
DEFAULT_BLOCKS = (
    "fred-credentials/fred",
    "email-server-credentials/market-forecast-smtp",
    "email-alerts/market-forecast-alerts",
    "azure-blob-storage-credentials/market-forecast-azure",
    "azure-blob-storage-container/market-forecast",
)


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    try:
        sink = SmtpSink().start()
    except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
        unavailable(f"aiosmtpd could not start on 127.0.0.1: {exc}")
    yield sink
    sink.stop()


# ---------------------------------------------------------------- commands and cleanup


def clean_env(server: Any, **variables: str) -> dict[str, str]:
    """The server's client environment without any alert variable of the caller, plus `variables`."""
    env = server.env()
    for name in ALERT_VARIABLES:
        env.pop(name, None)
    env.update(variables)
    return env


def run_blocks_command(server: Any, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m blocks <args>` from the repository root, bound to the server."""
    return subprocess.run(
        [sys.executable, "-m", "blocks", *args],
        cwd=REPO,
        env=dict(env if env is not None else clean_env(server)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def delete_blocks(server: Any, references: tuple[str, ...]) -> None:
    """Delete block documents '<type-slug>/<name>' if they exist."""
    from prefect.exceptions import ObjectNotFound

    with server.client() as client:
        for reference in references:
            slug, _, name = reference.partition("/")
            try:
                document = client.read_block_document_by_name(name=name, block_type_slug=slug, include_secrets=False)
            except ObjectNotFound:
                continue
            client.delete_block_document(document.id)


def delete_automations(server: Any, tag: str) -> None:
    with server.client() as client:
        for automation in client.read_automations():
            if automation.name.startswith(f"{tag}: "):
                client.delete_automation(automation.id)


@dataclass
class AlertStack:
    """What the end-to-end alert tests share."""

    server: Any
    sink: SmtpSink
    worker: Any
    deployments: dict[str, UUID]
    setup_output: str
    automations_output: str

    def deploy(self, name: str, *, flow_name: str, entrypoint: str, pool: str = WORK_POOL, job_variables: dict[str, Any] | None = None) -> UUID:
        """A deployment of `entrypoint` run from this checkout (as `prefect deploy` records a process one)."""
        with self.server.client() as client:
            flow_id = client.create_flow_from_name(flow_name)
            deployment_id = client.create_deployment(
                flow_id=flow_id,
                name=name,
                entrypoint=entrypoint,
                work_pool_name=pool,
                tags=[TEST_TAG],
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}],
                job_variables=job_variables or {},
            )
        self.deployments[name] = deployment_id
        return deployment_id

    def run(self, deployment: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        with self.server.client() as client:
            return client.create_flow_run_from_deployment(self.deployments[deployment], parameters=parameters or {}, **kwargs)


@pytest.fixture(scope="module")
def alert_stack(prefect_server: Any, smtp_sink: SmtpSink) -> Iterator[AlertStack]:
    """Blocks and automations made by the project's own commands, a process pool and its worker."""
    server = prefect_server
    delete_blocks(server, DEFAULT_BLOCKS)
    delete_automations(server, TEST_TAG)
    env = clean_env(
        server,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_sink.port),
        EMAIL_SMTP_TYPE="INSECURE",
        NOTIFICATION_EMAIL=RECIPIENT,
    )
    setup = run_blocks_command(server, "setup", env=env)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    automations = run_blocks_command(
        server,
        "automations",
        "--tag", TEST_TAG,
        "--hook-grace-seconds", str(HOOK_GRACE_SECONDS),
        "--deadline-minutes", str(DEADLINE_SECONDS / 60),
        env=env,
    )  # fmt: skip
    assert automations.returncode == 0, automations.stdout + automations.stderr
    try:
        server.create_work_pool(WORK_POOL)
        server.create_work_pool(IDLE_POOL)
        worker = server.start_worker(
            WORK_POOL, cwd=REPO, extra_env={"PREFECT_UI_URL": UI_URL, "TF_CPP_MIN_LOG_LEVEL": "2"}, ready_timeout=90
        )
    except Exception as exc:  # noqa: BLE001
        unavailable(f"process work pool or worker could not start: {exc}")
    stack = AlertStack(server, smtp_sink, worker, {}, setup.stdout, automations.stdout)
    yield stack
    server.stop_worker(worker)
    with server.client() as client:
        for deployment_id in stack.deployments.values():
            with contextlib.suppress(Exception):
                client.delete_deployment(deployment_id)
    delete_automations(server, TEST_TAG)
    delete_blocks(server, (*DEFAULT_BLOCKS, "email-alerts/alerts-smtp-down"))


def settle_time(final_state_time: Any) -> float:
    """Seconds (time.time()) after which the failure automation has surely decided about a run."""
    return final_state_time.timestamp() + HOOK_GRACE_SECONDS + 8


def sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


"""Shared pieces of the alerting tests: an SMTP sink (aiosmtpd on 127.0.0.1), the project's alert
blocks and automations on the session's real Prefect server, a process work pool with a worker,
and helpers to wait for runs and e-mails.

The automations are created for the tag `TEST_TAG` (not the production tag `market-forecast`, so
that other test folders' runs on the same server never reach them), with short windows:
HOOK_GRACE_SECONDS for the failure automation, DEADLINE_SECONDS for the daily deadline. Every
block, automation and deployment created here is removed at the end of the module that used it.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.conftest import unavailable

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- SMTP sink


@dataclass(frozen=True)
class Mail:
    """One received e-mail, decoded."""

    received: float  # time.time()
    subject: str
    sender: str
    to: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.subject}\n{self.body}"


class SmtpSink:
    """aiosmtpd on 127.0.0.1 keeping every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        mail = Mail(time.time(), str(message["Subject"]), str(message["From"]), str(message["To"]), body)
        with self._lock:
            self._mails.append(mail)
        return "250 OK"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._controller.stop()

    @property
    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)

    def about(self, *needles: str) -> list[Mail]:
        """The e-mails whose subject or body contains every needle."""
        return [m for m in self.mails if all(n in m.text for n in needles)]

    def wait_for(self, *needles: str, timeout: float) -> Mail:
        """The first e-mail containing every needle; AssertionError (listing what came) after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.about(*needles)
            if found:
                return found[0]
            time.sleep(0.25)
        subjects = [m.subject for m in self.mails]
        raise AssertionError(f"no e-mail with {needles!r} within {timeout:.0f} s; received: {subjects}")


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


# ---------------------------------------------------------------- runs


def wait_for_state(server: Any, flow_run_id: UUID, done: Callable[[Any], bool], *, timeout: float, what: str) -> Any:
    """The flow run once `done(flow_run)`; AssertionError with its state after `timeout`."""
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state is not None and done(flow_run):
                return flow_run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {flow_run.name} not {what} after {timeout:.0f} s: {flow_run.state}")
            time.sleep(0.5)


def wait_for_final_state(server: Any, flow_run_id: UUID, *, timeout: float = 180) -> Any:
    return wait_for_state(server, flow_run_id, lambda r: r.state.is_final(), timeout=timeout, what="final")


def run_logs(server: Any, flow_run_id: UUID) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with server.client() as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def worker_log(worker: Any) -> str:
    try:
        return "\n".join(Path(worker.log_path).read_text(errors="replace").splitlines()[-60:])
    except OSError:
        return "<no worker log>"


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


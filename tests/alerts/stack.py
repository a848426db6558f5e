"""What the alerting tests share: their names and windows, the project's `python -m blocks`
commands run against the session's Prefect server, cleanup of what they create, and `AlertStack`.

The automations are created for the tag `TEST_TAG` (not the production tag `market-forecast`, so
that other test folders' runs on the same server never reach them), with short windows:
HOOK_GRACE_SECONDS for the failure automation, DEADLINE_SECONDS for the daily deadline.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from tests.harness.prefect_server import PrefectServer, PrefectWorker
from tests.harness.smtp import SmtpSink

REPO = Path(__file__).resolve().parents[2]
TEST_TAG = "mf-alerts-test"
WORK_POOL = "mf-alerts-pool"
IDLE_POOL = "mf-alerts-idle"  # no worker ever polls it: its runs go Late
# The failure automation's wait for the hook (production default 90), here and in the container tests:
# above the server's SQLite busy timeout (60 s). Once, the server stalled that long on a locked
# database right at a container run's Failed event, and with 20 s the automation e-mailed beside the hook.
HOOK_GRACE_SECONDS = 75
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


# ---------------------------------------------------------------- commands and cleanup


def clean_env(server: PrefectServer, **variables: str) -> dict[str, str]:
    """The server's client environment without any alert variable of the caller, plus `variables`."""
    env = server.env()
    for name in ALERT_VARIABLES:
        env.pop(name, None)
    env.update(variables)
    return env


def run_blocks_command(
    server: PrefectServer, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
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


def delete_blocks(server: PrefectServer, references: tuple[str, ...]) -> None:
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


def delete_automations(server: PrefectServer, tag: str) -> None:
    """Delete the automations `python -m blocks automations --tag <tag>` created."""
    with server.client() as client:
        for automation in client.read_automations():
            if automation.name.startswith(f"{tag}: "):
                client.delete_automation(automation.id)


@dataclass
class AlertStack:
    """What the end-to-end alert tests share."""

    server: PrefectServer
    sink: SmtpSink
    worker: PrefectWorker
    deployments: dict[str, UUID]
    setup_output: str
    automations_output: str

    def deploy(
        self,
        name: str,
        *,
        flow_name: str,
        entrypoint: str,
        pool: str = WORK_POOL,
        job_variables: dict[str, Any] | None = None,
    ) -> UUID:
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
            return client.create_flow_run_from_deployment(
                self.deployments[deployment], parameters=parameters or {}, **kwargs
            )


def settle_time(final_state_time: Any) -> float:
    """Seconds (time.time()) after which the failure automation has surely decided about a run."""
    return final_state_time.timestamp() + HOOK_GRACE_SECONDS + 8


def sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)

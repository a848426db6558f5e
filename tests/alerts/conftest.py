"""Fixtures of the alerting tests: the project's alert blocks and automations on the session's real
Prefect server, a process work pool with a worker (tests/alerts/stack.py has the pieces). Every
block, automation and deployment created here is removed at the end of the module that used it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.alerts.stack import (
    DEADLINE_SECONDS,
    DEFAULT_BLOCKS,
    HOOK_GRACE_SECONDS,
    IDLE_POOL,
    RECIPIENT,
    REPO,
    TEST_TAG,
    UI_URL,
    WORK_POOL,
    AlertStack,
    clean_env,
    delete_automations,
    delete_blocks,
    run_blocks_command,
)
from tests.harness.ci import unavailable
from tests.harness.prefect_server import PrefectServer
from tests.harness.smtp import SmtpSink


@pytest.fixture(scope="module")
def alert_stack(prefect_server: PrefectServer, smtp_sink: SmtpSink) -> Iterator[AlertStack]:
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

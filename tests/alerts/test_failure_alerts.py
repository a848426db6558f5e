"""End to end: a real Prefect server, a process worker, aiosmtpd, and the project's blocks and
automations made by `python -m blocks setup` / `python -m blocks automations`.

All four runs start at once (module fixture `launched`) so their waits overlap:
- failed:    the product's daily-forecast flow with an unknown fred_block -> its on_failure hook
             e-mails; the failure automation sees `market-forecast.alert.sent` and stays silent.
- killed:    a sample flow whose process is SIGKILLed -> Crashed, no hook ran -> the failure
             automation e-mails.
- late:      daily-forecast deployed to a pool no worker polls -> Late -> the deadline automation
             e-mails after DEADLINE_SECONDS.
- smtp down: a sample flow whose hook uses an alert block pointing at a closed port -> the run
             still ends Failed with its own error; the automation's e-mail comes instead.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.stack import (
    DEADLINE_SECONDS,
    HOOK_GRACE_SECONDS,
    IDLE_POOL,
    PAST_SESSION,
    RECIPIENT,
    UI_URL,
    AlertStack,
    settle_time,
    sleep_until,
)
from tests.harness.flow_runs import flow_run_logs, wait_for_final_state, wait_for_state
from tests.harness.process import free_port

pytestmark = pytest.mark.timeout(400)

AUTOMATION_MARK = "no alert came from inside the run"  # only the failure automation's body says this
DEADLINE_MARK = "not completed by its deadline"
SMTP_DOWN_BLOCK = "alerts-smtp-down"


@dataclass
class Launched:
    stack: AlertStack
    failed: Any
    killed: Any
    late: Any
    smtp_down: Any
    pid_file: Path


@pytest.fixture(scope="module")
def launched(alert_stack: AlertStack, tmp_path_factory: pytest.TempPathFactory) -> Launched:
    from prefect.states import Scheduled
    from prefect_email import EmailServerCredentials

    from blocks.notifications import EmailAlerts

    stack = alert_stack
    work = tmp_path_factory.mktemp("alert-runs")
    with stack.server.settings():
        EmailAlerts(
            email_server_credentials=EmailServerCredentials(
                smtp_server="127.0.0.1", smtp_port=free_port(), smtp_type="INSECURE"
            ),
            recipients=[RECIPIENT],
            timeout_seconds=5,
        ).save(SMTP_DOWN_BLOCK, overwrite=True)
    stack.deploy("daily", flow_name="daily-forecast", entrypoint="flows/daily_forecast.py:daily_forecast")
    stack.deploy(
        "daily-idle", flow_name="daily-forecast", entrypoint="flows/daily_forecast.py:daily_forecast", pool=IDLE_POOL
    )
    stack.deploy(
        "sleeping", flow_name="alerts-sample-sleeping", entrypoint="tests/alerts/sample_flows.py:sleeping_flow"
    )
    stack.deploy(
        "failing-smtp-down",
        flow_name="alerts-sample-failing",
        entrypoint="tests/alerts/sample_flows.py:failing_flow",
        job_variables={"env": {"MARKET_FORECAST_ALERT_BLOCK": f"email-alerts/{SMTP_DOWN_BLOCK}"}},
    )
    pid_file = work / "sleeping.pid"
    return Launched(
        stack=stack,
        failed=stack.run(
            "daily", {"as_of": PAST_SESSION, "fred_block": "no-such-fred-block", "output_dir": str(work / "data")}
        ),
        late=stack.run("daily-idle", {"as_of": PAST_SESSION}, state=Scheduled(scheduled_time=datetime.now(UTC))),
        killed=stack.run("sleeping", {"pid_file": str(pid_file)}),
        smtp_down=stack.run("failing-smtp-down", {"as_of": PAST_SESSION}),
        pid_file=pid_file,
    )


@pytest.fixture(scope="module")
def failed_run(launched: Launched) -> Any:
    flow_run = wait_for_final_state(launched.stack.server, launched.failed.id, timeout=240)
    assert flow_run.state.is_failed(), f"{flow_run.state}\n{launched.stack.worker.log_tail()}"
    return flow_run


@pytest.fixture(scope="module")
def killed_run(launched: Launched) -> Any:
    deadline = time.monotonic() + 180
    while not launched.pid_file.exists():
        assert time.monotonic() < deadline, f"the sleeping flow never started\n{launched.stack.worker.log_tail()}"
        time.sleep(0.25)
    time.sleep(0.5)  # the pid is written; let the file be complete
    os.kill(int(launched.pid_file.read_text()), signal.SIGKILL)
    return wait_for_final_state(launched.stack.server, launched.killed.id, timeout=60)


@pytest.fixture(scope="module")
def late_run(launched: Launched) -> Any:
    return wait_for_state(
        launched.stack.server, launched.late.id, lambda r: r.state.name == "Late", timeout=60, what="Late"
    )


@pytest.fixture(scope="module")
def smtp_down_run(launched: Launched) -> Any:
    return wait_for_final_state(launched.stack.server, launched.smtp_down.id, timeout=180)


# ---------------------------------------------------------------- a plain failure: the hook's e-mail


def test_failed_run_emails_run_name_error_task_as_of_and_link(launched: Launched, failed_run: Any) -> None:
    mail = launched.stack.sink.wait_for(failed_run.name, "Failed", timeout=30)

    assert failed_run.name == f"daily-{PAST_SESSION}"
    assert mail.to == RECIPIENT
    assert mail.subject == f"[market-forecast] daily-forecast: run {failed_run.name} Failed"
    assert "No FredCredentials block named 'no-such-fred-block'" in mail.body
    assert f"as_of:        {PAST_SESSION}" in mail.body
    assert "Failed task:  resolve-data-source" in mail.body
    assert f"{UI_URL}/runs/flow-run/{failed_run.id}" in mail.body


def test_failed_run_sends_exactly_one_email_the_hooks(launched: Launched, failed_run: Any) -> None:
    sleep_until(settle_time(failed_run.state.timestamp))

    mails = launched.stack.sink.about(failed_run.name)
    assert len(mails) == 1, [m.subject for m in mails]
    assert AUTOMATION_MARK not in mails[0].body  # the hook's, not the automation's


# ---------------------------------------------------------------- a killed process: the automation's e-mail


def test_killed_run_emails_through_the_automation(launched: Launched, killed_run: Any) -> None:
    mail = launched.stack.sink.wait_for(killed_run.name, "Crashed", timeout=HOOK_GRACE_SECONDS + 40)

    assert killed_run.state.name == "Crashed"
    assert AUTOMATION_MARK in mail.body
    assert mail.subject == f"[market-forecast] alerts-sample-sleeping: run {killed_run.name} Crashed"
    assert "SIGKILL" in mail.body or "-9" in mail.body
    assert str(killed_run.id) in mail.body


def test_killed_run_sends_exactly_one_email(launched: Launched, killed_run: Any) -> None:
    first = launched.stack.sink.wait_for(killed_run.name, timeout=HOOK_GRACE_SECONDS + 40)
    sleep_until(max(first.received, settle_time(killed_run.state.timestamp)) + 5)

    mails = launched.stack.sink.about(killed_run.name)
    assert len(mails) == 1, [m.subject for m in mails]


# ---------------------------------------------------------------- a run that never starts: the deadline e-mail


def test_late_run_emails_deadline_alert_naming_the_run(launched: Launched, late_run: Any) -> None:
    mail = launched.stack.sink.wait_for(late_run.name, DEADLINE_MARK, timeout=DEADLINE_SECONDS + 40)

    assert mail.subject == f"[market-forecast] daily-forecast: run {late_run.name} {DEADLINE_MARK}"
    assert "Last seen: Late" in mail.body
    assert f"Work pool:       {IDLE_POOL}" in mail.body
    with launched.stack.server.client() as client:
        assert client.read_flow_run(late_run.id).state.name == "Late"  # it really never started


def test_late_run_sends_exactly_one_email(launched: Launched, late_run: Any) -> None:
    first = launched.stack.sink.wait_for(late_run.name, timeout=DEADLINE_SECONDS + 40)
    sleep_until(first.received + 10)  # the trigger's bucket is gone once it fired; nothing else may come

    mails = launched.stack.sink.about(late_run.name)
    assert len(mails) == 1, [m.subject for m in mails]


# ---------------------------------------------------------------- SMTP down for the hook


def test_smtp_outage_keeps_the_original_error_in_the_final_state(launched: Launched, smtp_down_run: Any) -> None:
    assert smtp_down_run.state.is_failed()
    assert smtp_down_run.state.name == "Failed"
    assert "SampleFailure: prices for 2026-11-20 could not be loaded: sample outage 7f3a" in smtp_down_run.state.message
    logs = "\n".join(flow_run_logs(smtp_down_run.id, server=launched.stack.server))
    assert "The failure alert could not be sent" in logs
    assert "ConnectionRefusedError" in logs


def test_smtp_outage_for_the_hook_falls_back_to_one_automation_email(launched: Launched, smtp_down_run: Any) -> None:
    mail = launched.stack.sink.wait_for(smtp_down_run.name, timeout=HOOK_GRACE_SECONDS + 40)
    sleep_until(max(mail.received, settle_time(smtp_down_run.state.timestamp)) + 3)

    assert AUTOMATION_MARK in mail.body
    assert "sample outage 7f3a" in mail.body
    assert len(launched.stack.sink.about(smtp_down_run.name)) == 1


# ---------------------------------------------------------------- all cases together


def test_four_cases_produce_four_emails_in_all(
    launched: Launched, failed_run: Any, killed_run: Any, late_run: Any, smtp_down_run: Any
) -> None:
    runs = [failed_run, killed_run, late_run, smtp_down_run]
    finals = [r.state.timestamp for r in (failed_run, killed_run, smtp_down_run)]
    sleep_until(max(settle_time(max(finals)), late_run.state.timestamp.timestamp() + DEADLINE_SECONDS + 10))

    since = launched.failed.created.timestamp() - 1
    mails = [m for m in launched.stack.sink.mails if m.received >= since]
    assert sorted(r.name for r in runs for m in mails if r.name in m.subject) == sorted(r.name for r in runs)
    assert len(mails) == 4, [m.subject for m in mails]

"""Faults inside containers, and what a container shows of the credentials.

Both runs start at once (module fixture `launched`) so their waits overlap:
- killed: a training run whose FRED server (block `fred-slow`) does not answer; once the server
  has its first request the container is killed with `docker kill` -> Crashed; no hook can run, so
  the failure automation (`python -m blocks automations`) sends the one e-mail.
- failed: a daily run whose FRED server (block `fred-down`) answers HTTP 500 to every request,
  longer than the retries -> Failed; its on_failure hook e-mails from inside the container
  (logging in to the SMTP server with the block's password); the automation stays silent.

Then no FRED key, SMTP password, Azure account key or connection string may appear in any
container's `docker logs` or `docker inspect`, nor in the image's history or configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from tests.alerts.stack import HOOK_GRACE_SECONDS, settle_time, sleep_until
from tests.docker.stack import DAILY, FLOW_RUN_LABEL, DockerStack, container_text

pytestmark = pytest.mark.timeout(2400)

KILLED_AS_OF = "2026-11-19"
FAILED_AS_OF = "2026-11-18"
AUTOMATION_MARK = "no alert came from inside the run"  # only the failure automation's body says this
FETCH_RETRIES = 1


@dataclass
class Launched:
    killed_id: UUID
    failed_id: UUID


@dataclass
class Killed:
    flow_run: Any
    exit_code: int


@pytest.fixture(scope="module")
def launched(stack: DockerStack) -> Launched:
    killed_id = stack.start_slow_training(KILLED_AS_OF)
    quick_retries = {"fetch": {"retries": FETCH_RETRIES, "retry_backoff_seconds": 0.1, "retry_jitter_factor": 0}}
    failed_id, proc = stack.run(DAILY, {"as_of": FAILED_AS_OF, "fred_block": "fred-down", "settings": quick_retries})
    assert failed_id is not None, proc.stdout + proc.stderr
    return Launched(killed_id, failed_id)


@pytest.fixture(scope="module")
def killed(stack: DockerStack, launched: Launched) -> Killed:
    stack.wait_until_fred_slow_asked()
    container = stack.container(launched.killed_id)
    assert container.status == "running", container.status
    container.kill()  # docker kill: SIGKILL
    flow_run = stack.wait_final(launched.killed_id, timeout=120)
    return Killed(flow_run, stack.container(launched.killed_id).attrs["State"]["ExitCode"])


@pytest.fixture(scope="module")
def failed(stack: DockerStack, launched: Launched) -> Any:
    return stack.wait_final(launched.failed_id)


def test_killed_container_ends_the_run_crashed(stack: DockerStack, killed: Killed) -> None:
    assert killed.flow_run.state.name == "Crashed", f"{killed.flow_run.state}\n{stack.worker_log()}"
    assert killed.exit_code == 137  # killed by SIGKILL


def test_killed_container_sends_exactly_one_email_the_automations(stack: DockerStack, killed: Killed) -> None:
    name = killed.flow_run.name
    mail = stack.sink.wait_for(name, "Crashed", timeout=HOOK_GRACE_SECONDS + 60)
    sleep_until(max(mail.received, settle_time(killed.flow_run.state.timestamp)) + 5)

    assert name == f"train-{KILLED_AS_OF}"
    assert mail.subject == f"[market-forecast] train-model: run {name} Crashed"
    assert AUTOMATION_MARK in mail.body
    assert len(stack.sink.about(name)) == 1, [m.subject for m in stack.sink.about(name)]


def test_fred_errors_beyond_the_retries_fail_the_run(stack: DockerStack, failed: Any) -> None:
    assert failed.state.name == "Failed", f"{failed.state}\n{stack.worker_log()}"
    assert "FRED HTTP 500" in (failed.state.message or ""), failed.state.message
    per_series: dict[str, int] = {}
    for request in stack.fred_down.requests():
        per_series[request.series_id] = per_series.get(request.series_id, 0) + 1
    assert per_series and max(per_series.values()) == 1 + FETCH_RETRIES, per_series


def test_failed_run_sends_exactly_one_email_the_hooks_from_the_container(stack: DockerStack, failed: Any) -> None:
    name = failed.name
    mail = stack.sink.wait_for(name, "Failed", timeout=HOOK_GRACE_SECONDS + 30)
    sleep_until(max(mail.received, settle_time(failed.state.timestamp)) + 3)

    assert name == f"daily-{FAILED_AS_OF}"
    assert mail.subject == f"[market-forecast] daily-forecast: run {name} Failed"
    assert "FRED HTTP 500: Internal Server Error" in mail.body
    assert f"as_of:        {FAILED_AS_OF}" in mail.body
    assert AUTOMATION_MARK not in mail.body  # the hook's own e-mail, not the automation's
    assert len(stack.sink.about(name)) == 1, [m.subject for m in stack.sink.about(name)]
    assert True in stack.sink.logins  # the hook logged in with the SMTP block's password


def _session_containers(stack: DockerStack) -> list[Any]:
    with stack.engine.session() as client:
        return client.containers.list(all=True, filters={"label": FLOW_RUN_LABEL})


def test_no_secret_in_any_containers_logs_or_inspect(stack: DockerStack, killed: Killed, failed: Any) -> None:
    containers = _session_containers(stack)
    assert len(containers) >= 2
    leaks = []
    for container in containers:
        text = container_text(container)
        # what is searched is the container's output and configuration
        assert "PREFECT_API_URL" in text and "Flow run " in text, f"{container.name}: {text[:2000]}"
        leaks += [
            f"{what} in {container.name}" for what, value in stack.secrets.values().items() if value and value in text
        ]
    assert leaks == []


def test_no_secret_in_the_image_history_or_configuration(stack: DockerStack) -> None:
    for target, reference in stack.images.items():
        with stack.engine.session() as client:
            image = client.images.get(reference)
            history = json.dumps(image.history())
            text = history + json.dumps(image.attrs)
        assert f"requirements-{target}.lock" in history  # the build steps are there to be read
        leaks = [what for what, value in stack.secrets.values().items() if value and value in text]
        assert leaks == [], target

"""Cancelling a running flow run, as the UI's Cancel does, stops its container: the run ends Cancelled.

A training run whose FRED server (block `fred-slow`) does not answer waits inside its fetch stage;
`prefect flow-run cancel` sets it Cancelling. In the container, the deployment's command (Prefect's
default, `prefect flow-run execute`) watches for that and stops the flow engine it started: the run
ends Cancelled, the container exits, and no alert goes out (a cancellation is not a failure).

This is what a deployment would lose with the job variable `command: python -m prefect.engine`
(the engine alone, cheaper to start; docs/deployment.md): in Prefect 3.8 the worker itself only
cancels runs that have not started.
"""

from __future__ import annotations

import time

import pytest

from tests.alerts.stack import settle_time, sleep_until
from tests.docker.stack import DockerStack

pytestmark = pytest.mark.timeout(900)

CANCELLED_AS_OF = "2026-11-16"


def test_cancelling_a_running_container_run_ends_it_cancelled_without_an_alert(stack: DockerStack) -> None:
    asked = len(stack.fred_slow.requests())  # by the runs of other modules
    run_id = stack.start_slow_training(CANCELLED_AS_OF)
    stack.wait_until_fred_slow_asked(beyond=asked)
    assert stack.container(run_id).status == "running"

    cancel = stack.server.cli("flow-run", "cancel", str(run_id), check=False)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr

    flow_run = stack.wait_final(run_id, timeout=120)
    assert flow_run.state.name == "Cancelled", f"{flow_run.state}\n{stack.worker_log()}"
    deadline = time.monotonic() + 60
    while (container := stack.container(run_id)).status != "exited":
        assert time.monotonic() < deadline, f"the container is still {container.status}"
        time.sleep(0.5)
    sleep_until(settle_time(flow_run.state.timestamp))
    assert stack.sink.about(flow_run.name) == [], [m.subject for m in stack.sink.about(flow_run.name)]

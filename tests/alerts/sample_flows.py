"""Small flows deployed by the alerting tests: the product's failure hook without TensorFlow's import time.

They are loaded by a process worker from this file (entrypoint `tests/alerts/sample_flows.py:<name>`).
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

from prefect import flow, task

from tasks.ops.alerts import notify_run_failure


class SampleFailure(RuntimeError):
    """The error the failing sample flow raises."""


@task
def load_prices(as_of: date | None) -> str:
    """A task that fails with a recognisable message."""
    raise SampleFailure(f"prices for {as_of} could not be loaded: sample outage 7f3a")


@flow(name="alerts-sample-failing", on_failure=[notify_run_failure])
def failing_flow(as_of: date | None = None) -> None:
    """Fails in its task `load_prices`."""
    load_prices(as_of)


@flow(name="alerts-sample-sleeping", on_failure=[notify_run_failure])
def sleeping_flow(pid_file: str, seconds: float = 300) -> None:
    """Writes its process id to `pid_file`, then sleeps (the test kills it)."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)

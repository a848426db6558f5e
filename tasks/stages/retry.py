"""The one retry policy of the I/O stages.

Prefect task retries with exponential backoff and jitter, only for failures the adapters
classified as transient (timeouts, 5xx, 429, connection errors).

A bad FRED key, an unknown series, a missing container or a corrupt model fail at once.
"""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from tasks.core.errors import is_transient
from tasks.core.settings import FetchSettings, StorageSettings


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Prefect retry condition: retry transient failures only."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return is_transient(exc) if isinstance(exc, BaseException) else False


def retry_options(policy: FetchSettings | StorageSettings) -> dict[str, Any]:
    """`Task.with_options` keywords for the FRED or the storage policy of the settings."""
    if isinstance(policy, FetchSettings):
        retries, first, jitter = policy.retries, policy.retry_backoff_seconds, policy.retry_jitter_factor
    else:
        retries, first, jitter = policy.attempts - 1, policy.retry_delay_seconds, 0.0
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(first) if first > 0 else 0,
        "retry_jitter_factor": jitter,
        "retry_condition_fn": retry_if_transient,
    }

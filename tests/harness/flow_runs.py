"""Flow runs read back from a Prefect API: wait for a state, read a run's logs.

`server` is a `tests.harness.prefect_server.PrefectServer`; where it is optional, None means the API
this process is bound to (the session's `prefect_test_harness`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from tests.harness.prefect_server import PrefectServer

__all__ = ["flow_run_logs", "wait_for_final_state", "wait_for_state"]

# Log lines read per request (the API answers at most 200).
LOG_PAGE = 200


def wait_for_final_state(server: PrefectServer, flow_run_id: UUID, *, timeout: float = 240) -> Any:
    """The flow run once it is in a final state (Prefect's `wait_for_flow_run`, which follows its events).

    Raises:
        AssertionError: not final after `timeout` seconds; the message has the run's state.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowRunWaitTimeout
    from prefect.flow_runs import wait_for_flow_run

    async def wait() -> Any:
        async with get_client() as client:
            return await wait_for_flow_run(flow_run_id, timeout=int(timeout), client=client)

    with server.settings():
        try:
            return asyncio.run(wait())
        except FlowRunWaitTimeout:
            pass
    with server.client() as client:
        flow_run = client.read_flow_run(flow_run_id)
    raise AssertionError(f"flow run {flow_run.name} not final after {timeout:.0f} s: {flow_run.state}")


def wait_for_state(
    server: PrefectServer, flow_run_id: UUID, done: Callable[[Any], bool], *, timeout: float, what: str
) -> Any:
    """The flow run once `done(flow_run)`, for states that are not final (e.g. Late).

    Raises:
        AssertionError: `done` was still false after `timeout` seconds (the message says `what`).
    """
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state is not None and done(flow_run):
                return flow_run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {flow_run.name} not {what} after {timeout:.0f} s: {flow_run.state}")
            time.sleep(0.5)


def flow_run_logs(*flow_run_ids: UUID, server: PrefectServer | None = None) -> list[str]:
    """The log messages of the flow runs (their task runs' included), oldest first.

    Logs this process still holds are sent first, so a run that just ended in this process is
    complete.
    """
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(flow_run_ids)))
    messages: list[str] = []
    with _client(server) as client:
        while True:  # page: the API answers at most its default limit (200) per request
            page = client.read_logs(
                log_filter=log_filter, limit=LOG_PAGE, offset=len(messages), sort=LogSort.TIMESTAMP_ASC
            )
            messages += [log.message for log in page]
            if len(page) < LOG_PAGE:
                return messages


@contextlib.contextmanager
def _client(server: PrefectServer | None) -> Iterator[Any]:
    if server is not None:
        with server.client() as client:
            yield client
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        yield client

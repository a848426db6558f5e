"""A flow that fetches series from FRED through the fetch stage, for the shared-budget test.

Run as a child process: `python -m tests.fred.budget_flow RATE_LIMIT_NAME SERIES...` (FRED_API_URL,
FRED_API_KEY and PREFECT_API_URL from the environment). It prints READY once imported and waits for
a line on stdin, so that several children start fetching at the same moment.
"""

from __future__ import annotations

import sys
from datetime import date

from prefect import flow

from tasks.core.settings import FetchSettings, Settings
from tasks.stages.data import fetch_all, resolve_source_task


@flow(name="fred-budget-probe")
def fetch_series_flow(series: list[str], rate_limit_name: str | None) -> int:
    # A per-process budget far above the shared one: only the global limit can hold the rate.
    fetch = FetchSettings(rate_limit_name=rate_limit_name, requests_per_minute=60000, burst=60, retries=0)
    settings = Settings(series=tuple(series), fetch=fetch)
    source = resolve_source_task(None)
    return len(fetch_all(source, settings, start=date(2024, 1, 2), end=date(2024, 3, 28)))


if __name__ == "__main__":
    name = None if sys.argv[1] == "-" else sys.argv[1]
    print("READY", flush=True)
    sys.stdin.readline()
    state = fetch_series_flow(sys.argv[2:], name, return_state=True)
    print("STATE", state.type.value, flush=True)
    sys.exit(0 if state.is_completed() else 1)

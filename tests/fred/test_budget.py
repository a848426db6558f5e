"""One FRED budget for every process: a Prefect global concurrency limit used as a rate limit.

Two flow runs, each in its own process, fetch at the same moment through one local FRED-compatible
server while a real `prefect server` holds the limit. With the limit, the requests the server sees
stay within it (burst, then the slot decay's rate); without it (the per-process fallback), the same
two runs overrun it: the check can fail, and does when the shared budget is missing.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from blocks.fred import FRED_BURST, FRED_RATE_LIMIT, FRED_REQUESTS_PER_MINUTE
from tasks.core.demo import generate_demo_series
from tasks.core.settings import FetchSettings
from tests.harness.fred_server import FredServer

REPO = Path(__file__).resolve().parents[2]
KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SERIES = [f"S{i}" for i in range(1, 7)]  # six requests per run
BURST, PER_SECOND = 2, 5.0
TOLERANCE = 1  # one request of slack for timing between the limit's clock and the server's


def excess_over_budget(times: list[float], *, burst: int, per_second: float) -> int:
    """How many requests the busiest time window saw beyond burst + rate x its length."""
    times = sorted(times)
    worst = 0
    for i in range(len(times)):
        for j in range(i, len(times)):
            allowed = burst + per_second * (times[j] - times[i])
            worst = max(worst, (j - i + 1) - int(allowed))
    return worst


@pytest.fixture
def fred() -> Iterator[FredServer]:
    data = generate_demo_series(tuple(SERIES), date(2024, 3, 28))
    with FredServer(data, api_key=KEY) as server:
        yield server


def run_two_at_once(server: Any, fred: FredServer, limit_name: str) -> list[float]:
    """Start two fetching flow runs in two processes, release them together, return request times."""
    env = server.env(FRED_API_URL=fred.url, FRED_API_KEY=KEY, PREFECT_LOGGING_LEVEL="WARNING")
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fred.budget_flow", limit_name, *SERIES],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "READY"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=180)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, output in zip(children, outputs, strict=True):
        assert child.returncode == 0, output[-3000:]
    return [r.at for r in fred.requests() if r.path.endswith("/series/observations")]


def test_two_runs_in_two_processes_share_one_fred_budget(prefect_server: Any, fred: FredServer) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    name = f"fred-budget-{uuid.uuid4().hex[:8]}"
    with prefect_server.client() as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=BURST, slot_decay_per_second=PER_SECOND, active=True)
        )
    times = run_two_at_once(prefect_server, fred, name)

    assert len(times) == 2 * len(SERIES)
    assert excess_over_budget(times, burst=BURST, per_second=PER_SECOND) <= TOLERANCE
    # 12 requests at 2 at once then 5 per second cannot all arrive within the first second.
    assert max(times) - min(times) >= (len(times) - BURST) / PER_SECOND - 0.5


def test_without_the_shared_limit_each_process_spends_its_own_budget(prefect_server: Any, fred: FredServer) -> None:
    times = run_two_at_once(prefect_server, fred, f"no-such-limit-{uuid.uuid4().hex[:8]}")

    assert len(times) == 2 * len(SERIES)
    assert excess_over_budget(times, burst=BURST, per_second=PER_SECOND) > TOLERANCE


def test_the_budget_check_counts_the_busiest_window() -> None:
    assert excess_over_budget([0.0, 0.0, 0.2, 0.4], burst=2, per_second=5) == 0
    assert excess_over_budget([0.0, 0.0, 0.0, 0.05], burst=2, per_second=5) == 2


def test_the_fetch_defaults_name_the_limit_setup_creates() -> None:
    default = FetchSettings()
    assert default.rate_limit_name == FRED_RATE_LIMIT
    assert (default.requests_per_minute, default.burst) == (FRED_REQUESTS_PER_MINUTE, FRED_BURST)

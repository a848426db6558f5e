"""How far back the daily flow fetches: the lookback and, before it, the longest window any part of the model reads."""

from __future__ import annotations

from datetime import date

import pytest

from tasks.core.calendar import sessions_in_range
from tasks.core.intervals import LONG_VOL_WINDOW
from tasks.core.settings import EnsembleSettings
from tasks.core.windows import FETCH_MARGIN_SESSIONS, daily_fetch_start
from tests.harness.settings import tiny_settings

AS_OF = date(2025, 7, 8)


@pytest.mark.parametrize(
    ("estimation_sessions", "longest"),
    [
        (2000, 2000),  # the classical members' estimation window
        (250, LONG_VOL_WINDOW + 1),  # the long-run volatility that scales the bands (501 levels, 500 returns)
    ],
)
def test_the_daily_fetch_holds_the_lookback_and_the_longest_window_before_it(
    estimation_sessions: int, longest: int
) -> None:
    settings = tiny_settings(
        ensemble=EnsembleSettings(estimation_sessions=estimation_sessions, min_estimation_sessions=100)
    )
    start = daily_fetch_start(AS_OF, lookback_sessions=20, settings=settings)
    assert len(sessions_in_range(start, AS_OF)) == 20 + longest + FETCH_MARGIN_SESSIONS

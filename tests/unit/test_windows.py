"""How far back the daily flow fetches: the lookback and, before it, the longest window any part of the model reads."""

from __future__ import annotations

from datetime import date

import pytest

from tasks.core.calendar import sessions_in_range
from tasks.core.intervals import LONG_VOL_WINDOW
from tasks.core.settings import EnsembleSettings
from tasks.core.windows import FETCH_MARGIN_SESSIONS, daily_fetch_start, short_groups
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


def test_a_group_whose_history_starts_after_as_of_is_named_as_such() -> None:
    settings = tiny_settings(history_start=date(2020, 1, 1))
    assert short_groups(settings, as_of=date(2015, 6, 1)) == [
        "model group 'default' has no history: as_of 2015-06-01 is before its history_start 2020-01-01; give a "
        "later as_of or an earlier history_start"
    ]
    short = short_groups(settings, as_of=date(2020, 3, 2))
    assert len(short) == 1 and "2020-01-01 .. 2020-03-02 holds 41 NYSE sessions" in short[0]
    assert short_groups(settings, as_of=date(2025, 3, 31)) == []


def test_a_tiny_test_fraction_is_named_among_the_ways_out() -> None:
    # 0.001 of the rows must exceed the longest horizon: some 30,000 sessions, more than the calendar
    # holds, so moving history_start alone cannot help.
    (short,) = short_groups(tiny_settings(test_fraction=0.001), as_of=date(2025, 3, 31))
    assert "move its history_start earlier, or ask for less:" in short
    assert "a larger test_fraction (now 0.001: the test part must hold more sessions than the longest horizon)" in short

"""The NYSE calendar: one calendar serves a run's ranges, and its answers do not depend on the range asked."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.core import calendar
from tasks.core.calendar import is_session, market_day, session_window_start, sessions_after, sessions_in_range


def test_a_daily_runs_ranges_share_one_calendar() -> None:
    calendar._calendar.cache_clear()
    as_of = date(2026, 12, 2)
    assert is_session(as_of)
    start = session_window_start(as_of, 1400)
    assert len(sessions_in_range(start, as_of)) == 1400
    assert len(sessions_after(as_of, 30)) == 30
    assert calendar._calendar.cache_info().currsize == 1


def test_holidays_and_weekends_are_skipped_across_a_year_end() -> None:
    assert not is_session(date(2026, 11, 26))  # Thanksgiving
    assert market_day(date(2026, 11, 26)).reason == "a NYSE holiday (Thanksgiving)"
    # 1 January 2027 is a Friday and a holiday: the next session is Monday 4 January.
    assert list(sessions_after(date(2026, 12, 31), 2)) == [pd.Timestamp("2027-01-04"), pd.Timestamp("2027-01-05")]


def test_a_forecast_into_the_next_years_gets_a_calendar_reaching_them() -> None:
    calendar._calendar.cache_clear()
    assert is_session(date(2029, 12, 20))  # a calendar to 2030
    # The forecast runs into 2030, less than a year before that calendar's end: a longer one answers.
    ahead = sessions_after(date(2029, 12, 20), 30)
    assert len(ahead) == 30 and ahead[0] == pd.Timestamp("2029-12-21")
    assert pd.Timestamp("2029-12-25") not in ahead and pd.Timestamp("2030-01-01") not in ahead
    assert ahead[-1].year == 2030
    assert calendar._calendar.cache_info().currsize == 2


def test_sessions_in_a_range_are_the_same_whichever_calendar_answers() -> None:
    recent = sessions_in_range(date(2024, 1, 1), date(2024, 12, 31))
    assert len(recent) == 252  # NYSE sessions in 2024
    old = sessions_in_range(date(1995, 1, 1), date(1995, 12, 31))
    assert len(old) == 252  # NYSE sessions in 1995
    # A run's ranges are answered by calendars of different spans (their end follows the dates asked).
    for last_year in (2025, 2030, 2040):
        longer = calendar._calendar(last_year)
        for sessions in (recent, old):
            assert pd.DatetimeIndex(longer.sessions_in_range(sessions[0], sessions[-1])).equals(sessions)

"""The NYSE calendar (exchange-calendars' XNYS), pinned to explicit bounds (pure).

`exchange_calendars.get_calendar("XNYS")` without bounds covers 20 years back to 1 year ahead of
*today*, so its answers move with the clock. Here a calendar starts on CALENDAR_START and ends after the
last date an argument needs, which keeps runs for a given `as_of` reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

from tasks.core.settings import CALENDAR_START

CALENDAR = "XNYS"
# Building a calendar costs about 0.1 s whatever its span, and a daily run asks for several ranges
# (the market day, the fetch window, the sessions to align, the forecast's dates): one calendar
# from a fixed first year, its last year rounded up to a multiple of END_YEAR_STEP, serves them all.
END_YEAR_STEP = 5


@lru_cache(maxsize=8)
def _calendar(last_year: int) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(CALENDAR, start=CALENDAR_START.isoformat(), end=date(last_year, 12, 31).isoformat())


def nyse_calendar(end: date) -> xcals.ExchangeCalendar:
    """The XNYS calendar from CALENDAR_START through at least `end` (cached).

    Args:
        end: Last date the caller needs (forecasts need dates after as_of).

    Returns:
        An exchange_calendars calendar from CALENDAR_START to a year-end at least a year
        after `end`.
    """
    # A year of margin after `end`: a bound that is a holiday (31 December) stays inside the calendar.
    return _calendar(-(-(end.year + 1) // END_YEAR_STEP) * END_YEAR_STEP)


def _to_date(value: date | pd.Timestamp) -> date:
    return value.date() if isinstance(value, pd.Timestamp) else value


def is_session(day: date) -> bool:
    """Whether the NYSE holds a regular session on `day` (weekends and holidays are not)."""
    return bool(nyse_calendar(day).is_session(pd.Timestamp(day)))


def sessions_in_range(start: date, end: date) -> pd.DatetimeIndex:
    """NYSE sessions from `start` to `end`, both included, as a tz-naive DatetimeIndex named "date"."""
    if end < start:
        return pd.DatetimeIndex([], name="date")
    calendar = nyse_calendar(end)
    # CALENDAR_START (1 January) is a holiday: the calendar's first session comes a day or two later.
    first = max(pd.Timestamp(start), calendar.first_session)
    if pd.Timestamp(end) < first:
        return pd.DatetimeIndex([], name="date")
    sessions = calendar.sessions_in_range(first, pd.Timestamp(end))
    return pd.DatetimeIndex(sessions, name="date").as_unit("ns")


def last_session_on_or_before(day: date) -> date:
    """The latest NYSE session on or before `day`."""
    cal = nyse_calendar(day)
    return _to_date(cal.date_to_session(pd.Timestamp(day), direction="previous"))


def sessions_after(last: date, count: int) -> pd.DatetimeIndex:
    """The `count` NYSE sessions strictly after `last` (holidays and weekends skipped).

    Args:
        last: The last observed date.
        count: How many sessions to return.

    Returns:
        DatetimeIndex named "date" with `count` sessions.
    """
    # 30 sessions span about 45 calendar days; leave room for any horizon up to a few years.
    horizon_end = last + timedelta(days=int(count * 1.6) + 30)
    cal = nyse_calendar(horizon_end)
    first = cal.date_to_session(pd.Timestamp(last + timedelta(days=1)), direction="next")
    return pd.DatetimeIndex(cal.sessions_window(first, count), name="date").as_unit("ns")


def session_window_start(end: date, count: int) -> date:
    """The first of the `count` NYSE sessions ending on or before `end`."""
    span_start = end - timedelta(days=int(count * 1.6) + 30)
    sessions = sessions_in_range(span_start, end)
    if len(sessions) < count:  # pragma: no cover - the span above always holds enough sessions
        raise ValueError(f"calendar span too short for {count} sessions before {end}")
    return _to_date(sessions[-count])


@dataclass(frozen=True)
class MarketDay:
    """Whether the NYSE trades on a day, and if not, why."""

    day: date
    is_session: bool
    reason: str  # "a regular session", "a Saturday", "a NYSE holiday (Thanksgiving)", ...


def market_day(day: date) -> MarketDay:
    """Classify `day` on the NYSE calendar."""
    if is_session(day):
        return MarketDay(day, True, "a regular NYSE session")
    if day.weekday() >= 5:
        return MarketDay(day, False, f"a {day:%A}")
    cal = nyse_calendar(day)
    stamp = pd.Timestamp(day)
    names = cal.regular_holidays.holidays(stamp, stamp, return_name=True)
    name = str(names.iloc[0]) if len(names) else "market closure"
    return MarketDay(day, False, f"a NYSE holiday ({name})")

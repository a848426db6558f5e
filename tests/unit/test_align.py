"""Alignment on NYSE sessions and the validation rules of tasks.core.align."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from tasks.core.align import align_sessions
from tasks.core.calendar import sessions_in_range
from tasks.core.errors import DataGapError, InvalidValuesError, StaleDataError

START, AS_OF = date(2026, 10, 1), date(2026, 11, 30)


def weekday_series(values: float | list[float] = 100.0, start: date = START, end: date = AS_OF) -> pd.Series:
    """A FRED-like daily series: one row per weekday, holidays included."""
    days = pd.bdate_range(start, end)
    data = np.full(len(days), values, dtype=float) if np.isscalar(values) else np.asarray(values, dtype=float)
    return pd.Series(data, index=days)


def align(raw: dict[str, pd.Series], **kw: object) -> object:
    options = {"start": START, "as_of": AS_OF, "max_fill": 3, "max_stale": 5, **kw}
    return align_sessions(raw, **options)


def test_rows_on_non_sessions_are_dropped_and_counted() -> None:
    result = align({"A": weekday_series(), "B": weekday_series()})
    sessions = sessions_in_range(START, AS_OF)
    assert result.levels.index.equals(sessions)
    assert pd.Timestamp("2026-11-26") not in result.levels.index  # Thanksgiving
    assert result.dropped_non_sessions == {"A": 1, "B": 1}


def test_short_gaps_are_filled_forward_and_flagged() -> None:
    raw = weekday_series()
    raw.loc["2026-10-14":"2026-10-16"] = [np.nan, np.nan, np.nan]
    raw.loc["2026-10-13"] = 101.0
    result = align({"A": raw, "B": weekday_series()})
    assert (result.levels.loc["2026-10-14":"2026-10-16", "A"] == 101.0).all()
    assert result.filled.loc["2026-10-14":"2026-10-16", "A"].all()
    assert not result.filled["B"].any()


def test_fred_missing_marker_is_treated_as_missing() -> None:
    raw = weekday_series().astype(object)
    raw.loc["2026-10-14"] = "."
    result = align({"A": raw})
    assert result.filled.loc["2026-10-14", "A"]


def test_a_gap_longer_than_the_limit_names_series_and_dates() -> None:
    raw = weekday_series()
    raw.loc["2026-10-12":"2026-10-16"] = np.nan
    with pytest.raises(DataGapError) as caught:
        align({"A": weekday_series(), "GAPPY": raw})
    message = str(caught.value)
    assert "GAPPY" in message and "2026-10-12" in message and "2026-10-16" in message
    assert "5 missing session" in message and "max_fill_sessions=3" in message
    assert caught.value.gaps == [("GAPPY", date(2026, 10, 12), date(2026, 10, 16), 5)]


def test_non_positive_values_are_rejected_with_the_offending_rows() -> None:
    raw = weekday_series()
    raw.loc["2026-10-20"] = -3.0
    raw.loc["2026-10-21"] = 0.0
    with pytest.raises(InvalidValuesError) as caught:
        align({"NEG": raw})
    assert (
        "NEG" in str(caught.value) and "2026-10-20=-3.0" in str(caught.value) and "2026-10-21=0.0" in str(caught.value)
    )
    assert len(caught.value.rows) == 2


def test_non_numeric_values_are_rejected_with_the_offending_rows() -> None:
    raw = weekday_series().astype(object)
    raw.loc["2026-10-20"] = "n/a"
    with pytest.raises(InvalidValuesError, match=r"TXT: 1 non-numeric observation\(s\): 2026-10-20='n/a'"):
        align({"TXT": raw})


def test_a_series_that_stopped_updating_is_reported_stale() -> None:
    fresh = weekday_series()
    old = weekday_series(end=date(2026, 11, 13))
    with pytest.raises(StaleDataError) as caught:
        align({"FRESH": fresh, "OLD": old})
    message = str(caught.value)
    assert "OLD: last observation 2026-11-13 is 10 NYSE session(s) before as_of" in message
    assert "FRESH" not in message
    assert "as_of 2026-11-30" in message


def test_an_as_of_beyond_every_series_says_which_as_of_the_data_can_serve() -> None:
    # Every series ends on 2026-11-13, ten sessions before as_of: the data ends there (a saved
    # extract, a stopped feed), which a publication lag of one series does not explain.
    with pytest.raises(StaleDataError) as caught:
        align({"A": weekday_series(end=date(2026, 11, 12)), "B": weekday_series(end=date(2026, 11, 13))})
    message = str(caught.value)
    assert "A: last observation 2026-11-12 is 11 NYSE session(s)" in message
    assert "as_of most likely lies beyond the data: run with an as_of on or before 2026-11-13." in message
    assert message.index("on or before") < message.index("FRED may not have published")


def test_a_series_that_begins_after_as_of_says_to_use_a_later_as_of() -> None:
    late = weekday_series(start=AS_OF + timedelta(days=3), end=AS_OF + timedelta(days=10))
    with pytest.raises(StaleDataError) as caught:
        align({"A": weekday_series(), "LATE": late})
    message = str(caught.value)
    assert "LATE: no observation at all up to as_of" in message
    assert message.endswith(
        "A series with no observation up to as_of begins after it: use a later as_of, or leave the series out "
        "of settings.series."
    )
    # Every stale series begins after as_of: an earlier as_of cannot help, so it is not suggested.
    with pytest.raises(StaleDataError) as caught:
        align({"LATE": late, "LATER": late})
    assert "earlier as_of" not in str(caught.value) and "use a later as_of" in str(caught.value)


def test_one_or_two_sessions_of_publication_lag_are_not_stale() -> None:
    result = align({"A": weekday_series(), "LAGGING": weekday_series(end=date(2026, 11, 25))})
    assert result.last_date == date(2026, 11, 30)
    assert result.filled.loc["2026-11-27":, "LAGGING"].all()


def test_a_lag_within_max_stale_is_filled_even_when_longer_than_max_fill() -> None:
    # 4 sessions behind the others: not stale (max_stale=5), so the run goes on with the last value
    # carried forward and flagged; max_fill limits gaps inside a series, not a publication lag.
    result = align({"A": weekday_series(), "LAGGING": weekday_series(end=date(2026, 11, 23))})
    assert result.last_date == date(2026, 11, 30)
    lagging = result.filled["LAGGING"]
    assert lagging.loc["2026-11-24":].all() and lagging.sum() == 4
    assert (result.levels.loc["2026-11-24":, "LAGGING"] == 100.0).all()
    with pytest.raises(StaleDataError, match="LAGGING: last observation 2026-11-23 is 4 NYSE session"):
        align({"A": weekday_series(), "LAGGING": weekday_series(end=date(2026, 11, 23))}, max_stale=3)


def test_a_gap_inside_a_series_is_still_limited_by_max_fill() -> None:
    raw = weekday_series()
    raw.loc["2026-11-17":"2026-11-20"] = np.nan  # 4 sessions, then values again
    with pytest.raises(DataGapError, match="GAPPY: 4 missing session"):
        align({"A": weekday_series(), "GAPPY": raw}, max_stale=10)


def test_observations_after_as_of_are_never_used() -> None:
    raw = weekday_series(end=date(2026, 12, 31))
    result = align({"A": raw})
    assert result.last_date == AS_OF
    assert result.levels.index.max() <= pd.Timestamp(AS_OF)


def test_frame_starts_where_every_series_has_a_value() -> None:
    late = weekday_series(start=date(2026, 10, 15))
    result = align({"EARLY": weekday_series(), "LATE": late})
    assert result.first_date == date(2026, 10, 15)
    assert not result.levels.isna().any().any()

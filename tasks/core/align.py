"""Alignment and validation stage (pure): raw observations per series -> one frame on NYSE sessions.

Rules, in order:
1. observations after `as_of` or before `start` are dropped (no future data ever enters a run);
2. values must be numbers (after FRED's "." became NaN) and positive, else `InvalidValuesError`;
3. rows on dates that are not NYSE sessions (VIX on some holidays, forward-filled holiday rows)
   are dropped and counted;
4. a series whose last observation is more than `max_stale` sessions before as_of is stale;
5. the frame runs from the first session where every series has a value to the latest observed
   session; missing sessions inside a series are filled forward up to `max_fill` in a row, a longer
   gap is an error. A series that lags the others at the end (its latest values not published yet)
   is filled forward to the frame's last session: rule 4 already bounds that lag by `max_stale`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from tasks.core.calendar import sessions_in_range
from tasks.core.errors import DataGapError, InsufficientDataError, InvalidValuesError, StaleDataError


@dataclass(frozen=True)
class AlignedData:
    """Series aligned on NYSE sessions.

    Attributes:
        levels: float frame, DatetimeIndex "date" of consecutive sessions, one column per series.
        filled: same shape, True where a value was filled forward.
        dropped_non_sessions: per series, how many observations fell on non-session dates.
    """

    levels: pd.DataFrame
    filled: pd.DataFrame
    dropped_non_sessions: dict[str, int] = field(default_factory=dict)

    @property
    def first_date(self) -> date:
        """First session of the frame."""
        return pd.Timestamp(self.levels.index[0]).date()

    @property
    def last_date(self) -> date:
        """Last session of the frame (the data's 'through' date)."""
        return pd.Timestamp(self.levels.index[-1]).date()

    def lookback_start(self, sessions: int) -> date:
        """First of the last `sessions` sessions of the frame (its first if it holds fewer)."""
        return pd.Timestamp(self.levels.index[max(0, len(self.levels) - sessions)]).date()


def _as_float_series(series_id: str, raw: pd.Series) -> pd.Series:
    values = pd.Series(raw, copy=True)
    values.index = pd.DatetimeIndex(pd.to_datetime(values.index), name="date").as_unit("ns").normalize()
    values = values[~values.index.duplicated(keep="last")].sort_index()
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    text = values.astype("string").str.strip()
    bad = numeric.isna() & values.notna() & (text != ".") & (text.str.lower() != "nan")
    if bad.any():
        raise InvalidValuesError(series_id, list(values[bad].items()), "non-numeric")
    return numeric


def align_sessions(
    raw: dict[str, pd.Series],
    *,
    start: date,
    as_of: date,
    max_fill: int,
    max_stale: int,
) -> AlignedData:
    """Align raw observations of several series on NYSE sessions and validate them.

    Args:
        raw: series id -> observations indexed by date (NaN or "." for missing values).
        start: first date to keep.
        as_of: the run's reference date; later observations are dropped.
        max_fill: longest run of missing sessions filled forward.
        max_stale: most sessions a series' last observation may lie before as_of.

    Returns:
        The aligned frame, its fill mask and counts of dropped non-session rows.

    Raises:
        InvalidValuesError: non-numeric or non-positive values (with the offending rows).
        StaleDataError: series whose last observation is too old for as_of.
        DataGapError: gaps longer than max_fill sessions (series and dates named).
        InsufficientDataError: no session where every series has a value.
    """
    if not raw:
        raise InsufficientDataError("No series to align: settings.series is empty.")
    start_ts, as_of_ts = pd.Timestamp(start), pd.Timestamp(as_of)
    sessions = sessions_in_range(start, as_of)
    cleaned: dict[str, pd.Series] = {}
    dropped: dict[str, int] = {}
    for sid, observations in raw.items():
        numeric = _as_float_series(sid, observations)
        values = numeric[(numeric.index >= start_ts) & (numeric.index <= as_of_ts)]
        non_positive = values[values <= 0]
        if not non_positive.empty:
            raise InvalidValuesError(sid, list(non_positive.items()), "non-positive")
        on_session = values.index.isin(sessions)
        dropped[sid] = int((~on_session & values.notna().to_numpy()).sum())
        cleaned[sid] = values[on_session].dropna()

    _check_staleness(cleaned, sessions, as_of, max_stale)

    first = max(s.index[0] for s in cleaned.values())
    last = max(s.index[-1] for s in cleaned.values())
    frame_sessions = sessions[(sessions >= first) & (sessions <= last)]
    levels = pd.DataFrame({sid: s.reindex(frame_sessions) for sid, s in cleaned.items()})
    levels.index.name = "date"
    missing = levels.isna()
    _check_gaps(missing, max_fill)
    # Every run of missing sessions left is an inner gap of at most max_fill or a lag at the end
    # (at most max_stale, rule 4); the frame starts where every series has a value.
    filled_levels = levels.ffill()
    return AlignedData(levels=filled_levels, filled=missing, dropped_non_sessions=dropped)


def _check_staleness(cleaned: dict[str, pd.Series], sessions: pd.DatetimeIndex, as_of: date, max_stale: int) -> None:
    stale: list[tuple[str, date | None, int]] = []
    for sid, values in cleaned.items():
        if values.empty:
            stale.append((sid, None, len(sessions)))
            continue
        behind = int((sessions > values.index[-1]).sum())
        if behind > max_stale:
            stale.append((sid, values.index[-1].date(), behind))
    if stale:
        raise StaleDataError(stale, as_of, max_stale, every_series=len(stale) == len(cleaned))


def _check_gaps(missing: pd.DataFrame, max_fill: int) -> None:
    gaps: list[tuple[str, date, date, int]] = []
    dates = missing.index
    for sid in missing.columns:
        flags = missing[sid].to_numpy()
        if not flags.any():
            continue
        # Start and end positions of each run of True, found without a loop over rows.
        edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for s, e in zip(starts, ends, strict=True):
            lag_at_the_end = e == len(flags)  # bounded by max_stale (_check_staleness), not max_fill
            if e - s > max_fill and not lag_at_the_end:
                first, last = pd.Timestamp(dates[int(s)]).date(), pd.Timestamp(dates[int(e) - 1]).date()
                gaps.append((sid, first, last, int(e - s)))
    if gaps:
        raise DataGapError(gaps, max_fill)

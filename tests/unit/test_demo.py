"""The embedded demo source: deterministic, window-independent, shaped like FRED's daily series."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.core.calendar import sessions_in_range
from tasks.core.demo import generate_demo_series

SERIES = ("SP500", "VIXCLS", "DJIA", "BAMLCC4A0710YTRIV")


def test_same_seed_same_values_and_other_seed_other_values() -> None:
    first = generate_demo_series(SERIES, date(2024, 6, 28), seed=0)
    again = generate_demo_series(SERIES, date(2024, 6, 28), seed=0)
    other = generate_demo_series(SERIES, date(2024, 6, 28), seed=1)
    for sid in SERIES:
        pd.testing.assert_series_equal(first[sid], again[sid])
        assert not first[sid].equals(other[sid])


def test_a_longer_window_extends_the_history_without_changing_it() -> None:
    short = generate_demo_series(SERIES, date(2023, 3, 31))
    long = generate_demo_series(SERIES, date(2026, 11, 20))
    for sid in SERIES:
        pd.testing.assert_series_equal(long[sid].loc[:"2023-03-31"], short[sid])


def test_index_series_are_missing_on_nyse_holidays_like_fred() -> None:
    values = generate_demo_series(("SP500",), date(2025, 12, 31))["SP500"].loc["2025"]
    holidays = values.index[~values.index.isin(sessions_in_range(date(2025, 1, 1), date(2025, 12, 31)))]
    assert len(holidays) >= 9
    assert values.loc[holidays].isna().all()
    assert values.index.day_of_week.max() == 4  # weekdays only


def test_values_are_positive_and_vix_mean_reverts() -> None:
    data = generate_demo_series(SERIES, date(2026, 11, 20))
    for sid in SERIES:
        assert (data[sid].dropna() > 0).all()
    log_vix = np.log(data["VIXCLS"].dropna())
    # Mean reversion: changes are negatively related to the level's distance from its mean.
    slope = np.polyfit((log_vix - log_vix.mean()).iloc[:-1], log_vix.diff().iloc[1:], 1)[0]
    assert -0.2 < slope < -0.005
    assert 10 < data["VIXCLS"].median() < 30


def test_unknown_series_ids_get_a_generic_trending_index() -> None:
    values = generate_demo_series(("MYINDEX",), date(2024, 12, 31))["MYINDEX"].dropna()
    assert len(values) > 1000 and (values > 0).all()

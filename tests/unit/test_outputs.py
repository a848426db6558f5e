"""The CSV contract: validation catches broken tables before anything is published."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tasks.core.calendar import sessions_after
from tasks.core.errors import OutputValidationError
from tasks.core.outputs import SCHEMAS, actuals_table, label_table, to_csv_bytes, validate_outputs

LAST = date(2026, 11, 20)


def good_forecast(horizon: int = 3) -> pd.DataFrame:
    dates = sessions_after(LAST, horizon)
    table = pd.DataFrame(
        {
            "date": np.tile(dates, 2),
            "series_id": np.repeat(["A", "B"], horizon),
            "horizon": np.tile(np.arange(1, horizon + 1), 2),
            "forecast": 10.0,
            "lower_95": 8.0,
            "lower_80": 9.0,
            "upper_80": 11.0,
            "upper_95": 12.0,
        }
    )
    return label_table(table, "forecasted_data.csv", as_of="2026-11-20", model_version="v", data_source="demo")


def check(table: pd.DataFrame, name: str = "forecasted_data.csv", horizon: int = 3) -> None:
    validate_outputs({name: table}, last_actual=LAST, horizon=horizon)


def test_a_good_forecast_passes() -> None:
    check(good_forecast())


def test_a_nan_forecast_is_refused() -> None:
    table = good_forecast()
    table.loc[1, "forecast"] = np.nan
    with pytest.raises(OutputValidationError, match="1 empty value.*'forecast'"):
        check(table)


def test_a_missing_forecast_row_is_refused() -> None:
    with pytest.raises(OutputValidationError, match="A: 2 forecast rows, expected 3"):
        check(good_forecast().drop(index=2))


def test_forecast_dates_must_be_the_sessions_after_the_last_actual() -> None:
    table = good_forecast()
    table.loc[0, "date"] = pd.Timestamp("2026-11-21")  # a Saturday
    with pytest.raises(OutputValidationError, match="not strictly increasing|not the 3 NYSE sessions"):
        check(table)


def test_dates_must_strictly_increase_per_series() -> None:
    table = good_forecast()
    table.loc[[0, 1], "date"] = table.loc[[1, 0], "date"].to_numpy()
    with pytest.raises(OutputValidationError, match="A: dates are not strictly increasing"):
        check(table)


def test_columns_must_match_the_contract() -> None:
    with pytest.raises(OutputValidationError, match="differ from the contract"):
        check(good_forecast().drop(columns="upper_95"))


def test_unordered_bands_are_refused() -> None:
    table = good_forecast()
    table.loc[0, "upper_80"] = 7.0
    with pytest.raises(OutputValidationError, match="not ordered"):
        check(table)


def test_actuals_table_is_long_with_fill_flags() -> None:
    index = pd.DatetimeIndex(["2026-11-19", "2026-11-20"], name="date")
    levels = pd.DataFrame({"A": [1.0, 2.0], "B": [3.0, 4.0]}, index=index)
    filled = pd.DataFrame({"A": [False, True], "B": [False, False]}, index=index)
    table = actuals_table(levels, filled)
    assert table.columns.tolist() == ["date", "series_id", "value", "filled"]
    assert table["series_id"].tolist() == ["A", "A", "B", "B"]
    assert table["filled"].tolist() == [False, True, False, False]


def test_csv_has_iso_dates_lowercase_booleans_and_full_precision() -> None:
    table = pd.DataFrame(
        {
            "date": pd.to_datetime(["2026-11-20"]),
            "series_id": ["A"],
            "value": [1234.5678901234],
            "filled": [True],
            "data_source": ["demo"],
        }
    )
    text = to_csv_bytes(table).decode()
    assert text == "date,series_id,value,filled,data_source\n2026-11-20,A,1234.5678901234,true,demo\n"


def test_every_published_file_has_a_schema() -> None:
    assert set(SCHEMAS) == {
        "actuals.csv",
        "predicted.csv",
        "forecasted_data.csv",
        "model_metrics.csv",
        "model_history.csv",
        "backtest_metrics.csv",
    }

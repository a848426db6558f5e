"""Prediction stage (pure): one-step predictions over history and the multi-session forecast.

Both use a fitted scaler and a predictor (tasks.model.make_predictor); both return long tables
(one row per date and series), the shape the published CSVs and Power BI use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.features import Scaler, last_window, level_history, make_features, window_inputs
from tasks.model import Predictor, forecast_log_levels, predict_returns, predictor_for
from tasks.settings import Settings

SPLITS = ("train", "validation", "test", "live")


@dataclass(frozen=True)
class SplitDates:
    """Date boundaries of the data a model was fitted and evaluated on (from its model card).

    Rows before validation_start were trained on, rows from validation_start before test_start
    formed the validation slice, rows from test_start to data_end were held out, and anything after
    data_end arrived after training ("live").
    """

    validation_start: date
    test_start: date
    data_end: date

    def label(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """The split label of each date."""
        edges = pd.DatetimeIndex(
            [pd.Timestamp(self.validation_start), pd.Timestamp(self.test_start), pd.Timestamp(self.data_end) + pd.Timedelta(days=1)]
        )
        return np.asarray(SPLITS)[np.searchsorted(edges.as_unit("ns").asi8, dates.as_unit("ns").asi8, side="right")]


def one_step_predictions(
    predictor: Predictor,
    scaler: Scaler,
    levels: pd.DataFrame,
    *,
    sequence_length: int,
    level_window: int,
    split_dates: SplitDates,
    first_date: date | None = None,
) -> pd.DataFrame:
    """Next-session predictions for every session with a complete window before it.

    Args:
        predictor: from make_predictor.
        scaler: the model's fitted scaler.
        levels: aligned levels (consecutive sessions), columns in scaler.series order.
        sequence_length: the model's window length.
        level_window: the model's rolling-mean window of the level feature.
        split_dates: boundaries used to label each row's split.
        first_date: only predict target dates on or after this date.

    Returns:
        Long table: date, series_id, actual, predicted, naive, split.
    """
    features = make_features(levels, level_window)
    scaled = scaler.transform(features.to_numpy())
    rows = np.arange(sequence_length, len(features))
    if first_date is not None:
        rows = rows[features.index[rows] >= pd.Timestamp(first_date)]
    returns = predict_returns(predictor, window_inputs(scaled, sequence_length, rows), scaler)
    on_feature_dates = levels.loc[features.index].to_numpy(dtype="float64")
    previous, actual = on_feature_dates[rows - 1], on_feature_dates[rows]
    dates = features.index[rows]
    series = list(levels.columns)
    n = len(rows)
    return pd.DataFrame(
        {
            "date": np.tile(dates.to_numpy(), len(series)),
            "series_id": np.repeat(series, n),
            "actual": actual.T.reshape(-1),
            "predicted": (previous * np.exp(returns)).T.reshape(-1),
            "naive": previous.T.reshape(-1),
            "split": np.tile(split_dates.label(dates), len(series)),
        }
    )


def forecast_levels(
    predictor: Predictor, scaler: Scaler, levels: pd.DataFrame, *, sequence_length: int, level_window: int, horizon: int
) -> np.ndarray:
    """Forecast levels (horizon, n_series) from the last window of `levels`."""
    features = make_features(levels, level_window)
    scaled = scaler.transform(features.to_numpy())
    history = level_history(levels, features.index[-1:], level_window)
    return np.exp(forecast_log_levels(predictor, last_window(scaled, sequence_length), history, scaler, horizon)[0])


def forecast_table(
    forecast: np.ndarray,
    series: tuple[str, ...],
    dates: pd.DatetimeIndex,
    interval_quantiles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Long forecast table with prediction intervals.

    Args:
        forecast: (horizon, n_series) forecast levels.
        series: series ids (columns of `forecast`).
        dates: the forecast's NYSE sessions, one per step.
        interval_quantiles: columns series_id, horizon, q025, q10, q90, q975: quantiles of the
            backtest's out-of-sample log errors (actual/forecast) by horizon. None -> no bands.

    Returns:
        date, series_id, horizon, forecast, lower_95, lower_80, upper_80, upper_95.
    """
    horizon = forecast.shape[0]
    table = pd.DataFrame(
        {
            "date": np.tile(dates.to_numpy(), len(series)),
            "series_id": np.repeat(list(series), horizon),
            "horizon": np.tile(np.arange(1, horizon + 1), len(series)),
            "forecast": forecast.T.reshape(-1),
        }
    )
    bands = {"lower_95": "q025", "lower_80": "q10", "upper_80": "q90", "upper_95": "q975"}
    if interval_quantiles is None:
        for column in bands:
            table[column] = np.nan
        return table
    merged = table.merge(interval_quantiles, on=["series_id", "horizon"], how="left", validate="one_to_one")
    for column, quantile in bands.items():
        table[column] = merged["forecast"].to_numpy() * np.exp(merged[quantile].to_numpy())
    return table


# ---------------------------------------------------------------- tasks


@task(name="predict-history", cache_policy=NO_CACHE)
def predict_history_task(
    model: Any, scaler: Scaler, levels: pd.DataFrame, settings: Settings, *, split_dates: SplitDates, first_date: date | None = None
) -> pd.DataFrame:
    """One-step predictions over `levels` (from `first_date`), labelled by split."""
    predictions = one_step_predictions(
        predictor_for(model),
        scaler,
        levels,
        sequence_length=settings.sequence_length,
        level_window=settings.level_window,
        split_dates=split_dates,
        first_date=first_date,
    )
    counts = predictions.drop_duplicates("date")["split"].value_counts()
    get_run_logger().info(
        "Predicted %d sessions (%s)", predictions["date"].nunique(), ", ".join(f"{k}: {v}" for k, v in counts.items())
    )
    return predictions


@task(name="forecast-sessions", cache_policy=NO_CACHE)
def forecast_sessions_task(model: Any, scaler: Scaler, levels: pd.DataFrame, settings: Settings, *, z_quantiles: pd.DataFrame) -> pd.DataFrame:
    """Forecast `forecast_horizon` NYSE sessions after the last observation, with 80%/95% bands."""
    from tasks.backtest import interval_log_bounds
    from tasks.sessions import sessions_after

    last = levels.index[-1].date()
    dates = sessions_after(last, settings.forecast_horizon)
    started = time.perf_counter()
    path = forecast_levels(
        predictor_for(model),
        scaler,
        levels,
        sequence_length=settings.sequence_length,
        level_window=settings.level_window,
        horizon=settings.forecast_horizon,
    )
    elapsed_ms = 1000 * (time.perf_counter() - started)
    bounds = interval_log_bounds(z_quantiles, np.log(levels.to_numpy(dtype="float64")), settings.series, settings.forecast_horizon)
    table = forecast_table(path, settings.series, dates, bounds)
    get_run_logger().info(
        "Forecast %d sessions %s .. %s in %.0f ms (holidays skipped)", len(dates), dates[0].date(), dates[-1].date(), elapsed_ms
    )
    return table

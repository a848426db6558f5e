"""Prediction stage (pure): one-step predictions over history and the multi-session forecast.

Both use the model's ensemble (tasks.core.ensemble: the LSTM with its scaler, and the classical
members with their weights); both return long tables (one row per date and series), the shape the
published CSVs and Power BI use.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.core.calendar import sessions_after
from tasks.core.ensemble import Ensemble
from tasks.core.errors import InsufficientDataError
from tasks.core.features import SplitDates, make_features
from tasks.core.intervals import interval_log_bounds


def one_step_predictions(
    ensemble: Ensemble,
    levels: pd.DataFrame,
    *,
    split_dates: SplitDates,
    first_date: date | None = None,
) -> pd.DataFrame:
    """Next-session predictions of the ensemble for every session with a complete LSTM window before it.

    Args:
        ensemble: the model (tasks.core.ensemble).
        levels: aligned levels (consecutive sessions), columns in the model's series order.
        split_dates: boundaries used to label each row's split.
        first_date: only predict target dates on or after this date.

    Returns:
        Long table: date, series_id, actual, predicted, naive, split.
    """
    features = make_features(levels, ensemble.level_window)
    offset = len(levels) - len(features)
    rows = np.arange(ensemble.sequence_length, len(features))
    if first_date is not None:
        rows = rows[features.index[rows] >= pd.Timestamp(first_date)]
    if len(rows) == 0:
        needed = ensemble.level_window + ensemble.sequence_length
        raise InsufficientDataError(
            f"No session to predict: the data holds {len(levels)} aligned session(s) ({levels.index[0]:%Y-%m-%d} "
            f".. {levels.index[-1]:%Y-%m-%d}), and the model's first prediction needs {needed} "
            f"(level_window={ensemble.level_window} + sequence_length={ensemble.sequence_length}). "
            "Use a later as_of, or data that begins earlier."
        )
    predicted_log = ensemble.paths(levels, rows - 1 + offset, 1)[:, 0, :]
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
            # Relative to the previous level: a forecast equal to the random walk's is exactly its value.
            "predicted": (previous * np.exp(predicted_log - np.log(previous))).T.reshape(-1),
            "naive": previous.T.reshape(-1),
            "split": np.tile(split_dates.label(pd.DatetimeIndex(dates)), len(series)),
        }
    )


def forecast_levels(ensemble: Ensemble, levels: pd.DataFrame, *, horizon: int) -> np.ndarray:
    """The ensemble's forecast levels (horizon, n_series) from the last row of `levels`."""
    last = levels.to_numpy(dtype="float64")[-1]
    path = ensemble.paths(levels, np.array([len(levels) - 1]), horizon)[0]
    return np.asarray(last * np.exp(path - np.log(last)))


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


def forecast_sessions(
    ensemble: Ensemble, levels: pd.DataFrame, *, horizon: int, z_quantiles: pd.DataFrame
) -> pd.DataFrame:
    """The published forecast: `horizon` NYSE sessions after the last row of `levels`, with bands.

    Args:
        ensemble: the model (tasks.core.ensemble).
        levels: aligned levels up to the forecast origin, columns in the model's series order.
        horizon: sessions to forecast (holidays and weekends skipped).
        z_quantiles: the backtest's standardised error quantiles by series and horizon.

    Returns:
        The long forecast table of `forecast_table`, on the next `horizon` NYSE sessions.
    """
    dates = sessions_after(levels.index[-1].date(), horizon)
    path = forecast_levels(ensemble, levels, horizon=horizon)
    series = tuple(levels.columns)
    bounds = interval_log_bounds(z_quantiles, np.log(levels.to_numpy(dtype="float64")), series, horizon)
    return forecast_table(path, series, dates, bounds)

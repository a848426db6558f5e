"""Prediction stages: one-session-ahead predictions of the ensemble over history, their scores, the forecast."""

from __future__ import annotations

import time
from datetime import date

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core.ensemble import Ensemble
from tasks.core.features import SplitDates
from tasks.core.forecast import forecast_sessions, one_step_predictions
from tasks.core.metrics import score_predictions
from tasks.core.settings import Settings


@task(name="predict-history", cache_policy=NO_CACHE)
def predict_history_task(
    ensemble: Ensemble,
    levels: pd.DataFrame,
    settings: Settings,
    *,
    split_dates: SplitDates,
    first_date: date | None = None,
) -> pd.DataFrame:
    """One-step predictions of the ensemble over `levels` (from `first_date`), labelled by split."""
    predictions = one_step_predictions(ensemble, levels, split_dates=split_dates, first_date=first_date)
    counts = predictions.drop_duplicates("date")["split"].value_counts()
    get_run_logger().info(
        "Predicted %d sessions (%s)", predictions["date"].nunique(), ", ".join(f"{k}: {v}" for k, v in counts.items())
    )
    return predictions


@task(name="score-predictions", cache_policy=NO_CACHE)
def score_predictions_task(
    predictions: pd.DataFrame, *, splits: tuple[str, ...] | None = None, mase_scale: dict[str, float] | None = None
) -> pd.DataFrame:
    """Metrics per series and split (only `splits` if given), logged against the naive baseline.

    `mase_scale` is the model's training in-sample naive MAE per series (the MASE denominator).
    """
    selected = predictions if splits is None else predictions[predictions["split"].isin(splits)]
    metrics = score_predictions(selected, mase_scale=mase_scale)
    logger = get_run_logger()
    for row in metrics.itertuples():
        logger.info(
            "%s [%s, n=%d]: MAE %.4g vs random walk %.4g -> rel_mae %.3f, MASE %.3f; R2 %.3f (random walk %.3f)",
            row.series_id,
            row.split,
            row.n,
            row.mae,
            row.naive_mae,
            row.rel_mae,
            row.mase,
            row.r2,
            row.naive_r2,
        )
    return metrics


@task(name="forecast-sessions", cache_policy=NO_CACHE)
def forecast_sessions_task(
    ensemble: Ensemble, levels: pd.DataFrame, settings: Settings, *, z_quantiles: pd.DataFrame
) -> pd.DataFrame:
    """Forecast `forecast_horizon` NYSE sessions after the last observation with the ensemble, with 80%/95% bands."""
    started = time.perf_counter()
    table = forecast_sessions(ensemble, levels, horizon=settings.forecast_horizon, z_quantiles=z_quantiles)
    dates = pd.DatetimeIndex(table["date"].unique())
    get_run_logger().info(
        "Forecast %d sessions %s .. %s in %.0f ms (holidays skipped)",
        len(dates),
        dates[0].date(),
        dates[-1].date(),
        1000 * (time.perf_counter() - started),
    )
    return table

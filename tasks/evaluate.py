"""Evaluation stage (pure): error metrics of predictions, always next to the naive baseline.

MASE here is the model's MAE divided by the MAE of the random walk ("tomorrow equals today")
on the same rows: below 1.0 the model beats the naive forecast, above 1.0 it is worse. An R2 on
index levels looks good for any forecast that stays near yesterday's value; the naive columns
make that visible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

METRIC_COLUMNS = [
    "series_id",
    "split",
    "n",
    "mse",
    "mae",
    "r2",
    "naive_mse",
    "naive_mae",
    "naive_r2",
    "mase",
]


def _r2(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(r2_score(actual, predicted)) if len(actual) > 1 else float("nan")


def score_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics per series and split from a long predictions table.

    Args:
        predictions: columns series_id, split, actual, predicted, naive (the random-walk
            forecast of the same row: the previous session's actual value).

    Returns:
        One row per (series_id, split), columns METRIC_COLUMNS, in the input's order of appearance.
    """
    rows = []
    for (series_id, split), group in predictions.groupby(["series_id", "split"], sort=False):
        actual = group["actual"].to_numpy(dtype="float64")
        predicted = group["predicted"].to_numpy(dtype="float64")
        naive = group["naive"].to_numpy(dtype="float64")
        mae = float(mean_absolute_error(actual, predicted))
        naive_mae = float(mean_absolute_error(actual, naive))
        rows.append(
            {
                "series_id": series_id,
                "split": split,
                "n": len(group),
                "mse": float(mean_squared_error(actual, predicted)),
                "mae": mae,
                "r2": _r2(actual, predicted),
                "naive_mse": float(mean_squared_error(actual, naive)),
                "naive_mae": naive_mae,
                "naive_r2": _r2(actual, naive),
                "mase": mae / naive_mae if naive_mae > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


@task(name="score-predictions", cache_policy=NO_CACHE)
def score_predictions_task(predictions: pd.DataFrame, *, splits: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Metrics per series and split (only `splits` if given), logged against the naive baseline."""
    selected = predictions if splits is None else predictions[predictions["split"].isin(splits)]
    metrics = score_predictions(selected)
    logger = get_run_logger()
    for row in metrics.itertuples():
        logger.info(
            "%s [%s, n=%d]: MAE %.4g vs random walk %.4g -> MASE %.3f; R2 %.3f (random walk %.3f)",
            row.series_id, row.split, row.n, row.mae, row.naive_mae, row.mase, row.r2, row.naive_r2,
        )
    return metrics

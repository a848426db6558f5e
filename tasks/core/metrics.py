"""Error metrics (pure), darts-style: every metric is `metric(actual, predicted, ...) -> float`.

Every score the pipeline publishes is one of these, always next to the naive baseline: an R2 on
index levels looks good for any forecast that stays near yesterday's value, so each table also
carries the random walk's errors on the same rows, and `relative_mae` (model MAE / baseline MAE on
the same rows: below 1.0 the model beats the baseline) says how much better or worse it is.

`mase` is the standard MASE (Hyndman and Koehler, 2006; darts' `mase(actual, pred, insample, m=1)`):
the MAE scaled by the one-session naive forecast's MAE *in sample* (on the training part), not on
the scored rows; the published `rel_mae` columns are the ratio on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

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
    "rel_mae",
    "mase",
]


def _pair(actual: ArrayLike, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, p = np.asarray(actual, dtype="float64"), np.asarray(predicted, dtype="float64")
    if a.shape != p.shape:
        raise ValueError(f"actual {a.shape} and predicted {p.shape} must have the same shape")
    return a, p


def mae(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Mean absolute error."""
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(a - p)))


def mse(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Mean squared error."""
    a, p = _pair(actual, predicted)
    return float(np.mean((a - p) ** 2))


def rmse(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(actual, predicted)))


def r2(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Coefficient of determination; NaN for fewer than two values.

    A constant `actual` scores 1.0 when predicted exactly and 0.0 otherwise (as scikit-learn does).
    """
    a, p = _pair(actual, predicted)
    if len(a) < 2:
        return float("nan")
    residual = float(np.sum((a - p) ** 2))
    total = float(np.sum((a - np.mean(a)) ** 2))
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


def relative_mae(actual: ArrayLike, predicted: ArrayLike, baseline: ArrayLike) -> float:
    """MAE of `predicted` divided by the MAE of `baseline` on the same rows; NaN if the latter is 0."""
    reference = mae(actual, baseline)
    return mae(actual, predicted) / reference if reference > 0 else float("nan")


def insample_naive_mae(insample: ArrayLike, m: int = 1) -> float:
    """MAE of the naive forecast (the value m rows earlier) inside `insample`: MASE's denominator."""
    values = np.asarray(insample, dtype="float64")
    values = values[np.isfinite(values)]
    return float(np.mean(np.abs(values[m:] - values[:-m]))) if len(values) > m else float("nan")


def mase(actual: ArrayLike, predicted: ArrayLike, insample: ArrayLike, m: int = 1) -> float:
    """Mean absolute scaled error: MAE divided by the in-sample naive MAE of `insample` (m-step)."""
    return scaled_mae(actual, predicted, insample_naive_mae(insample, m))


def scaled_mae(actual: ArrayLike, predicted: ArrayLike, scale: float) -> float:
    """MAE divided by a precomputed MASE scale (`insample_naive_mae`); NaN if the scale is not positive."""
    return mae(actual, predicted) / scale if scale > 0 else float("nan")


def pinball_loss(actual: ArrayLike, quantile: ArrayLike, tau: float) -> float:
    """Mean pinball (quantile) loss of `quantile` as the tau-quantile forecast of `actual`."""
    a, q = _pair(actual, quantile)
    diff = a - q
    return float(np.mean(np.maximum(tau * diff, (tau - 1.0) * diff)))


def score_predictions(predictions: pd.DataFrame, *, mase_scale: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Metrics per series and split from a long predictions table.

    Args:
        predictions: columns series_id, split, actual, predicted, naive (the random-walk
            forecast of the same row: the previous session's actual value).
        mase_scale: per series, the training part's in-sample one-session naive MAE (MASE's
            denominator); a series without one gets an empty `mase`.

    Returns:
        One row per (series_id, split), columns METRIC_COLUMNS, in the input's order of appearance.
    """
    rows = []
    for (series_id, split), group in predictions.groupby(["series_id", "split"], sort=False):
        actual = group["actual"].to_numpy(dtype="float64")
        predicted = group["predicted"].to_numpy(dtype="float64")
        naive = group["naive"].to_numpy(dtype="float64")
        rows.append(
            {
                "series_id": series_id,
                "split": split,
                "n": len(group),
                "mse": mse(actual, predicted),
                "mae": mae(actual, predicted),
                "r2": r2(actual, predicted),
                "naive_mse": mse(actual, naive),
                "naive_mae": mae(actual, naive),
                "naive_r2": r2(actual, naive),
                "rel_mae": relative_mae(actual, predicted, naive),
                "mase": scaled_mae(actual, predicted, (mase_scale or {}).get(str(series_id), float("nan"))),
            }
        )
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)

"""Walk-forward backtest (pure): multi-session forecasts from every origin of the test period.

For each origin in the test part, the model forecasts up to the longest horizon using only data up
to that origin; errors are then scored per series and horizon against two baselines computed from
the same origins: the random walk (the level at the origin) and the drift (the origin's level grown
by the mean log-return of all data up to the origin).

The scaler and model are those fitted on the training part (every origin lies after it), or are
refitted every `refit_every` sessions on all data before the next origin (expanding window); the
refit itself is passed in, so this module never trains.

Prediction intervals come from out-of-sample errors (tasks.core.intervals). The errors are those
of the test origins plus, when a calibration start is given, those of forecasts made from the
validation slice with targets still
inside the training part (the network never trained on them; only the per-series shrinkage was
fitted there). Coverage is reported honestly: the band at a test origin uses only the validation
errors and the test errors already realised before that origin (expanding calibration), never the
error it is scored on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.core.features import Scaler, level_history, make_features, window_inputs
from tasks.core.intervals import QUANTILES, expanding_coverage, recent_volatility
from tasks.core.metrics import mae, relative_mae, rmse
from tasks.core.model import Predictor, forecast_log_levels

BACKTEST_COLUMNS = [
    "series_id",
    "horizon",
    "n",
    "mae",
    "rmse",
    "naive_mae",
    "naive_rmse",
    "drift_mae",
    "mase",
    "mase_vs_drift",
    "coverage_80",
    "coverage_95",
    "n_coverage",
]

Refit = Callable[[pd.DataFrame], tuple[Predictor, Scaler]]
# Progress of the backtest: (origins forecast so far, origins in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestResult:
    """Outcome of a walk-forward backtest.

    Attributes:
        metrics: one row per series and horizon, columns BACKTEST_COLUMNS.
        z_quantiles: series_id, horizon, q025, q10, q90, q975 of the standardised log errors over
            all origins: what the published forecast's intervals are built from.
        n_origins: forecast origins evaluated.
    """

    metrics: pd.DataFrame
    z_quantiles: pd.DataFrame
    n_origins: int


def run_backtest(
    predictor: Predictor,
    scaler: Scaler,
    levels: pd.DataFrame,
    *,
    test_start_row: int,
    sequence_length: int,
    level_window: int,
    horizons: tuple[int, ...],
    origin_step: int = 1,
    refit_every: int = 0,
    refit: Refit | None = None,
    calibration_start_row: int | None = None,
    on_progress: Progress | None = None,
) -> BacktestResult:
    """Walk-forward backtest over the test part of `levels`.

    Args:
        predictor: the model fitted on the training part.
        scaler: its scaler.
        levels: aligned levels, the whole frame the model was trained and tested on.
        test_start_row: position in `make_features(levels)` of the first test target (Split.train_end).
        sequence_length: window length.
        level_window: rolling-mean window of the level feature.
        horizons: horizons to score.
        origin_step: sessions between origins.
        refit_every: refit every N sessions (0 = never); needs `refit`.
        refit: fits (predictor, scaler) on the levels up to and including an origin.
        calibration_start_row: position in the features of the first validation target
            (Split.validation_start): its origins' errors seed the interval calibration.
        on_progress: called with (origins done, origins in all) after each block of origins (one
            block without refits; one per refit otherwise, each of which trains a model).

    Returns:
        BacktestResult.
    """
    features = make_features(levels, level_window)
    # Everything below is positioned on the feature rows: row o of `log_levels` is features row o.
    all_log_levels = np.log(levels.to_numpy(dtype="float64"))
    offset = len(levels) - len(features)
    log_levels = all_log_levels[offset:]
    n_rows, n_series = len(features), levels.shape[1]
    h_max = max(horizons)
    origins = np.arange(test_start_row - 1, n_rows - 1, origin_step)  # features row of each origin
    if len(origins) == 0:
        raise ValueError("the test part holds no forecast origin")

    scaled_once = scaler.transform(features.to_numpy())

    def forecast_from(
        selected: np.ndarray, use_predictor: Predictor, use_scaler: Scaler, scaled: np.ndarray
    ) -> np.ndarray:
        windows = window_inputs(scaled, sequence_length, selected + 1)
        history = level_history(levels, features.index[selected], level_window)
        return forecast_log_levels(use_predictor, windows, history, use_scaler, h_max)

    paths = np.full((len(origins), h_max, n_series), np.nan)
    for block in _refit_blocks(origins, refit_every if refit is not None else 0):
        if refit_every and refit is not None and block[0] != 0:
            block_predictor, block_scaler = refit(levels.iloc[: offset + origins[block[0]] + 1])
            paths[block] = forecast_from(
                origins[block], block_predictor, block_scaler, block_scaler.transform(features.to_numpy())
            )
        else:
            paths[block] = forecast_from(origins[block], predictor, scaler, scaled_once)
        if on_progress is not None:
            on_progress(int(block[-1]) + 1, len(origins))

    volatility = recent_volatility(all_log_levels)
    calibration: dict[int, np.ndarray] = {h: np.empty((0, n_series)) for h in horizons}
    if calibration_start_row is not None and calibration_start_row < test_start_row:
        cal_origins = np.arange(max(calibration_start_row, sequence_length) - 1, test_start_row - 1, origin_step)
        cal_paths = forecast_from(cal_origins, predictor, scaler, scaled_once)
        for h in horizons:
            inside = cal_origins + h < test_start_row  # targets still in the training part
            o = cal_origins[inside]
            calibration[h] = (log_levels[o + h] - cal_paths[inside, h - 1, :]) / (volatility[o + offset] * np.sqrt(h))

    origin_levels = log_levels[origins]
    # Drift baseline: the mean daily log-return of all data up to each origin.
    origin_positions = origins + offset
    drift_per_step = (all_log_levels[origin_positions] - all_log_levels[0]) / origin_positions[:, None]
    origin_volatility = volatility[origin_positions]

    metric_rows, quantile_rows = [], []
    for h in horizons:
        target_rows = origins + h
        valid = target_rows < n_rows
        actual = log_levels[target_rows[valid]]
        forecast = paths[valid, h - 1, :]
        naive = origin_levels[valid]
        drift = naive + h * drift_per_step[valid]
        z = (actual - forecast) / (origin_volatility[valid] * np.sqrt(h))
        cover80, cover95, n_cover = expanding_coverage(z, origins[valid], h, prior=calibration[h])
        pooled = np.vstack([calibration[h], z])
        for j, sid in enumerate(levels.columns):
            a, f, nv, dr = (np.exp(x[:, j]) for x in (actual, forecast, naive, drift))
            metric_rows.append(
                {
                    "series_id": sid,
                    "horizon": h,
                    "n": int(valid.sum()),
                    "mae": mae(a, f),
                    "rmse": rmse(a, f),
                    "naive_mae": mae(a, nv),
                    "naive_rmse": rmse(a, nv),
                    "drift_mae": mae(a, dr),
                    "mase": relative_mae(a, f, nv),
                    "mase_vs_drift": relative_mae(a, f, dr),
                    "coverage_80": cover80[j],
                    "coverage_95": cover95[j],
                    "n_coverage": n_cover[j],
                }
            )
            finite = pooled[:, j][np.isfinite(pooled[:, j])]
            quantile_rows.append(
                {"series_id": sid, "horizon": h, **{k: float(np.quantile(finite, q)) for k, q in QUANTILES.items()}}
            )
    metrics = pd.DataFrame(metric_rows, columns=BACKTEST_COLUMNS)
    return BacktestResult(metrics, pd.DataFrame(quantile_rows), len(origins))


def _refit_blocks(origins: np.ndarray, refit_every: int) -> list[np.ndarray]:
    positions = np.arange(len(origins))
    if refit_every <= 0:
        return [positions]
    block_of = (origins - origins[0]) // refit_every
    return [positions[block_of == b] for b in np.unique(block_of)]

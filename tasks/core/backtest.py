"""Walk-forward backtest (pure): multi-session forecasts of the ensemble from every origin of the test period.

For each origin in the test part, the ensemble (tasks.core.ensemble) forecasts up to the longest
horizon using only data up to that origin; errors are then scored per series and horizon against
two baselines computed from the same origins: the random walk (the level at the origin) and the
drift (the origin's level grown by the mean log-return of all data up to the origin).

The model is the one fitted on the training part (every origin lies after it), or is refitted
every `refit_every` sessions on all data before the next origin (expanding window); the refit
itself is passed in, so this module never trains.

Scores per series and horizon (`BACKTEST_COLUMNS`): MAE and RMSE; `rel_mae`, the MAE over the
random walk's on the same origins (and over the drift's); `mase`, the MAE over the training part's
in-sample one-session naive MAE (the standard MASE); a Diebold-Mariano test of the absolute errors
against the random walk's (tasks.core.significance); the intervals' coverage and pinball loss.

Prediction intervals come from out-of-sample errors (tasks.core.intervals), standardised by the
origin's expected volatility of the h-session change (`horizon_volatility`), per horizon. The errors
are those of the test origins plus, when a calibration start is given, those of forecasts made
inside the training part with targets still inside it, from origins where every member the series
uses is out of sample: the validation slice for a series whose ensemble uses the LSTM (the network
never trained on it), else every origin with enough history for the classical members (they are
re-estimated at each origin).
Coverage and pinball loss are reported honestly: the band at a test origin uses only those errors
and the test errors already realised before that origin (expanding calibration), never the error it
is scored on, at quantile levels corrected by the misses realised so far (adaptive conformal
inference, `tasks.core.intervals.adaptive_bands`), and held at least as wide as the same origin's band
at the shorter horizons scored (`tasks.core.intervals.widen_with_horizon`, as the published
forecast's bands are); the published quantiles are those of every error at the levels reached at
the end. The pinball loss (mean over the four band quantiles, in the
series' units) is compared with the random walk's with empirical bands: quantiles of the past
h-session changes from the same origins, not scaled by volatility. Beside each coverage, the range
a perfectly calibrated band's coverage falls in, by chance, in nine test parts out of ten on the
same origins (`calibrated_80_low` .. `calibrated_95_high`, `tasks.core.intervals.calibrated_coverage_range`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.core.ensemble import Ensemble
from tasks.core.features import make_features
from tasks.core.intervals import (
    QUANTILES,
    adaptive_bands,
    band_coverage,
    calibrated_coverage_range,
    expanding_bands,
    horizon_volatility,
    widen_with_horizon,
)
from tasks.core.metrics import insample_naive_mae, mae, pinball_loss, relative_mae, rmse, scaled_mae
from tasks.core.significance import diebold_mariano

# The range of a perfectly calibrated 80% / 95% band's coverage on the same origins (9 test parts in 10).
NOMINALS = (0.80, 0.95)
CALIBRATED_COLUMNS = ("calibrated_80_low", "calibrated_80_high", "calibrated_95_low", "calibrated_95_high")
BACKTEST_COLUMNS = [
    "series_id",
    "horizon",
    "n",
    "mae",
    "rmse",
    "naive_mae",
    "naive_rmse",
    "drift_mae",
    "rel_mae",
    "rel_mae_vs_drift",
    "mase",
    "dm_stat",
    "dm_pvalue",
    "coverage_80",
    "coverage_95",
    "n_coverage",
    "pinball",
    "naive_pinball",
    "rel_pinball",
    *CALIBRATED_COLUMNS,
]

Refit = Callable[[pd.DataFrame], Ensemble]
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
    ensemble: Ensemble,
    levels: pd.DataFrame,
    *,
    test_start_row: int,
    horizons: tuple[int, ...],
    origin_step: int = 1,
    refit_every: int = 0,
    refit: Refit | None = None,
    calibration_start_row: int | None = None,
    on_progress: Progress | None = None,
) -> BacktestResult:
    """Walk-forward backtest over the test part of `levels`.

    Args:
        ensemble: the model fitted on the training part.
        levels: aligned levels, the whole frame the model was trained and tested on.
        test_start_row: position in `make_features(levels)` of the first test target (Split.train_end).
        horizons: horizons to score.
        origin_step: sessions between origins.
        refit_every: refit every N sessions (0 = never); needs `refit`.
        refit: fits an ensemble on the levels up to and including an origin.
        calibration_start_row: position in the features of the first validation target
            (Split.validation_start): the interval calibration's errors start there (or earlier, for
            a series whose ensemble does not use the LSTM). None: test errors only.
        on_progress: called with (origins done, origins in all) after each block of origins (one
            block without refits; one per refit otherwise, each of which trains a model).

    Returns:
        BacktestResult.
    """
    features = make_features(levels, ensemble.level_window)
    # Everything below is positioned on the feature rows: row o of `log_levels` is features row o.
    all_log_levels = np.log(levels.to_numpy(dtype="float64"))
    offset = len(levels) - len(features)
    log_levels = all_log_levels[offset:]
    n_rows, n_series = len(features), levels.shape[1]
    if list(horizons) != sorted(set(horizons)):
        raise ValueError(f"horizons must be distinct and increasing, got {horizons}")
    series = list(levels.columns)
    h_max = max(horizons)
    origins = np.arange(test_start_row - 1, n_rows - 1, origin_step)  # features row of each origin
    if len(origins) == 0:
        raise ValueError("the test part holds no forecast origin")

    paths = np.full((len(origins), h_max, n_series), np.nan)
    for block in _refit_blocks(origins, refit_every if refit is not None else 0):
        model = ensemble
        if refit_every and refit is not None and block[0] != 0:
            model = refit(levels.iloc[: offset + origins[block[0]] + 1])
        paths[block] = model.paths(levels, origins[block] + offset, h_max)
        if on_progress is not None:
            on_progress(int(block[-1]) + 1, len(origins))

    volatility = {h: horizon_volatility(all_log_levels, h) for h in horizons}
    z_prior, change_prior, prior_origins = _calibration_errors(
        ensemble, levels, log_levels, volatility, offset=offset, test_start_row=test_start_row,
        calibration_start_row=calibration_start_row, horizons=horizons, origin_step=origin_step,
    )  # fmt: skip

    # Drift baseline: the mean daily log-return of all data up to each origin.
    origin_positions = origins + offset
    drift_per_step = (all_log_levels[origin_positions] - all_log_levels[0]) / origin_positions[:, None]
    mase_scale = [insample_naive_mae(levels.iloc[: offset + test_start_row, j].to_numpy()) for j in range(n_series)]

    metric_rows, quantile_rows = [], []
    shorter: np.ndarray | None = None  # band offsets of the horizon before, per origin (a prefix of these)
    for h in horizons:
        valid = origins + h < n_rows
        o = origins[valid]
        actual = log_levels[o + h]
        forecast = paths[valid, h - 1, :]
        naive = log_levels[o]
        drift = naive + h * drift_per_step[valid]
        scale = volatility[h][o + offset]
        z = (actual - forecast) / scale
        offsets, next_levels = _band_offsets(
            z, o, h, scale, prior=z_prior[h], prior_origins=prior_origins[h], shorter=shorter
        )
        shorter = offsets
        cover80, cover95, n_cover = band_coverage(offsets, actual - forecast)
        model_bands = np.exp(forecast[:, :, None] + offsets)
        walk_bands = np.exp(naive[:, :, None] + expanding_bands(actual - naive, o, h, prior=change_prior[h]))
        overlap = math.ceil(h / origin_step)
        pooled = np.vstack([z_prior[h], z])
        for j, sid in enumerate(series):
            a, f, nv, dr = (np.exp(x[:, j]) for x in (actual, forecast, naive, drift))
            test = diebold_mariano(np.abs(a - f), np.abs(a - nv), horizon=overlap)
            pinball, naive_pinball = _pinball_pair(a, model_bands[:, j, :], walk_bands[:, j, :])
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
                    "rel_mae": relative_mae(a, f, nv),
                    "rel_mae_vs_drift": relative_mae(a, f, dr),
                    "mase": scaled_mae(a, f, mase_scale[j]),
                    "dm_stat": test.statistic,
                    "dm_pvalue": test.p_value,
                    "coverage_80": cover80[j],
                    "coverage_95": cover95[j],
                    "n_coverage": n_cover[j],
                    "pinball": pinball,
                    "naive_pinball": naive_pinball,
                    "rel_pinball": pinball / naive_pinball if naive_pinball > 0 else math.nan,
                    **_calibrated_columns(h, int(n_cover[j]), origin_step),
                }
            )
            finite = pooled[:, j][np.isfinite(pooled[:, j])]
            # The published bands: every error, at the levels the adaptive correction has reached.
            quantiles = np.quantile(finite, next_levels[j])
            quantile_rows.append(
                {"series_id": sid, "horizon": h, **dict(zip(QUANTILES, quantiles.tolist(), strict=True))}
            )
    metrics = pd.DataFrame(metric_rows, columns=BACKTEST_COLUMNS)
    return BacktestResult(metrics, pd.DataFrame(quantile_rows), len(origins))


def _calibrated_columns(h: int, n: int, origin_step: int) -> dict[str, float]:
    """The range of a perfectly calibrated band's coverage on the n origins scored (NaN when none)."""
    if n < 1:
        return dict.fromkeys(CALIBRATED_COLUMNS, math.nan)
    ranges = calibrated_coverage_range(h, n, NOMINALS, origin_step)
    return dict(zip(CALIBRATED_COLUMNS, (bound for pair in ranges for bound in pair), strict=True))


def _calibration_errors(
    ensemble: Ensemble,
    levels: pd.DataFrame,
    log_levels: np.ndarray,
    volatility: dict[int, np.ndarray],
    *,
    offset: int,
    test_start_row: int,
    calibration_start_row: int | None,
    horizons: tuple[int, ...],
    origin_step: int,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per horizon, the ensemble's standardised errors and the random walk's log changes in calibration.

    On the calibration origins inside the training part (returned third); NaN where a series'
    calibration has not begun.
    """
    n_series = levels.shape[1]
    empty = {h: np.empty((0, n_series)) for h in horizons}
    if calibration_start_row is None or calibration_start_row >= test_start_row:
        return empty, dict(empty), {h: np.empty(0, dtype=np.int64) for h in horizons}
    classical_first = max(0, ensemble.card.min_estimation_sessions - 1 - offset)
    uses_lstm = ensemble.uses_lstm
    first = np.array(
        [
            calibration_start_row - 1 if uses_lstm[str(s)] else min(classical_first, calibration_start_row - 1)
            for s in levels
        ]
    )
    cal_origins = np.arange(max(int(first.min()), 0), test_start_row - 1, origin_step)
    cal_paths = ensemble.paths(levels, cal_origins + offset, max(horizons))
    z_prior, change_prior, prior_origins = {}, {}, {}
    for h in horizons:
        inside = cal_origins + h < test_start_row  # targets still in the training part
        o = cal_origins[inside]
        outside = o[:, None] < first[None, :]
        z = (log_levels[o + h] - cal_paths[inside, h - 1, :]) / volatility[h][o + offset]
        z_prior[h] = np.where(outside, np.nan, z)
        change_prior[h] = np.where(outside, np.nan, log_levels[o + h] - log_levels[o])
        prior_origins[h] = o
    return z_prior, change_prior, prior_origins


def _band_offsets(
    z: np.ndarray,
    origins: np.ndarray,
    h: int,
    scale: np.ndarray,
    *,
    prior: np.ndarray,
    prior_origins: np.ndarray,
    shorter: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The bands at each origin as log offsets from the forecast, and the levels the next band would use.

    The adaptive conformal bands of the standardised errors `z` (`adaptive_bands`), scaled back by
    each origin's volatility, and never narrower than the `shorter` horizon's bands at the same
    origins (the first len(origins) rows), as the published forecast's are (`widen_with_horizon`).
    """
    bands, next_levels = adaptive_bands(z, origins, h, prior=prior, prior_origins=prior_origins)
    offsets = bands * scale[:, :, None]
    if shorter is not None:
        offsets = widen_with_horizon(np.stack([shorter[: len(origins)], offsets], axis=-3))[:, 1]
    return offsets, next_levels


def _pinball_pair(actual: np.ndarray, model_bands: np.ndarray, walk_bands: np.ndarray) -> tuple[float, float]:
    """Mean pinball loss over the band quantiles of the model and of the random walk, on origins where both exist."""
    both = np.isfinite(model_bands).all(axis=1) & np.isfinite(walk_bands).all(axis=1)
    if not both.any():
        return math.nan, math.nan
    taus = list(QUANTILES.values())
    model = np.mean([pinball_loss(actual[both], model_bands[both, k], tau) for k, tau in enumerate(taus)])
    walk = np.mean([pinball_loss(actual[both], walk_bands[both, k], tau) for k, tau in enumerate(taus)])
    return float(model), float(walk)


def _refit_blocks(origins: np.ndarray, refit_every: int) -> list[np.ndarray]:
    positions = np.arange(len(origins))
    if refit_every <= 0:
        return [positions]
    block_of = (origins - origins[0]) // refit_every
    return [positions[block_of == b] for b in np.unique(block_of)]

"""Walk-forward backtest (pure): multi-session forecasts from every origin of the test period.

For each origin in the test part, the model forecasts up to the longest horizon using only data up
to that origin; errors are then scored per series and horizon against two baselines computed from
the same origins: the random walk (the level at the origin) and the drift (the origin's level grown
by the mean log-return of all data up to the origin).

The scaler and model are those fitted on the training part (every origin lies after it), or are
refitted every `refit_every` sessions on all data before the next origin (expanding window).

Prediction intervals come from out-of-sample errors: log errors divided by the origin's recent
volatility (std of the last `VOL_WINDOW` daily log-returns) times sqrt(horizon). Their quantiles
give bands that widen in turbulent markets. The errors are those of the test origins plus, when a
calibration start is given, those of forecasts made from the validation slice with targets still
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
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.features import Scaler, level_history, make_features, window_inputs
from tasks.model import Predictor, forecast_log_levels, predictor_for
from tasks.settings import Settings
from tasks.training import TrainedModel, fit_lstm

VOL_WINDOW = 60
MIN_CALIBRATION = 20
QUANTILES = {"q025": 0.025, "q10": 0.10, "q90": 0.90, "q975": 0.975}

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


def recent_volatility(log_levels: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """Std of the last `window` daily log-returns at each row, shape like log_levels.

    Rows with fewer than 2 returns before them get the std of what exists (NaN for row 0..1).
    """
    returns = pd.DataFrame(np.diff(log_levels, axis=0))
    vol = returns.rolling(window, min_periods=2).std(ddof=1).to_numpy()
    return np.vstack([np.full((1, log_levels.shape[1]), np.nan), vol])


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

    def forecast_from(selected: np.ndarray, use_predictor: Predictor, use_scaler: Scaler, scaled: np.ndarray) -> np.ndarray:
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
        cover80, cover95, n_cover = _expanding_coverage(z, origins[valid], h, prior=calibration[h])
        pooled = np.vstack([calibration[h], z])
        for j, sid in enumerate(levels.columns):
            a, f, nv, dr = (np.exp(x[:, j]) for x in (actual, forecast, naive, drift))
            mae, naive_mae = np.mean(np.abs(a - f)), np.mean(np.abs(a - nv))
            drift_mae = np.mean(np.abs(a - dr))
            metric_rows.append(
                {
                    "series_id": sid,
                    "horizon": h,
                    "n": int(valid.sum()),
                    "mae": mae,
                    "rmse": float(np.sqrt(np.mean((a - f) ** 2))),
                    "naive_mae": naive_mae,
                    "naive_rmse": float(np.sqrt(np.mean((a - nv) ** 2))),
                    "drift_mae": drift_mae,
                    "mase": mae / naive_mae if naive_mae > 0 else np.nan,
                    "mase_vs_drift": mae / drift_mae if drift_mae > 0 else np.nan,
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


def _expanding_coverage(
    z: np.ndarray, origins: np.ndarray, h: int, *, prior: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage of 80% and 95% bands built only from errors realised before each origin.

    The error of origin o is known at o + h; the band at origin o uses the `prior` errors (realised
    before the first origin) and the errors of origins o' with o' + h <= o, and is scored only when
    at least MIN_CALIBRATION of them exist.
    """
    n_series = z.shape[1]
    prior = np.empty((0, n_series)) if prior is None else prior
    hits80, hits95, counts = np.zeros(n_series), np.zeros(n_series), np.zeros(n_series, dtype=int)
    for i, origin in enumerate(origins):
        known = origins + h <= origin
        if known.sum() + len(prior) < MIN_CALIBRATION:
            continue
        past = np.vstack([prior, z[known]])
        score = z[i]
        for j in range(n_series):
            cal = past[:, j][np.isfinite(past[:, j])]
            if len(cal) < MIN_CALIBRATION or not np.isfinite(score[j]):
                continue
            lo80, hi80, lo95, hi95 = np.quantile(cal, [0.10, 0.90, 0.025, 0.975])
            hits80[j] += lo80 <= score[j] <= hi80
            hits95[j] += lo95 <= score[j] <= hi95
            counts[j] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits80 / counts, hits95 / counts, counts


def interval_log_bounds(
    z_quantiles: pd.DataFrame, log_levels: np.ndarray, series: tuple[str, ...], horizon: int
) -> pd.DataFrame:
    """Turn standardised error quantiles into log-space bounds for a forecast from the last row.

    Args:
        z_quantiles: from BacktestResult.z_quantiles (horizons the backtest scored).
        log_levels: (rows, n_series) log-levels up to the forecast origin.
        series: series order of the columns.
        horizon: steps of the forecast.

    Returns:
        series_id, horizon (1..horizon; interpolated between scored horizons, the nearest scored
        one beyond them), q025, q10, q90, q975 in log units, added to the forecast's log-level.
    """
    vol_now = recent_volatility(log_levels)[-1]
    rows = []
    for j, sid in enumerate(series):
        table = z_quantiles[z_quantiles["series_id"] == sid].sort_values("horizon")
        scored = table["horizon"].to_numpy()
        for h in range(1, horizon + 1):
            rows.append(
                {
                    "series_id": sid,
                    "horizon": h,
                    **{
                        k: float(np.interp(h, scored, table[k].to_numpy())) * vol_now[j] * np.sqrt(h)
                        for k in QUANTILES
                    },
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- task


@task(name="walk-forward-backtest", cache_policy=NO_CACHE)
def backtest_task(trained: TrainedModel, levels: pd.DataFrame, settings: Settings) -> BacktestResult:
    """Backtest the freshly trained model over its test part; refit on schedule if configured."""
    logger = get_run_logger()

    def refit(history: pd.DataFrame) -> tuple[Predictor, Scaler]:
        # Refit on everything up to the origin: the model's own split then puts the latest
        # test_fraction of that history into its test part, which the refit does not train on.
        logger.info("Backtest refit on %d sessions up to %s", len(history), history.index[-1].date())
        refitted = fit_lstm(history, settings)
        return predictor_for(refitted.model), refitted.scaler

    result = run_backtest(
        predictor_for(trained.model),
        trained.scaler,
        levels,
        test_start_row=trained.split.train_end,
        sequence_length=settings.sequence_length,
        level_window=settings.level_window,
        horizons=settings.backtest.horizons,
        origin_step=settings.backtest.origin_step,
        refit_every=settings.backtest.refit_every,
        refit=refit,
        calibration_start_row=trained.split.validation_start,
    )
    table = result.metrics.pivot(index="series_id", columns="horizon", values="mase")
    logger.info(
        "Backtest over %d origins, MASE vs random walk by horizon:\n%s", result.n_origins, table.round(3).to_string()
    )
    return result

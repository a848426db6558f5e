"""Prediction intervals (pure): volatility-scaled out-of-sample errors and their quantiles.

A forecast error at horizon h is measured as a log error divided by the origin's recent volatility
(std of the last `VOL_WINDOW` daily log-returns) times sqrt(h). Quantiles of these standardised
errors, scaled back by today's volatility, give bands that widen in turbulent markets. Coverage is
scored honestly: the band at an origin uses only errors already realised before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VOL_WINDOW = 60
MIN_CALIBRATION = 20
QUANTILES = {"q025": 0.025, "q10": 0.10, "q90": 0.90, "q975": 0.975}


def recent_volatility(log_levels: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """Std of the last `window` daily log-returns at each row, shape like log_levels.

    Rows with fewer than 2 returns before them get the std of what exists (NaN for row 0..1).
    """
    returns = pd.DataFrame(np.diff(log_levels, axis=0))
    vol = returns.rolling(window, min_periods=2).std(ddof=1).to_numpy()
    return np.vstack([np.full((1, log_levels.shape[1]), np.nan), vol])


def expanding_coverage(
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
                        k: float(np.interp(h, scored, table[k].to_numpy())) * vol_now[j] * np.sqrt(h) for k in QUANTILES
                    },
                }
            )
    return pd.DataFrame(rows)

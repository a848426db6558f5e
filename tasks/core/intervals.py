"""Prediction intervals (pure): volatility-scaled out-of-sample errors and their quantiles, per horizon.

A forecast error at horizon h is measured as a log error divided by the origin's expected
volatility of the h-session change (`horizon_volatility`: the recent volatility, the std of the last
`VOL_WINDOW` daily log-returns, reverting towards the long-run one as h grows, times sqrt(h)).
Quantiles of these standardised errors per horizon (split conformal calibration on out-of-sample
errors), scaled back by today's expected volatility, give bands that widen in turbulent markets.
Coverage is scored honestly: the band at an origin uses only errors already realised before it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VOL_WINDOW = 60
# The variance expected over the next h sessions reverts from the recent (VOL_WINDOW) level towards
# the long-run (LONG_VOL_WINDOW) one as in a GARCH(1,1) with this persistence per session
# (RiskMetrics' 0.97): short horizons are scaled by today's volatility, long ones by a blend.
LONG_VOL_WINDOW = 500
VOL_PERSISTENCE = 0.97
MIN_CALIBRATION = 20
QUANTILES = {"q025": 0.025, "q10": 0.10, "q90": 0.90, "q975": 0.975}


def recent_volatility(log_levels: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """Std of the last `window` daily log-returns at each row, shape like log_levels.

    Rows with fewer than 2 returns before them get the std of what exists (NaN for row 0..1).
    """
    returns = pd.DataFrame(np.diff(log_levels, axis=0))
    vol = returns.rolling(window, min_periods=2).std(ddof=1).to_numpy()
    return np.vstack([np.full((1, log_levels.shape[1]), np.nan), vol])


def horizon_volatility(log_levels: np.ndarray, h: int) -> np.ndarray:
    """Expected standard deviation of the h-session log change from each row, shape like log_levels.

    sqrt(h * (long^2 + (recent^2 - long^2) * (1 - p^h) / (h (1 - p)))) with the recent and long-run
    daily volatilities (`recent_volatility` over VOL_WINDOW and LONG_VOL_WINDOW sessions) and the
    persistence p = VOL_PERSISTENCE; the recent volatility alone where no long-run one exists.
    """
    recent = recent_volatility(log_levels, VOL_WINDOW)
    long_run = recent_volatility(log_levels, LONG_VOL_WINDOW)
    long_run = np.where(np.isfinite(long_run), long_run, recent)
    weight = (1.0 - VOL_PERSISTENCE**h) / (h * (1.0 - VOL_PERSISTENCE))
    variance = long_run**2 + (recent**2 - long_run**2) * weight
    return np.asarray(np.sqrt(np.maximum(variance, 0.0) * h))


def expanding_bands(errors: np.ndarray, origins: np.ndarray, h: int, *, prior: np.ndarray | None = None) -> np.ndarray:
    """Band quantiles (q025, q10, q90, q975) at each origin from errors realised before it.

    The error of origin o is known at o + h; the band at origin o uses the `prior` errors (realised
    before the first origin; NaN padding allowed, so series may have priors of different lengths) and
    the errors of origins o' with o' + h <= o. A band needs at least MIN_CALIBRATION errors; NaN before.

    Returns:
        (len(origins), n_series, 4) quantiles, in the order of QUANTILES.
    """
    n_series = errors.shape[1]
    prior = np.empty((0, n_series)) if prior is None else prior
    levels = list(QUANTILES.values())
    bands = np.full((len(origins), n_series, len(levels)), np.nan)
    for i, origin in enumerate(origins):
        known = origins + h <= origin
        if known.sum() + len(prior) < MIN_CALIBRATION:
            continue
        past = np.vstack([prior, errors[known]])
        for j in range(n_series):
            cal = past[:, j][np.isfinite(past[:, j])]
            if len(cal) >= MIN_CALIBRATION:
                bands[i, j] = np.quantile(cal, levels)
    return bands


def band_coverage(bands: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Share of `errors` inside the 80% and 95% `bands` (from expanding_bands), and the origins scored."""
    scored = np.isfinite(bands).all(axis=2) & np.isfinite(errors)
    inside80 = (bands[:, :, 1] <= errors) & (errors <= bands[:, :, 2]) & scored
    inside95 = (bands[:, :, 0] <= errors) & (errors <= bands[:, :, 3]) & scored
    counts = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inside80.sum(axis=0) / counts, inside95.sum(axis=0) / counts, counts


def expanding_coverage(
    z: np.ndarray, origins: np.ndarray, h: int, *, prior: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage of 80% and 95% bands built only from errors realised before each origin.

    The error of origin o is known at o + h; the band at origin o uses the `prior` errors (realised
    before the first origin) and the errors of origins o' with o' + h <= o, and is scored only when
    at least MIN_CALIBRATION of them exist.
    """
    return band_coverage(expanding_bands(z, origins, h, prior=prior), z)


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
    rows = []
    for j, sid in enumerate(series):
        table = z_quantiles[z_quantiles["series_id"] == sid].sort_values("horizon")
        scored = table["horizon"].to_numpy()
        for h in range(1, horizon + 1):
            scale = horizon_volatility(log_levels[-LONG_VOL_WINDOW - 1 :], h)[-1, j]
            rows.append(
                {
                    "series_id": sid,
                    "horizon": h,
                    **{k: float(np.interp(h, scored, table[k].to_numpy())) * scale for k in QUANTILES},
                }
            )
    return pd.DataFrame(rows)

"""Prediction intervals (pure): volatility-scaled out-of-sample errors and their quantiles, per horizon.

A forecast error at horizon h is measured as a log error divided by the origin's expected
volatility of the h-session change (`horizon_volatility`: the recent volatility, the std of the last
`VOL_WINDOW` daily log-returns, reverting towards the long-run one as h grows, times sqrt(h)).
Quantiles of these standardised errors per horizon (split conformal calibration on out-of-sample
errors), scaled back by today's expected volatility, give bands that widen in turbulent markets.
Coverage is scored honestly: the band at an origin uses only errors already realised before it.

The quantile levels adapt as errors are realised (`adaptive_bands`, adaptive conformal inference,
Gibbs and Candes 2021): each band's miss level alpha moves by gamma * (nominal alpha - miss) for
every realised error, so a band that has been missing more often than its nominal rate widens and
one that has been too wide narrows, while the calibration set keeps every realised error.

A band never narrows as the horizon grows (`widen_with_horizon`): the error of a forecast made with
what is known at the origin is no less dispersed h + 1 sessions ahead than h sessions ahead (for a
series whose changes are stationary), but quantiles estimated per horizon from finitely many errors
can be (a 30-session quantile rests on about ten independent outcomes in a year of origins), which
would draw a fan that narrows towards its end.

How far a coverage may stray from nominal by chance (`calibrated_coverage_range`): the origins of a
backtest are consecutive, so outcomes h sessions ahead from neighbouring origins share most of their
daily changes, and a year of origins at 30 sessions rests on fewer than ten independent outcomes.
Even a perfectly calibrated band then scores far from nominal in many test years. The range is
simulated: a Gaussian random walk with known variance, the exact band +/- z * sqrt(h) (calibrated
by construction), scored on the same number of origins, the same step and horizon, in
`CHANCE_REPS` simulated test parts with a fixed seed (the same numbers in every run). Volatility
clustering makes neighbouring outcomes more alike and so tends to widen it: the range is a modest
one. A coverage outside it says the band is off; one inside it cannot say more.
"""

from __future__ import annotations

import functools
from statistics import NormalDist

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
# Adaptive conformal step: Gibbs and Candes (2021) use gamma = 0.005 for one-step-ahead errors. An
# h-session error is realised h origins later and the errors of h neighbouring origins overlap, so
# a miss is counted about h times: the step per realised error is gamma / h, one update of about
# gamma per independent error. (Chosen from the literature; on the training part's calibration
# errors it brought more horizon-series cells within 3 points of nominal than the fixed levels.)
ACI_GAMMA = 0.005
# The range of a perfectly calibrated band's coverage (`calibrated_coverage_range`): simulated test
# parts, the generator's seed, and the central share of them the range holds (9 in 10).
CHANCE_REPS = 2000
CHANCE_SEED = 12
CHANCE_PERCENTILES = (5.0, 95.0)


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


def adaptive_bands(
    errors: np.ndarray,
    origins: np.ndarray,
    h: int,
    *,
    prior: np.ndarray | None = None,
    prior_origins: np.ndarray | None = None,
    gamma: float = ACI_GAMMA,
) -> tuple[np.ndarray, np.ndarray]:
    """Band quantiles at each origin from errors realised before it, at adaptively corrected levels.

    The errors are taken in origin order, the `prior` ones (at `prior_origins`, before the first
    origin) first. At each origin, the errors realised by then (origin o' with o' + h <= o) are the
    calibration set, as in `expanding_bands`, and each newly realised one whose origin had a band moves
    that band's miss level alpha (0.20 for the 80% band, 0.05 for the 95% one) by
    gamma / h * (nominal alpha - 1 if it fell outside the band else nominal alpha). The band is the
    (alpha / 2, 1 - alpha / 2) quantiles of the calibration set, alpha clipped to 0..1; none before
    MIN_CALIBRATION errors.

    Args:
        errors: (len(origins), n_series) errors (NaN: none).
        origins: origin positions, increasing.
        h: the horizon (sessions until an error is realised).
        prior: (n_prior, n_series) errors of earlier origins (NaN padding allowed).
        prior_origins: their positions (default: consecutive, the last h sessions before origins[0]).
        gamma: the adaptation step per independent error (`ACI_GAMMA`).

    Returns:
        (len(origins), n_series, 4) quantiles in the order of QUANTILES, and (n_series, 4) the levels
        the next band would use (after every error given has been realised).
    """
    n_series = errors.shape[1]
    prior = np.empty((0, n_series)) if prior is None else prior
    if prior_origins is None:
        prior_origins = origins[0] - h - np.arange(len(prior))[::-1] if len(origins) else np.arange(len(prior))
    positions = np.concatenate([np.asarray(prior_origins), np.asarray(origins)])
    values = np.vstack([prior, errors])
    nominal = np.array([1 - QUANTILES["q90"] + QUANTILES["q10"], 1 - QUANTILES["q975"] + QUANTILES["q025"]])
    step = gamma / h
    realised_by = np.searchsorted(positions + h, positions, side="right")  # errors known at each origin
    bands = np.full((len(positions), n_series, len(QUANTILES)), np.nan)
    final = np.zeros((n_series, len(QUANTILES)))
    for j in range(n_series):
        alpha = nominal.copy()  # miss levels of the 80% and 95% bands
        column = values[:, j]
        counted = 0
        for i in range(len(positions) + 1):
            known = realised_by[i] if i < len(positions) else len(positions)
            for k in range(counted, known):
                if np.isfinite(bands[k, j, 0]) and np.isfinite(column[k]):
                    lower, upper = bands[k, j, [1, 0]], bands[k, j, [2, 3]]
                    missed = (column[k] < lower) | (column[k] > upper)
                    alpha += step * (nominal - missed)
            counted = max(counted, known)
            levels = _band_levels(np.clip(alpha, 0.0, 1.0))
            if i == len(positions):
                final[j] = levels
                break
            calibration = column[:known][np.isfinite(column[:known])]
            if len(calibration) >= MIN_CALIBRATION:
                bands[i, j] = np.quantile(calibration, levels)
    return bands[len(prior) :], final


def _band_levels(alpha: np.ndarray) -> np.ndarray:
    """(q025, q10, q90, q975)-ordered quantile levels from the miss levels of the 80% and 95% bands.

    The 95% band never misses more often than the 80% one is allowed to, so the bands stay nested.
    """
    outer = min(alpha[1], alpha[0])
    return np.array([outer / 2, alpha[0] / 2, 1 - alpha[0] / 2, 1 - outer / 2])


def widen_with_horizon(offsets: np.ndarray) -> np.ndarray:
    """Band offsets from the forecast that never narrow as the horizon grows.

    Each lower quantile is at most, each upper one at least, the same quantile at every shorter
    horizon (a running minimum / maximum along the horizons).

    Args:
        offsets: (..., n_horizons, n_series, 4) log offsets from the forecast, in the order of
            QUANTILES, horizons increasing along axis -3; NaN: no band there.

    Returns:
        The same shape; a NaN stays NaN and is passed over by the horizons after it.
    """
    lower = np.fmin.accumulate(offsets[..., :2], axis=-3)
    upper = np.fmax.accumulate(offsets[..., 2:], axis=-3)
    return np.where(np.isnan(offsets), np.nan, np.concatenate([lower, upper], axis=-1))


def band_coverage(bands: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Share of `errors` inside the 80% and 95% `bands` (from expanding_bands), and the origins scored."""
    scored = np.isfinite(bands).all(axis=2) & np.isfinite(errors)
    inside80 = (bands[:, :, 1] <= errors) & (errors <= bands[:, :, 2]) & scored
    inside95 = (bands[:, :, 0] <= errors) & (errors <= bands[:, :, 3]) & scored
    counts = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inside80.sum(axis=0) / counts, inside95.sum(axis=0) / counts, counts


def calibrated_coverage_draws(
    horizon: int, n: int, nominals: tuple[float, ...], *, origin_step: int = 1, reps: int = CHANCE_REPS
) -> dict[float, np.ndarray]:
    """Coverage of perfectly calibrated bands on `n` origins `origin_step` sessions apart, `horizon` ahead.

    Args:
        horizon: sessions ahead (h).
        n: origins scored.
        nominals: the bands' nominal coverages (e.g. 0.80, 0.95).
        origin_step: sessions between consecutive origins.
        reps: simulated test parts; the generator is seeded with CHANCE_SEED and the arguments.

    Returns:
        nominal -> the coverage scored in each simulated test part, shape (reps,).
    """
    if horizon < 1 or n < 1 or origin_step < 1:
        raise ValueError(f"horizon, n and origin_step must be >= 1 (got {horizon}, {n}, {origin_step})")
    rng = np.random.default_rng([CHANCE_SEED, horizon, n, origin_step, reps])
    origins = np.arange(n) * origin_step
    walk = np.zeros((reps, int(origins[-1]) + horizon + 1))
    np.cumsum(rng.standard_normal((reps, walk.shape[1] - 1)), axis=1, out=walk[:, 1:])
    scaled = np.abs(walk[:, origins + horizon] - walk[:, origins]) / np.sqrt(horizon)
    return {nominal: (scaled <= NormalDist().inv_cdf(0.5 + nominal / 2.0)).mean(axis=1) for nominal in nominals}


@functools.lru_cache(maxsize=512)
def calibrated_coverage_range(
    horizon: int, n: int, nominals: tuple[float, ...], origin_step: int = 1
) -> tuple[tuple[float, float], ...]:
    """(low, high) per nominal: the 5-95% range of a perfectly calibrated band's coverage on these origins.

    Nine test parts in ten put a calibrated band's coverage inside it (see the module's docstring).
    """
    draws = calibrated_coverage_draws(horizon, n, nominals, origin_step=origin_step)
    ranges = []
    for nominal in nominals:
        low, high = np.percentile(draws[nominal], CHANCE_PERCENTILES)
        ranges.append((float(low), float(high)))
    return tuple(ranges)


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
        one beyond them), q025, q10, q90, q975 in log units, added to the forecast's log-level;
        never narrower than at a shorter horizon (`widen_with_horizon`).
    """
    recent = log_levels[-LONG_VOL_WINDOW - 1 :]
    steps = range(1, horizon + 1)
    scales = np.array([horizon_volatility(recent, h)[-1] for h in steps])  # (horizon, n_series)
    offsets = np.full((horizon, len(series), len(QUANTILES)), np.nan)
    for j, sid in enumerate(series):
        table = z_quantiles[z_quantiles["series_id"] == sid].sort_values("horizon")
        scored = table["horizon"].to_numpy()
        for k, name in enumerate(QUANTILES):
            offsets[:, j, k] = np.interp(steps, scored, table[name].to_numpy()) * scales[:, j]
    offsets = widen_with_horizon(offsets)
    rows = [
        {"series_id": sid, "horizon": h, **dict(zip(QUANTILES, offsets[h - 1, j].tolist(), strict=True))}
        for j, sid in enumerate(series)
        for h in steps
    ]
    return pd.DataFrame(rows)

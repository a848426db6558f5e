"""The embedded offline demo source: realistic, deterministic daily series in FRED's shape.

Used when no FRED key is configured, so the pipeline runs on a fresh machine with no account. The
values are synthetic and every output made from them is labelled as demo data.

What it imitates:
- one row per weekday, like FRED's daily series, with NaN (FRED's ".") on NYSE holidays for the
  indices and a few isolated missing values elsewhere; VIX keeps values on some holidays, as CBOE's;
- equity indices as geometric random walks with drift whose volatility follows the VIX level;
- VIX as a mean-reverting (Ornstein-Uhlenbeck) process in logs, its shocks negatively correlated
  with equity returns;
- a corporate bond total-return index with a slow trend and low volatility.

Each value depends only on the series id, the date and the seed, never on the requested window:
the path is always generated from the same epoch, so any window is a slice of one fixed history.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from tasks.core.calendar import sessions_in_range

DEMO_EPOCH = date(2000, 1, 3)
_TRADING_DAYS = 252.0


@dataclass(frozen=True)
class _Index:
    start: float
    annual_drift: float
    beta: float  # loading on the common equity factor
    idio_vol: float  # annualised idiosyncratic volatility


_INDICES: dict[str, _Index] = {
    "SP500": _Index(start=1450.0, annual_drift=0.075, beta=1.0, idio_vol=0.02),
    "DJIA": _Index(start=11350.0, annual_drift=0.07, beta=0.93, idio_vol=0.05),
    "BAMLCC4A0710YTRIV": _Index(start=190.0, annual_drift=0.05, beta=0.06, idio_vol=0.05),
}
_VIX_ID = "VIXCLS"


def _weekdays(end: date) -> pd.DatetimeIndex:
    return pd.bdate_range(DEMO_EPOCH, end, name="date").as_unit("ns")


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _vix_and_market(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-VIX path and the common equity shock, both of length n."""
    shocks = _stream(seed, "market").standard_normal((n, 2))
    rho = -0.7  # VIX rises when equities fall
    market = shocks[:, 0]
    vix_shock = rho * market + np.sqrt(1 - rho**2) * shocks[:, 1]
    kappa, theta, eta = 0.035, np.log(18.5), 0.075
    log_vix = np.empty(n)
    log_vix[0] = theta
    for t in range(1, n):  # a recursion: each value depends on the previous one
        log_vix[t] = log_vix[t - 1] + kappa * (theta - log_vix[t - 1]) + eta * vix_shock[t]
    return log_vix, market


def generate_demo_series(series_ids: tuple[str, ...], end: date, *, seed: int = 0) -> dict[str, pd.Series]:
    """Generate demo observations for `series_ids` on every weekday from DEMO_EPOCH to `end`.

    Args:
        series_ids: FRED-style ids. The four default ids get their own behaviour; any other id gets
            a generic trending index.
        end: Last date to generate (inclusive).
        seed: Seed of the whole demo world; the same seed gives the same values.

    Returns:
        series id -> float Series indexed by date, NaN where the observation is missing.
    """
    days = _weekdays(end)
    n = len(days)
    log_vix, market = _vix_and_market(n, seed)
    # Today's equity volatility is set by yesterday's VIX: using today's, which already moved with
    # today's shock, would bias returns downwards.
    daily_vol = np.exp(np.concatenate(([log_vix[0]], log_vix[:-1]))) / 100.0 / np.sqrt(_TRADING_DAYS)
    sessions = sessions_in_range(DEMO_EPOCH, end)
    holiday = ~days.isin(sessions)
    out: dict[str, pd.Series] = {}
    for sid in series_ids:
        # One stream per quantity: a longer window extends each stream without shifting the others.
        noise = _stream(seed, f"{sid}:noise").standard_normal(n)
        if sid == _VIX_ID:
            values = np.round(np.exp(log_vix + 0.01 * noise), 2)
            # CBOE publishes on some NYSE holidays: keep a value on every other holiday.
            missing = holiday & (np.cumsum(holiday) % 2 == 0)
        else:
            spec = _INDICES.get(sid, _Index(start=100.0, annual_drift=0.05, beta=0.5, idio_vol=0.1))
            drift = spec.annual_drift / _TRADING_DAYS - 0.5 * (spec.beta * daily_vol) ** 2
            idio = spec.idio_vol / np.sqrt(_TRADING_DAYS) * noise
            returns = np.where(holiday, 0.0, drift + spec.beta * daily_vol * market + idio)
            values = np.round(spec.start * np.exp(np.cumsum(returns)), 2)
            missing = holiday.copy()
        # A few isolated missing observations (FRED's "."), never two in a row.
        isolated = _stream(seed, f"{sid}:missing").random(n) < 0.003
        isolated[1:] &= ~isolated[:-1]
        missing |= isolated & ~holiday
        out[sid] = pd.Series(np.where(missing, np.nan, values), index=days, name=sid)
    return out

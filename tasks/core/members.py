"""Classical members of the ensemble (pure): closed-form forecasts of log-levels, in NumPy.

Each member forecasts the log-level of every series 1..horizon sessions after an origin from the
log-levels up to that origin, re-estimated at every origin from the last `window` sessions (fewer
when less history exists; no forecast, NaN, with fewer than `min_window`). Being closed forms they
cost a few array operations for hundreds of origins, so the ensemble can be fitted on rolling
origins, backtested and run by the daily flow exactly the same way, without TensorFlow.

- `random_walk`: the level at the origin ("tomorrow equals today").
- `drift`: the origin's log-level plus h times the mean daily log-return of the window.
- `mean_reversion`: an AR(1) on the log-level, x_t - m = phi (x_{t-1} - m) + e_t, with m the
  window's mean log-level and phi the least-squares slope clipped to [0, 1): the forecast decays
  from the origin towards m as phi^h. A series that does not revert in the window (phi >= 1) is
  forecast as the random walk.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np

MemberName = Literal["random_walk", "drift", "mean_reversion", "lstm"]
RANDOM_WALK: Final = "random_walk"
LSTM: Final = "lstm"
CLASSICAL_MEMBERS: Final[tuple[MemberName, ...]] = ("random_walk", "drift", "mean_reversion")
ALL_MEMBERS: Final[tuple[MemberName, ...]] = (*CLASSICAL_MEMBERS, "lstm")
_MAX_PHI: Final = 1.0 - 1e-9


def _window_sums(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Sum of values[first..last] (inclusive) along axis 0, per origin: (n_origins, n_series)."""
    cumulative = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    return np.asarray(cumulative[last + 1] - cumulative[first])


def classical_paths(
    log_levels: np.ndarray, origins: np.ndarray, horizon: int, *, window: int, min_window: int
) -> dict[MemberName, np.ndarray]:
    """Forecasts of every classical member from each origin.

    Args:
        log_levels: (rows, n_series) log-levels, consecutive sessions.
        origins: row positions of the forecast origins (the last row each forecast may use).
        horizon: sessions forecast (1..horizon).
        window: most sessions each estimate uses (the last ones up to the origin).
        min_window: fewest sessions an estimate needs; origins with less history get NaN.

    Returns:
        member name -> (len(origins), horizon, n_series) forecast log-levels.
    """
    x = np.asarray(log_levels, dtype=np.float64)
    origins = np.asarray(origins, dtype=np.int64)
    # Centred on the first row: the sums below stay small, so the variances keep their precision.
    x = x - x[:1]
    last = origins
    first = np.maximum(0, origins - window + 1)
    count = (last - first + 1)[:, None].astype(np.float64)
    enough = count >= max(min_window, 3)
    steps = np.arange(1, horizon + 1, dtype=np.float64)[None, :, None]
    at_origin = x[last]

    # AR(1) on pairs (x_{t-1}, x_t) inside the window: t = first+1 .. last.
    lagged = np.vstack([x[:1], x[:-1]])  # lagged[t] = x[t - 1]
    n_pairs = count - 1
    sum_y = _window_sums(x, first + 1, last)
    sum_z = _window_sums(lagged, first + 1, last)
    sum_zz = _window_sums(lagged * lagged, first + 1, last)
    sum_yz = _window_sums(x * lagged, first + 1, last)
    # An origin with a single session divides by zero here; `enough` masks it out below.
    with np.errstate(invalid="ignore", divide="ignore"):
        drift = (x[last] - x[first]) / n_pairs
        var_z = sum_zz - sum_z * sum_z / n_pairs
        cov_yz = sum_yz - sum_y * sum_z / n_pairs
        phi = np.where(var_z > 0, cov_yz / var_z, 1.0)
    reverts = phi < _MAX_PHI
    phi = np.clip(phi, 0.0, _MAX_PHI)
    mean = _window_sums(x, first, last) / count
    decay = phi[:, None, :] ** steps
    reversion = mean[:, None, :] + decay * (at_origin - mean)[:, None, :]
    walk = np.repeat(at_origin[:, None, :], horizon, axis=1)
    reversion = np.where(reverts[:, None, :], reversion, walk)

    paths: dict[MemberName, np.ndarray] = {
        "random_walk": walk,
        "drift": at_origin[:, None, :] + steps * drift[:, None, :],
        "mean_reversion": reversion,
    }
    offset = log_levels[:1][None, :, :]
    missing = ~enough[:, :, None]
    return {name: np.where(missing & (name != RANDOM_WALK), np.nan, path + offset) for name, path in paths.items()}

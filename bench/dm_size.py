"""How often the Diebold-Mariano test calls a difference significant when there is none, on the backtest's origins.

The project's `dm_pvalue` (`tasks.core.significance.diebold_mariano`: HAC variance with h - 1
autocovariances, the Harvey-Leybourne-Newbold correction, Student's t) is judged on about 200
origins whose h-session errors overlap. With so few independent outcomes at long horizons its
variance estimate is still too small on average, and a 5% test rejects more often than 5%.

Simulated here with two equally accurate forecasts: the loss differential at each origin is the sum
of the h daily shocks up to its target (neighbouring origins share h - 1 of them, as the forecasts'
errors do), origins `origin_step` sessions apart, the test called exactly as the backtest calls it.
The share of simulated test parts with p < 0.05 is the test's real size on those origins. Fixed seed.
"""

from __future__ import annotations

import math

import numpy as np

from tasks.core.significance import diebold_mariano

ALPHA = 0.05
REPS = 2000


def dm_size(horizon: int, n: int, *, origin_step: int = 1, reps: int = REPS, seed: int = 0) -> float:
    """Share of `reps` simulated test parts in which the test rejects equal accuracy at ALPHA (NaN for n < 3).

    Args:
        horizon: sessions ahead (h).
        n: origins scored in the cell.
        origin_step: sessions between consecutive origins (the backtest's `origin_step`).
        reps: simulated test parts.
        seed: the generator's seed (with the horizon, so each cell has its own draws).
    """
    if n < 3:
        return math.nan
    rng = np.random.default_rng([seed, horizon, n])
    overlap = math.ceil(horizon / origin_step)  # as `tasks.core.backtest` passes it
    rejected = 0
    for _ in range(reps):
        shocks = rng.standard_normal((n - 1) * origin_step + horizon)
        differential = np.convolve(shocks, np.ones(horizon), "valid")[::origin_step][:n]
        rejected += diebold_mariano(differential, np.zeros(n), horizon=overlap).p_value < ALPHA
    return rejected / reps

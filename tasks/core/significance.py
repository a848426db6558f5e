"""Significance of a forecast's gain over a baseline (pure): the Diebold-Mariano test.

Forecasts h sessions ahead made from consecutive origins overlap, so their loss differentials are
autocorrelated up to lag h - 1 even for an optimal forecast. The test therefore uses the HAC
(long-run) variance of the mean loss differential with h - 1 autocovariances (rectangular weights,
as Diebold and Mariano (1995); Bartlett weights if that estimate is not positive), and the
small-sample correction of Harvey, Leybourne and Newbold (1997): the statistic is scaled by
sqrt((n + 1 - 2h + h(h - 1)/n) / n) and compared with Student's t with n - 1 degrees of freedom.

SciPy (for Student's t) is imported on first use: the test runs in training only, and the daily
flow, which imports the ensemble's module (and with it `long_run_variance`), stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class DieboldMariano:
    """Outcome of a Diebold-Mariano test of equal accuracy.

    Attributes:
        statistic: HLN-corrected statistic; negative when the first forecast's loss is lower.
        p_value: two-sided p-value (Student's t, n - 1 degrees of freedom); NaN when undefined.
        n: loss differentials used.
    """

    statistic: float
    p_value: float
    n: int


def long_run_variance(values: np.ndarray, lags: int) -> float:
    """HAC variance of `values`' mean times n: autocovariances up to `lags`, rectangular weights.

    Falls back to Bartlett (Newey-West) weights when the rectangular estimate is not positive.
    """
    centred = values - values.mean()
    n = len(centred)
    gammas = [float(centred[k:] @ centred[: n - k]) / n for k in range(min(lags, n - 1) + 1)]
    rectangular = gammas[0] + 2.0 * sum(gammas[1:])
    if rectangular > 0:
        return rectangular
    return gammas[0] + 2.0 * sum((1.0 - k / (lags + 1)) * g for k, g in enumerate(gammas[1:], start=1))


def diebold_mariano(loss: ArrayLike, baseline_loss: ArrayLike, *, horizon: int) -> DieboldMariano:
    """Test whether `loss` and `baseline_loss` (per origin, same targets) have equal means.

    Args:
        loss: the forecast's loss at each origin (e.g. absolute errors).
        baseline_loss: the baseline's loss at the same origins.
        horizon: overlap of consecutive forecasts in origins (h for daily origins h sessions
            ahead; ceil(h / origin_step) when origins are origin_step sessions apart).

    Returns:
        The statistic and two-sided p-value; NaN for fewer than 3 differentials; 0 and 1 when the
        losses are identical (the same forecast).
    """
    differential = np.asarray(loss, dtype=np.float64) - np.asarray(baseline_loss, dtype=np.float64)
    differential = differential[np.isfinite(differential)]
    n, h = len(differential), max(1, int(horizon))
    if n < 3:
        return DieboldMariano(math.nan, math.nan, n)
    if not np.any(differential):
        return DieboldMariano(0.0, 1.0, n)  # the same forecast: no difference at all
    variance = long_run_variance(differential, h - 1) / n
    if not variance > 0:
        return DieboldMariano(math.nan, math.nan, n)
    statistic = float(differential.mean()) / math.sqrt(variance)
    correction = (n + 1 - 2 * h + h * (h - 1) / n) / n
    statistic *= math.sqrt(correction) if correction > 0 else math.nan
    from scipy import stats

    p_value = float(2.0 * stats.t.sf(abs(statistic), df=n - 1)) if math.isfinite(statistic) else math.nan
    return DieboldMariano(statistic, p_value, n)

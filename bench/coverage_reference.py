"""How far a perfectly calibrated band's coverage strays from nominal on the backtest's origins, by chance.

Issue 12 asks for coverage within 3 points of nominal in every cell. A cell's coverage is the share of
n origins, `origin_step` sessions apart, whose actual h sessions ahead fell inside the band.
Neighbouring origins share most of their h daily changes, so their hits are correlated: at 30
sessions about 200 daily origins rest on fewer than ten independent outcomes. Even the true
distribution's band then lands several points from nominal in most test years.

This module measures that noise. It simulates a Gaussian random walk with known unit variance and
scores the exact band +/- z * sqrt(h), which is calibrated by construction, on the same origins as the
cell (same n, h and step). The simulation runs `reps` times with a fixed seed, so every run prints the
same numbers. Real returns have fat tails and volatility clustering, which only add to this noise,
so the range is the narrowest a calibrated band can hope for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

REPS = 4000
SEED = 12  # issue 12
RANGE = (5.0, 95.0)  # percentiles: the central 90% of the calibrated band's coverage


@dataclass(frozen=True)
class CalibratedCoverage:
    """The coverage a perfectly calibrated band scores on one cell's origins, over simulated test parts.

    Attributes:
        nominal: the band's nominal coverage (0.80, 0.95).
        low, high: the 5th and 95th percentiles of its coverage.
        within_tolerance: the share of simulated test parts whose coverage is within `tolerance` of nominal.
    """

    nominal: float
    low: float
    high: float
    within_tolerance: float

    def contains(self, coverage: float) -> bool:
        """Whether `coverage` lies inside the calibrated band's 5-95% range (False for NaN)."""
        return bool(self.low - 1e-12 <= coverage <= self.high + 1e-12)


def calibrated_coverage(
    horizon: int,
    n: int,
    nominals: Sequence[float],
    *,
    tolerance: float,
    origin_step: int = 1,
    reps: int = REPS,
    seed: int = SEED,
) -> dict[float, CalibratedCoverage]:
    """Simulate a perfectly calibrated band on `n` origins `origin_step` sessions apart, `horizon` ahead.

    Args:
        horizon: sessions ahead (h).
        n: origins scored in the cell (`n_coverage`).
        nominals: the bands' nominal coverages.
        tolerance: distance from nominal that counts as "within" (issue 12: 0.03).
        origin_step: sessions between consecutive origins (the backtest's `origin_step`).
        reps: simulated test parts.
        seed: the generator's seed; with (horizon, n, origin_step) it fixes the numbers.

    Returns:
        nominal -> its `CalibratedCoverage`.
    """
    if horizon < 1 or n < 1 or origin_step < 1:
        raise ValueError(f"horizon, n and origin_step must be >= 1 (got {horizon}, {n}, {origin_step})")
    rng = np.random.default_rng([seed, horizon, n, origin_step])
    origins = np.arange(n) * origin_step
    steps = rng.standard_normal((reps, int(origins[-1]) + horizon), dtype=np.float64)
    walk = np.concatenate([np.zeros((reps, 1)), np.cumsum(steps, axis=1)], axis=1)
    scaled = np.abs(walk[:, origins + horizon] - walk[:, origins]) / np.sqrt(horizon)
    result = {}
    for nominal in nominals:
        z = NormalDist().inv_cdf(0.5 + nominal / 2.0)
        coverage = (scaled <= z).mean(axis=1)
        low, high = np.percentile(coverage, RANGE)
        within = float(np.mean(np.abs(coverage - nominal) <= tolerance + 1e-12))
        result[nominal] = CalibratedCoverage(nominal, float(low), float(high), within)
    return result

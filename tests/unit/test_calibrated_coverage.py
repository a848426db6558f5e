"""The range of a perfectly calibrated band's coverage on a backtest's origins (tasks.core.intervals).

The simulation is checked against what is known in closed form: with independent outcomes (one
session ahead, or origins a horizon apart) a calibrated band's coverage is a binomial share; with
overlapping outcomes its variance follows from the bivariate normal probability that two outcomes
sharing h - k of their h daily changes both fall inside the band.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from tasks.core.intervals import calibrated_coverage_draws, calibrated_coverage_range

Z90 = NormalDist().inv_cdf(0.95)


@pytest.mark.parametrize("nominal", [0.80, 0.95])
def test_independent_outcomes_give_the_binomial_share(nominal: float) -> None:
    n = 240
    ((low, high),) = calibrated_coverage_range(1, n, (nominal,))
    expected_low, expected_high = stats.binom.ppf([0.05, 0.95], n, nominal) / n
    assert low == pytest.approx(expected_low, abs=1.5 / n)
    assert high == pytest.approx(expected_high, abs=1.5 / n)
    # Origins a horizon apart share no daily change: the same binomial share, whatever the horizon.
    apart = calibrated_coverage_draws(20, n, (nominal,), origin_step=20)[nominal]
    assert apart.std() == pytest.approx(math.sqrt(nominal * (1 - nominal) / n), rel=0.08)
    assert apart.mean() == pytest.approx(nominal, abs=0.003)


def overlapping_sd(h: int, n: int, nominal: float) -> float:
    """Standard deviation of the coverage of n consecutive daily origins h ahead, in closed form."""
    z = NormalDist().inv_cdf(0.5 + nominal / 2)
    variance = n * nominal * (1 - nominal)
    for k in range(1, h):
        rho = (h - k) / h  # two outcomes k sessions apart share h - k of their h changes
        joint = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]])
        both = joint.cdf([z, z]) - joint.cdf([-z, z]) - joint.cdf([z, -z]) + joint.cdf([-z, -z])
        variance += 2 * (n - k) * (both - nominal**2)
    return math.sqrt(variance) / n


@pytest.mark.parametrize(("h", "n"), [(10, 231), (30, 211)])
def test_overlapping_outcomes_spread_as_the_closed_form_says(h: int, n: int) -> None:
    draws = calibrated_coverage_draws(h, n, (0.80,))[0.80]
    expected = overlapping_sd(h, n, 0.80)
    assert expected > 2 * math.sqrt(0.16 / n)  # the overlap matters
    assert draws.std() == pytest.approx(expected, rel=0.08)
    assert draws.mean() == pytest.approx(0.80, abs=0.01)
    ((low, high),) = calibrated_coverage_range(h, n, (0.80,))
    assert (high - low) / (2 * Z90) == pytest.approx(expected, rel=0.15)


def test_the_same_origins_give_the_same_range_in_every_run() -> None:
    first = calibrated_coverage_draws(5, 236, (0.8, 0.95))
    again = calibrated_coverage_draws(5, 236, (0.8, 0.95))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert calibrated_coverage_range(30, 211, (0.8, 0.95))[1][1] == 1.0  # a 95% band can cover every origin
    with pytest.raises(ValueError, match="must be >= 1"):
        calibrated_coverage_draws(0, 236, (0.8,))

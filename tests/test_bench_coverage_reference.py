"""The benchmark's reference for the coverage target: a perfectly calibrated band on the same origins.

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

from bench.coverage_reference import calibrated_coverage
from bench.report import coverage_lines, coverage_reference

Z90 = NormalDist().inv_cdf(0.95)


def _binomial_within(n: int, p: float, tolerance: float) -> float:
    k = np.arange(n + 1)
    return float(stats.binom.pmf(k, n, p)[np.abs(k / n - p) <= tolerance + 1e-12].sum())


@pytest.mark.parametrize("nominal", [0.80, 0.95])
def test_independent_outcomes_give_the_binomial_share(nominal: float) -> None:
    n = 240
    one_ahead = calibrated_coverage(1, n, (nominal,), tolerance=0.03)[nominal]
    low, high = stats.binom.ppf([0.05, 0.95], n, nominal) / n
    assert one_ahead.low == pytest.approx(low, abs=1.5 / n)
    assert one_ahead.high == pytest.approx(high, abs=1.5 / n)
    assert one_ahead.within_tolerance == pytest.approx(_binomial_within(n, nominal, 0.03), abs=0.02)
    # Origins a horizon apart share no daily change: the same binomial share, whatever the horizon.
    apart = calibrated_coverage(20, n, (nominal,), tolerance=0.03, origin_step=20)[nominal]
    assert apart.within_tolerance == pytest.approx(_binomial_within(n, nominal, 0.03), abs=0.02)


def _overlapping_sd(h: int, n: int, nominal: float) -> float:
    """Standard deviation of the coverage of n consecutive daily origins h ahead, in closed form."""
    z = NormalDist().inv_cdf(0.5 + nominal / 2)
    variance = n * nominal * (1 - nominal)
    for k in range(1, h):
        rho = (h - k) / h  # two outcomes k sessions apart share h - k of their h changes
        joint = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]])
        both = joint.cdf([z, z]) - joint.cdf([-z, z]) - joint.cdf([z, -z]) + joint.cdf([-z, -z])
        variance += 2 * (n - k) * (both - nominal**2)
    return math.sqrt(variance) / n


def test_overlapping_outcomes_spread_as_the_closed_form_says() -> None:
    n, h, nominal = 231, 10, 0.80
    overlapping = calibrated_coverage(h, n, (nominal,), tolerance=0.03)[nominal]
    expected = _overlapping_sd(h, n, nominal)
    assert expected > 2 * math.sqrt(nominal * (1 - nominal) / n)  # the overlap matters
    assert (overlapping.high - overlapping.low) / (2 * Z90) == pytest.approx(expected, rel=0.1)
    thirty = calibrated_coverage(30, 211, (nominal,), tolerance=0.03)[nominal]
    assert thirty.within_tolerance < overlapping.within_tolerance < _binomial_within(n, nominal, 0.03)


def test_the_same_cell_gives_the_same_numbers_in_every_run() -> None:
    assert calibrated_coverage(5, 236, (0.8, 0.95), tolerance=0.03) == calibrated_coverage(
        5, 236, (0.8, 0.95), tolerance=0.03
    )
    with pytest.raises(ValueError, match="must be >= 1"):
        calibrated_coverage(0, 236, (0.8,), tolerance=0.03)


def test_the_report_counts_cells_inside_the_calibrated_range_and_prints_them() -> None:
    rows = [
        {"series_id": "VIXCLS", "horizon": 1, "coverage_80": 0.80, "coverage_95": 0.50, "n_coverage": 240},
        {"series_id": "VIXCLS", "horizon": 30, "coverage_80": 0.88, "coverage_95": 0.95, "n_coverage": 211},
        {"series_id": "DJIA", "horizon": 1, "coverage_80": math.nan, "coverage_95": math.nan, "n_coverage": None},
    ]
    for row in rows:
        row["rel_pinball"] = 1.0
    reference = coverage_reference(rows, origin_step=1)
    assert reference["cells"] == 6
    assert reference["inside_calibrated_range"] == 3  # 80% at 1 and both at 30 sessions
    assert reference["outside_calibrated_range"] == [
        "coverage_95:VIXCLS:h1",
        "coverage_80:DJIA:h1",
        "coverage_95:DJIA:h1",
    ]
    one = calibrated_coverage(1, 240, (0.8, 0.95), tolerance=0.03)
    thirty = calibrated_coverage(30, 211, (0.8, 0.95), tolerance=0.03)
    expected = sum(c.within_tolerance for c in (*one.values(), *thirty.values()))
    assert reference["calibrated_expected_within_tolerance"] == pytest.approx(expected)
    assert rows[1]["calibrated_80"] == [thirty[0.8].low, thirty[0.8].high]
    assert rows[2]["calibrated_80"] is None

    report = {"coverage": rows, "coverage_reference": reference, "targets": []}
    lines = coverage_lines(report)
    assert lines[3].endswith(f"{thirty[0.8].low * 100:.0f}-{thirty[0.8].high * 100:.0f}% / "
                             f"{thirty[0.95].low * 100:.0f}-{thirty[0.95].high * 100:.0f}%")  # fmt: skip
    assert lines[4].endswith("n/a / n/a")
    assert "inside that range in 3 of 6" in "\n".join(lines)

"""The benchmark's reference for the coverage target: a perfectly calibrated band on the same origins.

The simulation itself is tested in tests/unit/test_calibrated_coverage.py; here, the share within
the target's tolerance and the report's counts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.coverage_reference import calibrated_coverage
from bench.report import coverage_lines, coverage_reference
from tasks.core.intervals import calibrated_coverage_range


def binomial_within(n: int, p: float, tolerance: float) -> float:
    k = np.arange(n + 1)
    return float(stats.binom.pmf(k, n, p)[np.abs(k / n - p) <= tolerance + 1e-12].sum())


def test_the_share_within_the_tolerance_is_binomial_for_independent_outcomes_and_falls_with_overlap() -> None:
    one = calibrated_coverage(1, 240, (0.80, 0.95), tolerance=0.03)
    assert one[0.80].within_tolerance == pytest.approx(binomial_within(240, 0.80, 0.03), abs=0.025)
    assert one[0.95].within_tolerance == pytest.approx(binomial_within(240, 0.95, 0.03), abs=0.025)
    assert (one[0.80].low, one[0.80].high) == calibrated_coverage_range(1, 240, (0.80, 0.95))[0]
    ten = calibrated_coverage(10, 231, (0.80,), tolerance=0.03)[0.80]
    thirty = calibrated_coverage(30, 211, (0.80,), tolerance=0.03)[0.80]
    assert thirty.within_tolerance < ten.within_tolerance < one[0.80].within_tolerance


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

    lines = coverage_lines({"coverage": rows, "coverage_reference": reference, "targets": []})
    assert lines[3].endswith(f"{thirty[0.8].low * 100:.0f}-{thirty[0.8].high * 100:.0f}% / "
                             f"{thirty[0.95].low * 100:.0f}-{thirty[0.95].high * 100:.0f}%")  # fmt: skip
    assert lines[4].endswith("n/a / n/a")
    assert "inside that range in 3 of 6" in "\n".join(lines)

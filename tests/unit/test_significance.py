"""The Diebold-Mariano test with the horizon's autocorrelation and the small-sample correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tasks.core.significance import diebold_mariano


def test_the_statistic_uses_h_minus_1_autocovariances_and_the_hln_correction() -> None:
    rng = np.random.default_rng(0)
    a, b = np.abs(rng.normal(size=60)), np.abs(rng.normal(size=60)) * 1.2
    h = 3
    d = a - b
    n = len(d)
    c = d - d.mean()
    gamma = [c[k:] @ c[: n - k] / n for k in range(h)]
    naive = d.mean() / math.sqrt((gamma[0] + 2 * sum(gamma[1:])) / n)
    expected = naive * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    result = diebold_mariano(a, b, horizon=h)
    assert result.statistic == pytest.approx(expected)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(expected), df=n - 1))


def test_a_clearly_better_forecast_is_significant_and_a_lucky_one_is_not() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=400)
    good, bad = truth + rng.normal(0, 0.5, 400), truth + rng.normal(0, 1.0, 400)
    result = diebold_mariano(np.abs(truth - good), np.abs(truth - bad), horizon=1)
    assert result.statistic < 0 and result.p_value < 1e-6
    same_quality = truth + rng.normal(0, 1.0, 400)
    assert diebold_mariano(np.abs(truth - same_quality), np.abs(truth - bad), horizon=1).p_value > 0.01


def test_overlapping_errors_are_less_significant_than_the_same_errors_taken_as_independent() -> None:
    rng = np.random.default_rng(2)
    shocks = rng.normal(size=(420, 2))
    # 20-session sums of daily shocks: what errors 20 sessions ahead from consecutive origins look like.
    errors = np.lib.stride_tricks.sliding_window_view(shocks, 20, axis=0).sum(axis=2)
    model, walk = np.abs(0.9 * errors[:, 0]), np.abs(errors[:, 1])
    assert diebold_mariano(model, walk, horizon=20).p_value > diebold_mariano(model, walk, horizon=1).p_value


def test_the_same_forecast_shows_no_difference() -> None:
    result = diebold_mariano(np.ones(10), np.ones(10), horizon=5)
    assert (result.statistic, result.p_value, result.n) == (0.0, 1.0, 10)
    assert math.isnan(diebold_mariano([1.0, 2.0], [2.0, 1.0], horizon=1).p_value)  # too few

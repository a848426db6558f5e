"""Classical members: closed forms re-estimated at every origin from the sessions up to it."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.core.members import classical_paths


@pytest.fixture(scope="module")
def log_levels() -> np.ndarray:
    rng = np.random.default_rng(7)
    trending = np.log(100.0) + np.cumsum(rng.normal(0.001, 0.01, 700))
    reverting = np.empty(700)
    reverting[0] = np.log(20.0)
    for t in range(1, 700):
        reverting[t] = np.log(20.0) + 0.9 * (reverting[t - 1] - np.log(20.0)) + rng.normal(0, 0.05)
    return np.column_stack([trending, reverting])


def test_each_member_matches_its_closed_form_on_the_window_up_to_the_origin(log_levels: np.ndarray) -> None:
    origin, window = 650, 400
    paths = classical_paths(log_levels, np.array([origin]), 5, window=window, min_window=100)
    steps = np.arange(1, 6)
    for j in range(2):
        x = log_levels[origin - window + 1 : origin + 1, j]
        np.testing.assert_allclose(paths["random_walk"][0, :, j], x[-1])
        np.testing.assert_allclose(paths["drift"][0, :, j], x[-1] + steps * (x[-1] - x[0]) / (window - 1))
        z, y = x[:-1], x[1:]
        phi = np.sum((z - z.mean()) * (y - y.mean())) / np.sum((z - z.mean()) ** 2)
        expected = x.mean() + phi**steps * (x[-1] - x.mean()) if phi < 1 else np.full(5, x[-1])
        np.testing.assert_allclose(paths["mean_reversion"][0, :, j], expected, rtol=1e-9)


def test_a_forecast_never_reads_a_session_after_its_origin(log_levels: np.ndarray) -> None:
    origins = np.array([300, 500])
    before = classical_paths(log_levels, origins, 10, window=250, min_window=100)
    changed = log_levels.copy()
    changed[501:] += 1.0
    after = classical_paths(changed, origins, 10, window=250, min_window=100)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_the_reverting_series_is_pulled_towards_its_mean(log_levels: np.ndarray) -> None:
    origin = int(np.argmax(log_levels[300:, 1])) + 300  # a spike
    path = classical_paths(log_levels, np.array([origin]), 30, window=300, min_window=100)["mean_reversion"][0, :, 1]
    assert path[0] < log_levels[origin, 1] and path[-1] < path[0]
    assert abs(path[-1] - log_levels[origin - 299 : origin + 1, 1].mean()) < 0.05


def test_too_little_history_gives_no_forecast_but_the_random_walk(log_levels: np.ndarray) -> None:
    paths = classical_paths(log_levels, np.array([50, 200]), 3, window=500, min_window=100)
    assert np.isnan(paths["drift"][0]).all() and np.isnan(paths["mean_reversion"][0]).all()
    assert np.isfinite(paths["drift"][1]).all() and np.isfinite(paths["random_walk"]).all()

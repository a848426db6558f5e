"""Walk-forward backtest: baselines, honest coverage, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.backtest import BACKTEST_COLUMNS, _band_offsets, _calibration_errors, run_backtest
from tasks.core.features import Scaler, make_features
from tasks.core.intervals import (
    LONG_VOL_WINDOW,
    VOL_WINDOW,
    _band_levels,
    adaptive_bands,
    band_coverage,
    calibrated_coverage_range,
    expanding_bands,
    horizon_volatility,
    interval_log_bounds,
    widen_with_horizon,
)
from tasks.core.significance import diebold_mariano
from tests.unit.test_evaluate_forecast import ZeroPredictor, lstm_alone


@pytest.fixture(scope="module")
def random_walk_result(levels: pd.DataFrame) -> object:
    features = make_features(levels, 20)
    scaler = Scaler.fit(features.iloc[:400]).with_shrinkage(np.zeros(4))
    return run_backtest(lstm_alone(ZeroPredictor(), scaler), levels, test_start_row=400, horizons=(1, 5, 20))


def test_backtest_scores_every_series_and_horizon(random_walk_result: object) -> None:
    metrics = random_walk_result.metrics
    assert list(metrics.columns) == BACKTEST_COLUMNS
    assert len(metrics) == 4 * 3
    n_by_h = metrics.groupby("horizon")["n"].first()
    assert n_by_h[1] > n_by_h[5] > n_by_h[20]  # later horizons lose the origins whose target is past the data


def test_the_random_walk_scores_rel_mae_one_against_itself(random_walk_result: object) -> None:
    np.testing.assert_allclose(random_walk_result.metrics["rel_mae"], 1.0)
    np.testing.assert_allclose(random_walk_result.metrics["mae"], random_walk_result.metrics["naive_mae"])
    # The same forecast as the baseline: no difference for the Diebold-Mariano test to find.
    assert (random_walk_result.metrics["dm_pvalue"] == 1.0).all()


def test_mase_scales_by_the_training_parts_one_session_naive_mae(
    random_walk_result: object, levels: pd.DataFrame
) -> None:
    offset = len(levels) - len(make_features(levels, 20))
    training = levels.iloc[: offset + 400]
    metrics = random_walk_result.metrics.set_index(["series_id", "horizon"])
    for sid in levels.columns:
        scale = np.mean(np.abs(np.diff(training[sid].to_numpy())))
        assert metrics.loc[(sid, 5), "mase"] == pytest.approx(metrics.loc[(sid, 5), "mae"] / scale)
    # One session ahead the random walk's test MAE is near the training one; further ahead MASE grows.
    assert (metrics.xs(20, level="horizon")["mase"] > metrics.xs(1, level="horizon")["mase"]).all()


def test_drift_baseline_differs_from_the_random_walk(random_walk_result: object) -> None:
    at_20 = random_walk_result.metrics[random_walk_result.metrics["horizon"] == 20]
    assert (at_20["drift_mae"] != at_20["naive_mae"]).all()


def test_the_drift_baseline_reads_no_session_after_its_origin(levels: pd.DataFrame) -> None:
    # Multiply the last session by 10: only the last origin's actual changes, for the drift and the
    # random walk alike, so their summed absolute errors move by nearly the same amount (they differ
    # by one step of drift). A drift estimated from later sessions would move at every origin.
    features = make_features(levels, 20)
    model = lstm_alone(ZeroPredictor(), Scaler.fit(features.iloc[:400]).with_shrinkage(np.zeros(4)))
    changed = levels.copy()
    changed.iloc[-1] *= 10.0

    def summed(frame: pd.DataFrame) -> pd.DataFrame:
        metrics = run_backtest(model, frame, test_start_row=400, horizons=(1,)).metrics.set_index("series_id")
        return metrics[["drift_mae", "naive_mae"]].mul(metrics["n"], axis=0)

    moved = summed(changed) - summed(levels)
    assert (moved["naive_mae"] > 8.0 * levels.iloc[-1]).all()  # the change reached the scores
    np.testing.assert_allclose(moved["drift_mae"], moved["naive_mae"], atol=0, rtol=1e-3)


def test_the_scores_and_the_significance_test_can_be_recomputed_from_the_levels(levels: pd.DataFrame) -> None:
    # An unshrunk network that always predicts the training mean return forecasts level * exp(h * mean):
    # every score of the backtest can then be recomputed by hand from the levels, at every origin.
    features = make_features(levels, 20)
    scaler = Scaler.fit(features.iloc[:400])
    metrics = run_backtest(lstm_alone(ZeroPredictor(), scaler), levels, test_start_row=400, horizons=(1, 5, 20))
    metrics = metrics.metrics.set_index(["series_id", "horizon"])
    logs = np.log(levels.to_numpy())
    mean_return, _ = scaler.return_moments()
    first_origin = len(levels) - len(features) + 399  # the level row of the last training target
    for h in (1, 5, 20):
        origins = np.arange(first_origin, len(levels) - h)
        for j, sid in enumerate(levels.columns):
            actual, naive = np.exp(logs[origins + h, j]), np.exp(logs[origins, j])
            forecast = naive * np.exp(h * mean_return[j])
            # The drift: the mean daily log-return of the sessions up to and including the origin.
            drift = naive * np.exp(h * np.array([np.diff(logs[: o + 1, j]).mean() for o in origins]))
            row = metrics.loc[(sid, h)]
            assert row["n"] == len(origins)
            assert row["mae"] == pytest.approx(np.abs(actual - forecast).mean(), rel=1e-9)
            assert row["naive_mae"] == pytest.approx(np.abs(actual - naive).mean(), rel=1e-9)
            assert row["drift_mae"] == pytest.approx(np.abs(actual - drift).mean(), rel=1e-9)
            # Neighbouring h-session errors overlap in h - 1 sessions: the test's correction uses h.
            test = diebold_mariano(np.abs(actual - forecast), np.abs(actual - naive), horizon=h)
            assert row["dm_stat"] == pytest.approx(test.statistic, rel=1e-6)
            assert row["dm_pvalue"] == pytest.approx(test.p_value, rel=1e-6)
    assert metrics.loc[("SP500", 1), "dm_pvalue"] < 0.1 < metrics.loc[("SP500", 20), "dm_pvalue"]  # not vacuous


def test_each_coverage_has_the_range_of_a_calibrated_bands_coverage_on_its_origins(levels: pd.DataFrame) -> None:
    features = make_features(levels, 20)
    scaler = Scaler.fit(features.iloc[:400]).with_shrinkage(np.zeros(4))
    step = 2
    result = run_backtest(
        lstm_alone(ZeroPredictor(), scaler), levels, test_start_row=400, horizons=(1, 5, 100), origin_step=step
    )
    for row in result.metrics.itertuples():
        if row.n_coverage == 0:  # no band scored: no range either
            assert np.isnan([row.calibrated_80_low, row.calibrated_95_high]).all()
            continue
        (low80, high80), (low95, high95) = calibrated_coverage_range(row.horizon, row.n_coverage, (0.8, 0.95), step)
        assert (row.calibrated_80_low, row.calibrated_80_high) == (low80, high80)
        assert (row.calibrated_95_low, row.calibrated_95_high) == (low95, high95)
        assert low80 < 0.80 < high80 and low95 < 0.95 <= high95
    assert (result.metrics["n_coverage"] == 0).any() and (result.metrics["n_coverage"] > 0).any()


def test_coverage_uses_only_errors_realised_before_each_origin() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 1))
    origins = np.arange(400)
    cover80, cover95, n = band_coverage(expanding_bands(z, origins, 5), z)
    assert n[0] == 400 - (20 + 5 - 1)  # origin o needs 20 errors of origins <= o - 5: o >= 24
    assert abs(cover80[0] - 0.8) < 0.06 and abs(cover95[0] - 0.95) < 0.04
    # A regime change the past could not know: bands calibrated on calm errors miss wild ones.
    z[200:] *= 5
    assert band_coverage(expanding_bands(z, origins, 5), z)[0][0] < 0.7


def test_without_adaptation_the_adaptive_bands_are_the_expanding_ones() -> None:
    rng = np.random.default_rng(1)
    z, prior = rng.standard_t(4, size=(300, 2)), rng.normal(size=(50, 2))
    origins = np.arange(60, 360)
    bands, levels = adaptive_bands(z, origins, 5, prior=prior, prior_origins=np.arange(5, 55), gamma=0.0)
    np.testing.assert_allclose(bands, expanding_bands(z, origins, 5, prior=prior), equal_nan=True)
    np.testing.assert_allclose(levels, [[0.025, 0.10, 0.90, 0.975]] * 2)


def test_adaptive_bands_recover_coverage_after_a_regime_change() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(1500, 1))
    z[500:] *= 3  # the past cannot know; the misses that follow must widen the bands
    origins = np.arange(1500)
    late = slice(700, None)
    fixed80 = band_coverage(expanding_bands(z, origins, 5)[late], z[late])[0][0]
    adaptive = adaptive_bands(z, origins, 5, gamma=0.05)[0]
    adapted80 = band_coverage(adaptive[late], z[late])[0][0]
    assert fixed80 < 0.72 and abs(adapted80 - 0.8) < abs(fixed80 - 0.8)


def test_bands_too_wide_narrow_and_bands_too_narrow_widen() -> None:
    rng = np.random.default_rng(3)
    calm = rng.normal(size=(400, 1))
    wild = calm.copy()
    wild[200:] *= 4
    narrowed = adaptive_bands(calm[200:] / 4, np.arange(200, 400), 1, prior=calm[:200], prior_origins=np.arange(200))
    widened = adaptive_bands(wild[200:], np.arange(200, 400), 1, prior=wild[:200], prior_origins=np.arange(200))
    assert narrowed[1][0, 1] > 0.10 and narrowed[1][0, 3] < 0.975  # levels move towards the median
    assert widened[1][0, 1] < 0.10 and widened[1][0, 3] > 0.975  # and towards the extremes


def test_an_adaptive_band_uses_no_error_realised_after_its_origin() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=(200, 1))
    origins = np.arange(200)
    before = adaptive_bands(z, origins, 5, gamma=0.05)[0]
    changed = z.copy()
    changed[100] = 50.0  # realised at origin 105
    after = adaptive_bands(changed, origins, 5, gamma=0.05)[0]
    np.testing.assert_array_equal(before[:105], after[:105])
    assert not np.array_equal(before[105:], after[105:])


def test_interval_bounds_widen_with_the_horizon(random_walk_result: object, levels: pd.DataFrame) -> None:
    bounds = interval_log_bounds(random_walk_result.z_quantiles, np.log(levels.to_numpy()), tuple(levels.columns), 30)
    sp = bounds[bounds["series_id"] == "SP500"].set_index("horizon")
    assert list(sp.index) == list(range(1, 31))
    assert (sp["q025"] < sp["q10"]).all() and (sp["q10"] < sp["q90"]).all() and (sp["q90"] < sp["q975"]).all()
    assert sp.loc[30, "q975"] - sp.loc[30, "q025"] > sp.loc[1, "q975"] - sp.loc[1, "q025"]


def test_the_published_bands_scale_by_the_volatility_of_the_whole_history(levels: pd.DataFrame) -> None:
    # With standardised quantiles of +-1 at every horizon, a bound is the expected volatility of the
    # h-session change itself: today's recent volatility reverting towards the long-run one, which
    # needs the last LONG_VOL_WINDOW sessions, not only the recent ones.
    z_quantiles = pd.DataFrame(
        [
            {"series_id": sid, "horizon": h, "q025": -1.0, "q10": -1.0, "q90": 1.0, "q975": 1.0}
            for sid in levels.columns
            for h in (1, 30)
        ]
    )
    logs = np.log(levels.to_numpy())
    assert len(logs) > LONG_VOL_WINDOW + VOL_WINDOW
    bounds = interval_log_bounds(z_quantiles, logs, tuple(levels.columns), 30)
    expected = np.array([horizon_volatility(logs, h)[-1] for h in range(1, 31)])  # (horizon, series)
    for j, sid in enumerate(levels.columns):
        q975 = bounds[bounds["series_id"] == sid].set_index("horizon")["q975"].to_numpy()
        np.testing.assert_allclose(q975, np.maximum.accumulate(expected[:, j]), rtol=1e-12)
    recent_only = horizon_volatility(logs[-VOL_WINDOW - 1 :], 30)[-1]
    assert not np.allclose(recent_only, expected[-1], rtol=0.02)  # the long run matters on this data


def test_the_95_band_stays_outside_the_80_band_whatever_the_adaptation_reached() -> None:
    # Miss levels (80%, 95%) the adaptive correction may reach: the 95% band's never exceeds the 80%'s.
    np.testing.assert_allclose(_band_levels(np.array([0.2, 0.05])), [0.025, 0.1, 0.9, 0.975])
    np.testing.assert_allclose(_band_levels(np.array([0.15, 0.3])), [0.075, 0.075, 0.925, 0.925])


def test_a_band_never_narrows_as_the_horizon_grows() -> None:
    # (horizons, series, q025 q10 q90 q975): the second series' 30-session quantiles came out tighter.
    offsets = np.array(
        [
            [[-1.0, -0.5, 0.5, 1.0], [-1.0, -0.5, 0.5, 1.0]],
            [[-2.0, -1.0, 1.0, 2.0], [-3.0, -2.0, 2.0, 3.0]],
            [[-2.5, -1.5, 1.5, 2.5], [-2.0, -1.0, 1.5, 3.5]],
        ]
    )
    widened = widen_with_horizon(offsets)
    np.testing.assert_array_equal(widened[:, 0], offsets[:, 0])  # already widening: unchanged
    np.testing.assert_array_equal(widened[2, 1], [-3.0, -2.0, 2.0, 3.5])  # each quantile held or widened
    # No band is made up where there is none, and a missing one holds nothing back.
    offsets[1, 0] = np.nan
    widened = widen_with_horizon(offsets)
    assert np.isnan(widened[1, 0]).all()
    np.testing.assert_array_equal(widened[2, 0], [-2.5, -1.5, 1.5, 2.5])


def test_the_published_bands_do_not_narrow_where_a_longer_horizons_quantiles_are_tighter(levels: pd.DataFrame) -> None:
    rows = [(1, 2.0), (5, 2.0), (10, 2.0), (20, 2.0), (30, 0.5)]  # 30 sessions: a quarter of the width
    z_quantiles = pd.DataFrame(
        [
            {"series_id": sid, "horizon": h, "q025": -w, "q10": -w / 2, "q90": w / 2, "q975": w}
            for sid in levels.columns
            for h, w in rows
        ]
    )
    bounds = interval_log_bounds(z_quantiles, np.log(levels.to_numpy()), tuple(levels.columns), 30)
    for _, rows_of_series in bounds.groupby("series_id"):
        table = rows_of_series.set_index("horizon")
        assert table["q975"].is_monotonic_increasing and table["q90"].is_monotonic_increasing
        assert table["q025"].is_monotonic_decreasing and table["q10"].is_monotonic_decreasing
        assert table.loc[30, "q975"] == table["q975"].max() > 0


def test_the_backtest_scores_bands_held_at_least_as_wide_as_the_shorter_horizons() -> None:
    rng = np.random.default_rng(5)
    origins = np.arange(300)
    scale = np.ones((300, 1))
    z = rng.normal(size=(300, 1)) * 0.5  # this horizon's errors came out tight...
    shorter = np.tile([-2.0, -1.3, 1.3, 2.0], (320, 1, 1))  # ...but the shorter horizon's bands are wider
    alone, _ = _band_offsets(z, origins, 5, scale, prior=np.empty((0, 1)), prior_origins=np.empty(0), shorter=None)
    held, _ = _band_offsets(z, origins, 5, scale, prior=np.empty((0, 1)), prior_origins=np.empty(0), shorter=shorter)
    scored = np.isfinite(alone).all(axis=2)[:, 0]
    assert scored.sum() > 250
    lower = np.minimum(alone[..., :2], shorter[:300, :, :2])
    upper = np.maximum(alone[..., 2:], shorter[:300, :, 2:])
    np.testing.assert_array_equal(held[scored], np.concatenate([lower, upper], axis=-1)[scored])
    assert np.isnan(held[~scored]).all()  # no band is made up before there are errors to calibrate it
    # Scored on the held bands, this horizon covers more than its own quantiles would.
    assert band_coverage(held, z)[0][0] > band_coverage(alone, z)[0][0] + 0.1


def test_backtest_horizons_must_increase(levels: pd.DataFrame) -> None:
    features = make_features(levels, 20)
    scaler = Scaler.fit(features.iloc[:400]).with_shrinkage(np.zeros(4))
    with pytest.raises(ValueError, match="increasing"):
        run_backtest(lstm_alone(ZeroPredictor(), scaler), levels, test_start_row=400, horizons=(5, 1))


def test_progress_is_reported_after_every_refit_block(levels: pd.DataFrame) -> None:
    features = make_features(levels, 20)
    scaler = Scaler.fit(features.iloc[:400]).with_shrinkage(np.zeros(4))
    reports: list[tuple[int, int]] = []
    refit_through: list[pd.Timestamp] = []

    def refit(history: pd.DataFrame) -> object:
        refit_through.append(history.index[-1])
        return lstm_alone(ZeroPredictor(), scaler)

    result = run_backtest(
        lstm_alone(ZeroPredictor(), scaler),
        levels,
        test_start_row=400,
        horizons=(1, 5),
        origin_step=2,
        refit_every=40,
        refit=refit,
        on_progress=lambda done, total: reports.append((done, total)),
    )
    assert len(reports) > 2  # one per block of 40 sessions (20 origins)
    assert [total for _, total in reports] == [result.n_origins] * len(reports)
    done = [d for d, _ in reports]
    assert done == sorted(done) and done[-1] == result.n_origins and done[0] == 20
    # Each later block's model is refitted on every session up to its first origin, and none after:
    # origins are feature rows 399, 401, ...; a block starts every 20 origins.
    offset = len(levels) - len(features)
    assert refit_through == [levels.index[offset + 399 + 40 * block] for block in range(1, len(reports))]


def test_the_interval_calibration_uses_no_error_whose_target_is_in_the_test_part(levels: pd.DataFrame) -> None:
    features = make_features(levels, 20)
    offset, test_start_row = len(levels) - len(features), 400
    scaler = Scaler.fit(features.iloc[:300]).with_shrinkage(np.zeros(4))
    ensemble = lstm_alone(ZeroPredictor(), scaler)
    changed = levels.copy()
    changed.iloc[offset + test_start_row :] *= 1.5  # the test part only

    def calibration(frame: pd.DataFrame) -> tuple[dict[int, np.ndarray], ...]:
        log_levels = np.log(frame.to_numpy(dtype="float64"))
        volatility = {h: horizon_volatility(log_levels, h) for h in (1, 5, 20)}
        return _calibration_errors(
            ensemble, frame, log_levels[offset:], volatility, offset=offset, test_start_row=test_start_row,
            calibration_start_row=300, horizons=(1, 5, 20), origin_step=1,
        )  # fmt: skip

    before, after = calibration(levels), calibration(changed)
    for h in (1, 5, 20):
        origins = before[2][h]
        assert len(origins) > 50 and origins.max() + h == test_start_row - 1  # up to the last target allowed
        for errors_before, errors_after in zip(before[:2], after[:2], strict=True):
            assert np.isfinite(errors_before[h]).any()
            np.testing.assert_array_equal(errors_before[h], errors_after[h])

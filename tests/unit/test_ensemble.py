"""The ensemble: weights fitted on the training part only, combined per series and horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core import ensemble as ensemble_module
from tasks.core.contracts import EnsembleCard, MemberWeights
from tasks.core.ensemble import Ensemble, combine, fit_ensemble, slope_weight, stagewise_weights, weight_arrays
from tasks.core.settings import EnsembleSettings
from tasks.core.training import TrainedModel, fit_lstm
from tests.harness.settings import tiny_settings


@pytest.fixture(scope="module")
def trained(levels: pd.DataFrame) -> TrainedModel:
    return fit_lstm(levels, tiny_settings())


@pytest.fixture(scope="module")
def ensemble(trained: TrainedModel, levels: pd.DataFrame) -> Ensemble:
    return fit_ensemble(trained.predictor, trained.scaler, levels, split=trained.split, settings=tiny_settings())


def test_every_series_and_horizon_has_weights_summing_to_one(ensemble: Ensemble) -> None:
    settings = tiny_settings()
    assert {(w.series_id, w.horizon) for w in ensemble.card.weights} == {
        (s, h) for s in settings.series for h in settings.backtest.horizons
    }
    for row in ensemble.card.weights:
        assert sum(row.weights.values()) == pytest.approx(1.0) and min(row.weights.values()) > 0


def test_a_mean_reverting_series_leans_on_the_mean_reversion_member(ensemble: Ensemble) -> None:
    # The demo VIX reverts to its mean; its rolling-origin evidence says so at long horizons.
    vix = {w.horizon: w for w in ensemble.card.weights if w.series_id == "VIXCLS"}
    assert vix[30].weights.get("mean_reversion", 0.0) > 0.5 and vix[30].skill < 0.9


def test_a_higher_skill_z_moves_weight_back_to_the_random_walk(
    trained: TrainedModel, ensemble: Ensemble, levels: pd.DataFrame
) -> None:
    def random_walk_weights(skill_z: float) -> np.ndarray:
        settings = tiny_settings(ensemble=EnsembleSettings(skill_z=skill_z))
        fitted = fit_ensemble(trained.predictor, trained.scaler, levels, split=trained.split, settings=settings)
        assert fitted.card.method != ensemble.card.method  # the card names the rule it used
        return np.array([row.weights.get("random_walk", 0.0) for row in fitted.card.weights])

    at_default = np.array([row.weights.get("random_walk", 0.0) for row in ensemble.card.weights])  # skill_z 1
    trusting, doubting = random_walk_weights(0.0), random_walk_weights(5.0)
    assert trusting.sum() < at_default.sum() < doubting.sum()


def test_each_horizons_weights_allow_for_the_overlap_of_its_targets(
    trained: TrainedModel, levels: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # h-session targets of neighbouring origins share h - 1 sessions: the slopes' standard errors
    # take h - 1 HAC lags, or overlapping evidence would count as independent and earn weight.
    lags_by_call: list[int] = []

    def recording(departures: object, error: np.ndarray, *, lags: int, skill_z: float) -> object:
        lags_by_call.append(lags)
        return stagewise_weights(departures, error, lags=lags, skill_z=skill_z)

    monkeypatch.setattr(ensemble_module, "stagewise_weights", recording)
    settings = tiny_settings()
    fit_ensemble(trained.predictor, trained.scaler, levels, split=trained.split, settings=settings)
    assert lags_by_call == [h - 1 for _ in levels.columns for h in settings.backtest.horizons]


def test_without_validated_skill_the_weight_stays_on_the_random_walk() -> None:
    rng = np.random.default_rng(0)
    departure, error = rng.normal(size=500), rng.normal(size=500)  # a member unrelated to what happens
    assert slope_weight(departure, error, lags=0, skill_z=1.0) == (0.0, 1.0)
    weight, ratio = slope_weight(departure, 0.8 * departure + 0.3 * error, lags=0, skill_z=1.0)
    assert 0.7 < weight < 0.8 and ratio < 0.3


def test_weights_are_interpolated_between_fitted_horizons() -> None:
    card = EnsembleCard(
        members=("drift",), estimation_sessions=100, min_estimation_sessions=50, method="test",
        weights=(
            MemberWeights(series_id="A", horizon=1, weights={"random_walk": 1.0}),
            MemberWeights(series_id="A", horizon=11, weights={"random_walk": 0.5, "drift": 0.5}),
        ),
    )  # fmt: skip
    weights = weight_arrays(card, ("A",), 20)
    assert weights["drift"][0, 0] == 0.0 and weights["drift"][5, 0] == pytest.approx(0.25)
    assert weights["drift"][19, 0] == 0.5  # beyond the last fitted horizon: its weights
    np.testing.assert_allclose(weights["drift"] + weights["random_walk"], 1.0)


def test_a_member_without_a_forecast_lends_its_weight_to_the_random_walk() -> None:
    walk = np.zeros((2, 3, 1))
    drift = np.array([np.nan, 1.0])[:, None, None] * np.ones((2, 3, 1))
    weights = {"random_walk": np.full((3, 1), 0.5), "drift": np.full((3, 1), 0.5)}
    combined = combine({"random_walk": walk, "drift": drift}, weights)
    np.testing.assert_allclose(combined[0], 0.0)
    np.testing.assert_allclose(combined[1], 0.5)


def test_the_forecast_is_the_weighted_mean_of_the_members(ensemble: Ensemble, levels: pd.DataFrame) -> None:
    origins = np.array([len(levels) - 1])
    members = ensemble.member_paths(levels, origins, 30)
    weights = ensemble.weights(30)
    expected = sum(weights[m][None] * members[m] for m in weights)
    np.testing.assert_allclose(ensemble.paths(levels, origins, 30), expected)


def test_two_members_that_explain_different_parts_of_the_error_both_get_weight() -> None:
    rng = np.random.default_rng(1)
    a, b, noise = rng.normal(size=(3, 2000))
    error = 0.4 * a + 0.3 * b + 0.2 * noise  # a and b each bear out part of their departure
    weights, skill = stagewise_weights({"drift": a, "mean_reversion": b}, error, lags=0, skill_z=1.0)
    assert weights["drift"] == pytest.approx(0.4, abs=0.03)
    assert weights["mean_reversion"] == pytest.approx(0.3, abs=0.03)
    assert weights["random_walk"] == pytest.approx(0.3, abs=0.05)
    assert sum(weights.values()) == pytest.approx(1.0)
    alone = min(slope_weight(d, error, lags=0, skill_z=1.0)[1] for d in (a, b))
    assert skill is not None and skill < alone  # the combination beats the best single member


def test_the_members_weights_never_sum_past_one() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 2000))
    error = 0.9 * a + 0.9 * b  # unconstrained, the slopes would sum to 1.8
    weights, _ = stagewise_weights({"drift": a, "mean_reversion": b}, error, lags=0, skill_z=1.0)
    assert "random_walk" not in weights
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["drift"] > 0.8 or weights["mean_reversion"] > 0.8  # the first stage keeps its slope


def test_a_member_with_part_of_the_origins_is_fitted_where_it_forecasts() -> None:
    rng = np.random.default_rng(3)
    reversion, lstm, noise = rng.normal(size=(3, 1000))
    error = 0.5 * reversion + 0.4 * lstm + 0.1 * noise
    lstm[:800] = np.nan  # like the LSTM: a forecast on the validation slice only
    weights, _ = stagewise_weights({"mean_reversion": reversion, "lstm": lstm}, error, lags=0, skill_z=1.0)
    assert weights["mean_reversion"] == pytest.approx(0.5, abs=0.05)
    assert weights["lstm"] == pytest.approx(0.4, abs=0.1)


def test_one_member_gets_the_same_weight_as_its_slope_rule() -> None:
    rng = np.random.default_rng(4)
    departure, noise = rng.normal(size=(2, 500))
    error = 0.6 * departure + noise
    weight, ratio = slope_weight(departure, error, lags=4, skill_z=1.0)
    weights, skill = stagewise_weights({"drift": departure}, error, lags=4, skill_z=1.0)
    assert weights == {"random_walk": pytest.approx(1 - weight), "drift": pytest.approx(weight)}
    assert skill == pytest.approx(ratio)


def test_members_without_validated_skill_leave_everything_on_the_random_walk() -> None:
    rng = np.random.default_rng(5)
    a, b, error = rng.normal(size=(3, 500))
    assert stagewise_weights({"drift": a, "mean_reversion": b}, error, lags=0, skill_z=1.0) == (
        {"random_walk": 1.0},
        None,
    )

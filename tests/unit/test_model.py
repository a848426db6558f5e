"""The Keras model: architecture, determinism, fast recursive forecast, shrinkage, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.adapters.model_store import model_from_bytes, model_to_bytes
from tasks.core.features import Scaler, last_window, level_history, make_features
from tasks.core.model import (
    build_model,
    fit_shrinkage,
    forecast_log_levels,
    make_predictor,
    set_determinism,
)


def small_model(seed: int = 1, n_series: int = 4, seq: int = 5) -> object:
    set_determinism(seed)
    return build_model(sequence_length=seq, n_features=2 * n_series, n_outputs=n_series, units=4, learning_rate=1e-3)


def test_default_architecture_is_input_lstm_dense() -> None:
    model = small_model()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "LSTM", "Dense"]
    assert model.layers[1].units == 4
    assert model.output_shape == (None, 4)


def test_same_seed_gives_identical_weights_and_another_seed_does_not() -> None:
    first, again, other = small_model(7), small_model(7), small_model(8)
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first.get_weights(), other.get_weights(), strict=True))


def test_recursive_forecast_matches_a_step_by_step_keras_predict(levels: pd.DataFrame) -> None:
    model = small_model(seq=5)
    features = make_features(levels, 20)
    scaler = Scaler.fit(features.iloc[:300]).with_shrinkage(np.array([1.0, 0.5, 0.2, 1.0]))
    scaled = scaler.transform(features.to_numpy())
    window = last_window(scaled, 5)
    history = level_history(levels, features.index[-1:], 20)
    fast = forecast_log_levels(make_predictor(model), window, history, scaler, 6)[0]

    # Reference: one model.predict per step, the new feature row rebuilt from the raw definitions.
    mean, scale = np.asarray(scaler.mean), np.asarray(scaler.scale)
    logs = list(np.log(levels.to_numpy()[-20:]))
    win = window[0].copy()
    expected = []
    for _ in range(6):
        z = model.predict(win[None], verbose=0)[0]
        step = (z * scale[:4] + mean[:4]) * scaler.shrinkage_array()
        logs.append(logs[-1] + step)
        deviation = logs[-1] - np.mean(logs[-20:], axis=0)
        win = np.vstack([win[1:], ((np.concatenate([step, deviation]) - mean) / scale)[None]])
        expected.append(logs[-1])
    np.testing.assert_allclose(fast, np.array(expected), rtol=0, atol=1e-5)


def test_shrinkage_is_zero_without_skill_and_near_one_with_it() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(400, 3))
    noise = rng.normal(size=(400, 3))
    predicted = np.column_stack([noise[:, 0], actual[:, 1], 3 * actual[:, 2] + noise[:, 2]])
    factor = fit_shrinkage(predicted, actual, confidence_z=1.0)
    assert factor[0] == 0.0  # no skill -> the random walk
    assert factor[1] == pytest.approx(1.0)  # perfect -> untouched (clipped at 1)
    assert 0.2 < factor[2] < 0.34  # over-confident -> damped towards 1/3
    assert (fit_shrinkage(-predicted[:, 1:], actual[:, 1:], confidence_z=0.0) == 0).all()  # wrong sign -> 0


def test_model_round_trips_through_keras_native_bytes() -> None:
    model = small_model()
    content = model_to_bytes(model)
    assert content[:2] == b"PK"  # a .keras zip, not a pickle
    again = model_from_bytes(content)
    x = np.random.default_rng(1).normal(size=(3, 5, 8)).astype("float32")
    np.testing.assert_allclose(make_predictor(again)(x), make_predictor(model)(x), atol=1e-6)

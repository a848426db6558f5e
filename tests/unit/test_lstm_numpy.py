"""The NumPy forward pass gives the network's own outputs: the daily flow runs without TensorFlow."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from tasks.adapters.model_store import model_from_bytes, model_to_bytes, read_lstm_weights
from tasks.core.contracts import EnsembleCard
from tasks.core.ensemble import Ensemble
from tasks.core.errors import ModelStoreError
from tasks.core.features import make_features, window_inputs
from tasks.core.forecast import forecast_levels
from tasks.core.lstm_numpy import numpy_predictor
from tasks.core.model import keras_runtime, predictor_for
from tasks.core.training import TrainedModel, fit_lstm
from tests.harness.settings import tiny_settings

RTOL = 1e-5


@pytest.fixture(scope="module")
def trained(levels: pd.DataFrame) -> TrainedModel:
    # A few more units and epochs than the tiny default, so that every gate carries weight.
    return fit_lstm(levels, tiny_settings(lstm_units=16, epochs=3))


@pytest.fixture(scope="module")
def both(trained: TrainedModel) -> tuple[object, object]:
    """The saved model run by Keras (TensorFlow) and by the NumPy runtime, from the same bytes."""
    content = model_to_bytes(trained.model)
    return predictor_for(model_from_bytes(content)), numpy_predictor(read_lstm_weights(content))


def test_outputs_agree_with_keras_on_every_window(trained: TrainedModel, both: tuple, levels: pd.DataFrame) -> None:
    settings = tiny_settings()
    scaled = trained.scaler.transform(make_features(levels, settings.level_window).to_numpy())
    windows = window_inputs(scaled, settings.sequence_length, np.arange(settings.sequence_length, len(scaled)))
    with_keras, with_numpy = (predict(windows) for predict in both)
    assert with_numpy.shape == with_keras.shape == (len(windows), levels.shape[1])
    assert np.abs(with_keras).max() > 1e-3  # a network that outputs something to compare
    np.testing.assert_allclose(with_numpy, with_keras, rtol=RTOL, atol=RTOL * np.abs(with_keras).max())


@pytest.mark.parametrize("shrinkage", ["fitted", "none"])
def test_the_30_session_forecast_agrees_on_every_series(
    trained: TrainedModel, both: tuple, levels: pd.DataFrame, shrinkage: str
) -> None:
    settings = tiny_settings()
    # With the fitted shrinkage a series without skill is the random walk either way; without
    # shrinkage every series carries the network's own forecast.
    scaler = trained.scaler if shrinkage == "fitted" else trained.scaler.with_shrinkage(np.ones(levels.shape[1]))
    lstm_alone = EnsembleCard.lstm_only(tuple(levels.columns))
    paths = [
        forecast_levels(
            Ensemble(predict, scaler, lstm_alone, settings.sequence_length, settings.level_window), levels, horizon=30
        )
        for predict in both
    ]
    assert paths[0].shape == (30, levels.shape[1])
    np.testing.assert_allclose(paths[1], paths[0], rtol=RTOL)


def test_reading_the_weights_needs_neither_keras_nor_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tasks.adapters.model_store, tasks.core.lstm_numpy\n"
        "print(sorted({'tensorflow', 'keras'} & {m.split('.')[0] for m in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_another_architecture_is_refused_with_what_differs() -> None:
    keras = keras_runtime()
    inputs = keras.Input(shape=(5, 4))
    outputs = keras.layers.Dense(2)(keras.layers.GRU(3)(inputs))
    content = model_to_bytes(keras.Model(inputs, outputs))
    with pytest.raises(ModelStoreError, match=r"holds the layers \['InputLayer', 'GRU', 'Dense'\]"):
        read_lstm_weights(content)


def test_a_file_that_is_not_a_keras_zip_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("something.txt", "not a model")
    with pytest.raises(ModelStoreError, match="not a Keras .keras file"):
        read_lstm_weights(buffer.getvalue())

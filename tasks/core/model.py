"""Model stage: build, train and run the Keras LSTM (Input -> LSTM -> Dense(n_series)).

Functions here take arrays and return arrays or plain frames; they never touch files, clocks or
Prefect (saving and loading the `.keras` file is the model store adapter's job). TensorFlow is
imported lazily, on first use, so that modules which only read outputs stay light.

Forecasting is recursive: each step's predicted returns become the next window's last row. The
network is called through one traced `tf.function` per model and the recursion runs over a whole
batch of origins at once, so a 30-session forecast costs milliseconds, and a backtest over hundreds
of origins costs as many calls as its longest horizon, not as many as its origins times horizons.
"""

from __future__ import annotations

import os
import random
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np
import pandas as pd

from tasks.core.features import LEVEL, RETURN, Scaler

if TYPE_CHECKING:  # pragma: no cover
    import keras

Predictor = Callable[[np.ndarray], np.ndarray]
EpochCallback = Callable[[int, dict[str, float]], None]
# TensorFlow ships no type information: its tensors are untyped here.
Tensor: TypeAlias = Any


def _tensorflow() -> ModuleType:
    # TensorFlow's C++ INFO lines are noise in a flow's log; set before its first import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return cast(ModuleType, tf)


def keras_runtime() -> ModuleType:
    """Keras on TensorFlow, imported on first use (quietly)."""
    _tensorflow()
    import keras

    return cast(ModuleType, keras)


def build_model(
    *,
    sequence_length: int,
    n_features: int,
    n_outputs: int,
    units: int,
    learning_rate: float,
    dropout: float = 0.0,
    loss: str = "mse",
    seed: int | None = None,
) -> keras.Model:
    """Input(sequence_length, n_features) -> LSTM(units, dropout) -> Dense(n_outputs), Adam.

    With `seed`, the initial weights and the dropout masks depend on it alone. Keras would draw their
    seeds from Python's process-wide `random`, which any thread of the process may advance meanwhile
    (a Dask worker's or Prefect's own threads do); the same four seeds are drawn here from a private
    generator seeded with `seed`, in Keras' order, so the model is the one `keras.utils.set_random_seed(seed)`
    followed by the defaults would give in a quiet process.
    """
    keras = keras_runtime()
    init = keras.initializers
    if seed is None:
        lstm_seeds: dict[str, Any] = {}
        dense_seeds: dict[str, Any] = {}
    else:
        draws = random.Random(seed)  # noqa: S311 - model seeds, not secrets
        kernel, recurrent, dropout_seed, dense = (draws.randint(1, int(1e9)) for _ in range(4))
        lstm_seeds = {
            "kernel_initializer": init.GlorotUniform(seed=kernel),
            "recurrent_initializer": init.Orthogonal(seed=recurrent),
            "seed": dropout_seed,
        }
        dense_seeds = {"kernel_initializer": init.GlorotUniform(seed=dense)}
    inputs = keras.Input(shape=(sequence_length, n_features), name="window")
    hidden = keras.layers.LSTM(units, dropout=dropout, name="lstm", **lstm_seeds)(inputs)
    outputs = keras.layers.Dense(n_outputs, name="next_returns", **dense_seeds)(hidden)
    model = keras.Model(inputs, outputs, name="market_lstm")
    losses = {"huber": keras.losses.Huber, "mse": keras.losses.MeanSquaredError}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=losses[loss]())
    return model


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    keras, tf = keras_runtime(), _tensorflow()

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_network(
    model: keras.Model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch_end: EpochCallback | None = None,
) -> pd.DataFrame:
    """Fit `model` on the training windows, reporting the validation loss after each epoch.

    A lean loop instead of `model.fit`: each epoch's minibatches run inside one traced function,
    which trains this small network about 3x faster on a CPU (Keras' per-step and per-epoch
    machinery dominated the cost). Each epoch shuffles the windows with a generator seeded by
    `seed` and drops the last incomplete batch; dropout draws from Keras' seeded generator. The
    loss and optimizer are those `build_model` compiled.

    Args:
        model: a compiled model from `build_model`.
        train: (inputs, targets) of the training windows.
        validation: (inputs, targets) of the validation slice (from the training part).
        epochs: number of epochs.
        batch_size: batch size (capped at the number of training windows).
        seed: random seed of the shuffling and of dropout.
        on_epoch_end: called with (epoch number from 1, {"loss": ..., "val_loss": ...}).

    Returns:
        One row per epoch: epoch, loss (mean training loss of the epoch's batches, with dropout),
        val_loss (on the validation slice, without dropout).
    """
    keras, tf = keras_runtime(), _tensorflow()

    keras.utils.set_random_seed(seed)
    inputs, targets = train
    loss_fn, optimizer = model.loss, model.optimizer
    optimizer.build(model.trainable_variables)
    size = max(1, min(batch_size, len(inputs)))
    n_batches = len(inputs) // size

    # One traced function per epoch.
    def epoch_of_batches(x: Tensor, y: Tensor) -> Tensor:  # x: (batches, size, L, F)
        total = tf.constant(0.0)
        for i in tf.range(tf.shape(x)[0]):
            with tf.GradientTape() as tape:
                loss = loss_fn(y[i], model(x[i], training=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            total += loss
        return total / tf.cast(tf.shape(x)[0], tf.float32)

    run_epoch = tf.function(epoch_of_batches)

    predict = predictor_for(model)
    val_inputs, val_targets = validation
    rng = np.random.default_rng(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(inputs))[: n_batches * size]
        x = inputs[order].reshape(n_batches, size, *inputs.shape[1:])
        y = targets[order].reshape(n_batches, size, *targets.shape[1:])
        logs = {
            "loss": float(run_epoch(tf.constant(x), tf.constant(y))),
            "val_loss": float(loss_fn(val_targets, predict(val_inputs))),
        }
        rows.append({"epoch": epoch, **logs})
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
    return pd.DataFrame(rows, columns=["epoch", "loss", "val_loss"])


_PREDICTORS: weakref.WeakKeyDictionary[Any, Predictor] = weakref.WeakKeyDictionary()


def predictor_for(model: keras.Model) -> Predictor:
    """`make_predictor(model)`, traced once per model and reused."""
    if model not in _PREDICTORS:
        _PREDICTORS[model] = make_predictor(model)
    return _PREDICTORS[model]


def make_predictor(model: keras.Model) -> Predictor:
    """A fast batch predictor: one traced tf.function, float32 arrays in and out."""
    tf = _tensorflow()
    sequence_length, n_features = model.input_shape[1], model.input_shape[2]

    def forward(x: Tensor) -> Tensor:
        return model(x, training=False)

    traced = tf.function(forward, input_signature=[tf.TensorSpec([None, sequence_length, n_features], tf.float32)])

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(traced(tf.convert_to_tensor(x, dtype=tf.float32)).numpy())

    return predict


def fit_shrinkage(predicted: np.ndarray, actual: np.ndarray, *, confidence_z: float) -> np.ndarray:
    """Per-series factor in [0, 1] scaling predicted returns towards the random walk.

    The least-squares slope of actual on predicted returns over the validation slice, lowered by
    `confidence_z` standard errors and clipped to [0, 1]. A network without demonstrable skill on
    held-out data gets 0 and forecasts exactly "tomorrow equals today"; one whose predictions are
    merely over-confident is damped. Fitted on data the network was not trained on, never on the
    test part.

    Args:
        predicted: (n, n_series) predicted log-returns on the validation slice (no shrinkage).
        actual: (n, n_series) actual log-returns of the same rows.
        confidence_z: standard errors subtracted from the slope (0 = plain least squares).
    """
    numerator = np.sum(predicted * actual, axis=0)
    denominator = np.sum(predicted * predicted, axis=0)
    safe = np.where(denominator > 0, denominator, np.inf)
    slope = numerator / safe
    residual_var = np.sum((actual - slope * predicted) ** 2, axis=0) / max(len(actual) - 1, 1)
    standard_error = np.sqrt(residual_var / safe)
    return np.asarray(np.clip(slope - confidence_z * standard_error, 0.0, 1.0))


def predict_returns(predictor: Predictor, inputs: np.ndarray, scaler: Scaler) -> np.ndarray:
    """Predicted log-returns (shrinkage applied) for a batch of windows, shape (batch, n_series)."""
    mean, scale = scaler.return_moments()
    return np.asarray((predictor(inputs) * scale + mean) * scaler.shrinkage_array())


def forecast_log_levels(
    predictor: Predictor, windows: np.ndarray, recent_log_levels: np.ndarray, scaler: Scaler, horizon: int
) -> np.ndarray:
    """Recursive multi-step forecast for a batch of origins.

    Each step predicts the next returns, appends them to the log-levels, recomputes the level
    feature (deviation from the mean of the last `level_window` log-levels) and shifts the window.

    Args:
        predictor: from `make_predictor`.
        windows: (batch, L, n_features) standardised windows ending at each origin.
        recent_log_levels: (batch, level_window, n_series) log-levels up to each origin, the last
            one being the origin's.
        scaler: the fitted scaler (with shrinkage).
        horizon: steps to forecast.

    Returns:
        (batch, horizon, n_series) forecast log-levels.
    """
    n_series = recent_log_levels.shape[2]
    if scaler.columns != tuple(f"{RETURN}:{s}" for s in scaler.series) + tuple(
        f"{LEVEL}:{s}" for s in scaler.series
    ):  # pragma: no cover - guards the feature layout
        raise ValueError("scaler columns do not follow the returns-then-levels feature layout")
    mean, scale = np.asarray(scaler.mean), np.asarray(scaler.scale)
    window = np.array(windows, dtype=np.float32, copy=True)
    history = np.array(recent_log_levels, dtype=np.float64, copy=True)
    out = np.empty((window.shape[0], horizon, n_series))
    for step in range(horizon):
        step_returns = predict_returns(predictor, window, scaler)
        level = history[:, -1, :] + step_returns
        history = np.concatenate([history[:, 1:, :], level[:, None, :]], axis=1)
        deviation = level - history.mean(axis=1)
        out[:, step, :] = level
        new_row = (np.concatenate([step_returns, deviation], axis=1) - mean) / scale
        window = np.concatenate([window[:, 1:, :], new_row[:, None, :].astype(np.float32)], axis=1)
    return out

"""The trained network's forward pass in NumPy (pure): inference without TensorFlow.

The daily flow only predicts, so it runs the champion's `.keras` weights through this instead of
Keras: the same arithmetic as Keras 3's LSTM cell (gates in the order input, forget, cell, output;
`tanh` activation, `sigmoid` recurrent activation) followed by the linear Dense layer. A process
that never imports TensorFlow starts in a fraction of the time and memory.

Only the architecture `tasks.core.model.build_model` builds is supported (Input -> LSTM -> Dense,
no return_sequences, not stateful, not reversed); the model store checks the saved config before
it hands the weights here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.core.model import Predictor


@dataclass(frozen=True)
class LstmWeights:
    """The weights of Input -> LSTM(units) -> Dense(n_outputs), as Keras stores them.

    Attributes:
        kernel: (n_features, 4 * units), input weights of the gates i, f, c, o.
        recurrent_kernel: (units, 4 * units), recurrent weights of the same gates.
        bias: (4 * units,).
        dense_kernel: (units, n_outputs).
        dense_bias: (n_outputs,).
    """

    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    dense_kernel: np.ndarray
    dense_bias: np.ndarray

    @property
    def units(self) -> int:
        """Units of the LSTM layer."""
        return int(self.recurrent_kernel.shape[0])

    @property
    def n_features(self) -> int:
        """Features per time step of the input window."""
        return int(self.kernel.shape[0])

    def check(self) -> None:
        """Raise ValueError when the shapes do not form one LSTM cell and a Dense layer."""
        units = self.units
        expected = {
            "kernel": (self.n_features, 4 * units),
            "recurrent_kernel": (units, 4 * units),
            "bias": (4 * units,),
            "dense_kernel": (units, self.dense_bias.shape[0]),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))  # exact, and no overflow for large |x|


def numpy_predictor(weights: LstmWeights) -> Predictor:
    """A predictor (windows (batch, L, F) -> outputs (batch, n_outputs)) computed with NumPy.

    The arithmetic runs in float64; the result is float32, as Keras returns it.
    """
    weights.check()
    units = weights.units
    kernel = weights.kernel.astype(np.float64)
    recurrent = weights.recurrent_kernel.astype(np.float64)
    bias = weights.bias.astype(np.float64)
    dense_kernel = weights.dense_kernel.astype(np.float64)
    dense_bias = weights.dense_bias.astype(np.float64)

    def predict(windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, dtype=np.float64)
        projected = x @ kernel + bias  # (batch, L, 4U): the input part of every step at once
        h = np.zeros((x.shape[0], units))
        c = np.zeros((x.shape[0], units))
        for step in range(x.shape[1]):
            z = projected[:, step, :] + h @ recurrent
            i = _sigmoid(z[:, :units])
            f = _sigmoid(z[:, units : 2 * units])
            g = np.tanh(z[:, 2 * units : 3 * units])
            o = _sigmoid(z[:, 3 * units :])
            c = f * c + i * g
            h = o * np.tanh(c)
        return np.asarray(h @ dense_kernel + dense_bias, dtype=np.float32)

    return predict

"""Re-implementation of the OLD ("seed") script pipeline's modelling design.

.. warning::
   BENCHMARK BASELINE ONLY -- DO NOT REUSE THIS DESIGN.

   This module exists only so that the new pipeline can be measured side by
   side against the old ``mkt_lstm.py`` design.  It deliberately reproduces
   the old design *including its known flaws*:

   * **Look-ahead leak:** the ``MinMaxScaler`` is fitted on ALL rows (train
     and test), so the scaling of the training data uses the test period's
     minima and maxima.
   * **Levels, not returns:** the LSTM is trained on min-max scaled price
     *levels*, which are non-stationary; test levels outside the training range
     are barely representable, and the model mostly learns "tomorrow ~ today".
   * **Slow recursive forecast:** the 30-day forecast calls ``model.predict``
     once per step (30 calls, each with graph/dispatch overhead), appending
     every predicted row to the input window.
   * **Python-loop windowing:** the ``(seq_len, n_series) -> next row``
     windows are built with a Python ``for`` loop, as the old script did.
   * 80/20 chronological split of the windows, ``validation_split=0.1`` of
     the training windows (taken by Keras from their end), Keras' default
     shuffling of the training windows, no early stopping.

   The model and the scaler live in memory; ``save_seed_model`` writes them for
   the seed's daily run as ``.keras`` and a JSON min/max (the seed pickled the
   scaler; the project bans pickles).

The error metrics are the project's (``tasks.core.metrics``), the session
calendar the project's (``tasks.core.calendar``): the designs differ in their
modelling, not in how they are scored or which days are sessions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler

from tasks.core.calendar import is_session, sessions_after, sessions_in_range
from tasks.core.metrics import mae, mse, r2, relative_mae

__all__ = [
    "SEED_MODEL_FILE",
    "SEED_SCALER_FILE",
    "SeedDaily",
    "SeedResult",
    "backtest_seed_design",
    "run_seed_daily",
    "run_seed_design",
    "save_seed_model",
]


@dataclass
class SeedResult:
    """Outputs of one run of the seed design.

    Attributes:
        train_seconds: Wall time of scaling + windowing + ``model.fit`` only
            (model construction/compilation and prediction are excluded).
        forecast_ms: Wall time, in milliseconds, of the 30-step recursive
            forecast loop (one ``model.predict`` call per step); the final
            inverse transform to levels is excluded.
        forecast: Index: the forecast dates; columns: series ids; values:
            forecast levels.
        test_predictions: Index: target dates of the test windows; columns:
            series ids; values: predicted levels (one step ahead).
        metrics: Index: series id; columns ``mse``, ``mae``, ``r2`` (project metrics,
            on levels), ``naive_mae`` (MAE of the previous day's actual level
            for the same test targets) and ``rel_mae`` (``mae / naive_mae``).
        history: Columns ``epoch`` (1-based), ``loss``, ``val_loss``.
        model: The fitted Keras model (in memory only; never saved).
        scaler: The ``MinMaxScaler`` fitted on all rows (in memory only).
        sequence_length: Window length used.
        test_fraction: Fraction of the windows held out as test.
    """

    train_seconds: float
    forecast_ms: float
    forecast: pd.DataFrame
    test_predictions: pd.DataFrame
    metrics: pd.DataFrame
    history: pd.DataFrame
    model: Any = field(default=None, repr=False)
    scaler: MinMaxScaler | None = field(default=None, repr=False)
    sequence_length: int = 10
    test_fraction: float = 0.2


def _validate_levels(levels: pd.DataFrame, sequence_length: int) -> None:
    """Checks the input frame's basic assumptions.

    Args:
        levels: Aligned frame of levels.
        sequence_length: Window length.

    Raises:
        ValueError: If the frame is unusable for the seed design.
    """
    if not isinstance(levels.index, pd.DatetimeIndex):
        raise ValueError("levels must have a DatetimeIndex")
    if not levels.index.is_monotonic_increasing:
        raise ValueError("levels index must be ascending")
    if levels.isna().to_numpy().any():
        raise ValueError("levels must not contain NaN")
    if len(levels) <= sequence_length + 1:
        raise ValueError("levels has too few rows for the sequence length")


def _create_sequences(data: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Builds the seed's windows with a Python loop, as the old script did.

    Args:
        data: Scaled array of shape ``(n_rows, n_series)``.
        seq_len: Window length.

    Returns:
        ``X`` of shape ``(n_rows - seq_len, seq_len, n_series)`` and ``y`` of
        shape ``(n_rows - seq_len, n_series)``; ``y[i]`` is row ``i + seq_len``.
    """
    X, y = [], []
    for i in range(len(data) - seq_len):
        X.append(data[i : i + seq_len])
        y.append(data[i + seq_len])
    return np.array(X), np.array(y)


def _split_index(n_windows: int, test_fraction: float) -> int:
    """Returns the number of training windows of the chronological split.

    Args:
        n_windows: Total number of windows.
        test_fraction: Fraction held out as test.

    Returns:
        ``int(n_windows * (1 - test_fraction))``, as the seed's 80/20 split.
    """
    return int(n_windows * (1.0 - test_fraction))


def _build_model(sequence_length: int, n_series: int, units: int) -> keras.Model:
    """Builds and compiles the seed's ``Input -> LSTM -> Dense`` model.

    Args:
        sequence_length: Window length.
        n_series: Number of series (input features and outputs).
        units: LSTM units (64 in the seed).

    Returns:
        The compiled model (adam, mse).
    """
    model = keras.Sequential(
        [
            keras.Input(shape=(sequence_length, n_series)),
            keras.layers.LSTM(units),
            keras.layers.Dense(n_series),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def run_seed_design(
    levels: pd.DataFrame,
    *,
    forecast_dates: pd.DatetimeIndex,
    sequence_length: int = 10,
    epochs: int = 20,
    batch_size: int = 32,
    test_fraction: float = 0.2,
    seed: int = 42,
    units: int = 64,
    verbose: int = 0,
) -> SeedResult:
    """Trains and evaluates the seed design, and makes its recursive forecast.

    Steps, as in the old script: fit ``MinMaxScaler`` on all rows (leak);
    Python-loop windows of ``sequence_length`` rows -> next row; chronological
    split of the windows; ``LSTM(units) -> Dense(n_series)`` trained with adam
    / mse, ``validation_split=0.1``; one-step predictions on the test windows
    inverse-transformed to levels and scored per series; then a recursive
    forecast with one ``model.predict`` call per step.

    Args:
        levels: Aligned frame of positive levels, DatetimeIndex ascending, no
            NaN; columns are the series ids.
        forecast_dates: Dates of the forecast steps; the number of steps is
            ``len(forecast_dates)`` (30 in the benchmark).
        sequence_length: Window length (10 in the seed).
        epochs: Training epochs (20 in the seed).
        batch_size: Training batch size (32 in the seed).
        test_fraction: Fraction of the windows held out as test (0.2).
        seed: Seed passed to ``keras.utils.set_random_seed``.
        units: LSTM units (64 in the seed).
        verbose: Verbosity of ``model.fit``; predictions are always silent so
            progress bars do not pollute the forecast timing.

    Returns:
        A ``SeedResult`` (see its docstring); it also carries the in-memory
        ``model`` and ``scaler`` for ``backtest_seed_design``.

    Raises:
        ValueError: If ``levels`` is unusable or ``forecast_dates`` is empty.
    """
    _validate_levels(levels, sequence_length)
    forecast_dates = pd.DatetimeIndex(forecast_dates)
    if len(forecast_dates) == 0:
        raise ValueError("forecast_dates must not be empty")
    keras.utils.set_random_seed(seed)

    series_ids = list(levels.columns)
    n_series = len(series_ids)
    values = levels.to_numpy(dtype=np.float64)

    model = _build_model(sequence_length, n_series, units)

    # --- timed: scaling + windowing + fit -------------------------------
    t0 = time.perf_counter()
    scaler = MinMaxScaler()
    scaled = scaler.fit_transform(values)  # fitted on ALL rows: the leak
    X, y = _create_sequences(scaled, sequence_length)
    train_size = _split_index(len(X), test_fraction)
    X_train, X_test = X[:train_size], X[train_size:]
    y_train = y[:train_size]
    t_prep = time.perf_counter() - t0

    t1 = time.perf_counter()
    fit = model.fit(
        X_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        validation_split=0.1,
        verbose=verbose,
    )
    train_seconds = t_prep + (time.perf_counter() - t1)
    # ---------------------------------------------------------------------

    hist = fit.history
    history = pd.DataFrame(
        {
            "epoch": np.arange(1, len(hist["loss"]) + 1),
            "loss": hist["loss"],
            "val_loss": hist.get("val_loss", [np.nan] * len(hist["loss"])),
        }
    )

    # Test predictions (one step ahead), back to levels.
    target_pos = np.arange(train_size, len(X)) + sequence_length
    target_dates = levels.index[target_pos]
    pred_levels = scaler.inverse_transform(model.predict(X_test, verbose=0))
    test_predictions = pd.DataFrame(pred_levels, index=target_dates, columns=series_ids)

    actual = values[target_pos]
    naive = values[target_pos - 1]  # previous day's actual level
    rows = [
        {
            "series_id": sid,
            "mse": mse(actual[:, j], pred_levels[:, j]),
            "mae": mae(actual[:, j], pred_levels[:, j]),
            "r2": r2(actual[:, j], pred_levels[:, j]),
            "naive_mae": mae(actual[:, j], naive[:, j]),
            "rel_mae": relative_mae(actual[:, j], pred_levels[:, j], naive[:, j]),
        }
        for j, sid in enumerate(series_ids)
    ]
    metrics = pd.DataFrame(rows).set_index("series_id")

    # --- timed: recursive forecast, ONE model.predict per step (slow path) -
    window = scaled[-sequence_length:].copy()
    steps = []
    t2 = time.perf_counter()
    for _ in range(len(forecast_dates)):
        nxt = model.predict(window[np.newaxis, :, :], verbose=0)[0]
        steps.append(nxt)
        window = np.vstack([window[1:], nxt])
    forecast_ms = (time.perf_counter() - t2) * 1000.0
    # ---------------------------------------------------------------------
    forecast = pd.DataFrame(scaler.inverse_transform(np.array(steps)), index=forecast_dates, columns=series_ids)

    return SeedResult(
        train_seconds=train_seconds,
        forecast_ms=forecast_ms,
        forecast=forecast,
        test_predictions=test_predictions,
        metrics=metrics,
        history=history,
        model=model,
        scaler=scaler,
        sequence_length=sequence_length,
        test_fraction=test_fraction,
    )


def backtest_seed_design(
    levels: pd.DataFrame,
    model_and_scaler: SeedResult | tuple[Any, MinMaxScaler],
    *,
    horizons: Sequence[int] = (1, 5, 10, 20, 30),
    sequence_length: int | None = None,
    test_fraction: float | None = None,
) -> pd.DataFrame:
    """Scores the seed design's recursive forecast per series and horizon.

    For every test-window origin (windows whose first predicted day is in the
    test part; the origin ``t`` is the window's last input day), the seed's
    recursive forecast is run up to ``max(horizons)`` steps. Origins whose
    horizon-``h`` target falls past the data are skipped for that ``h``. The
    MAE per series and horizon on levels is compared with the random walk
    (level at the origin) for the same targets: ``rel_mae = mae / naive_mae``.

    Note:
        This path is BATCHED across origins (step ``k`` of all origins is one
        ``model.predict`` call on a stacked batch) so that scoring is fast. It
        is numerically the same recursion as the seed's forecast, but it is
        only for scoring: the benchmark's timing of the seed's forecast is
        ``SeedResult.forecast_ms``, which uses the per-step, one-origin path.
        At ``h = 1`` the result matches ``SeedResult.metrics`` (same targets,
        same naive) up to float round-off.

    Args:
        levels: The same frame that was passed to ``run_seed_design``.
        model_and_scaler: Either the ``SeedResult`` returned by
            ``run_seed_design`` (its ``model``, ``scaler``,
            ``sequence_length`` and ``test_fraction`` are used), or a
            ``(model, scaler)`` tuple.
        horizons: Horizons (in rows / business days) to report, each >= 1.
        sequence_length: Overrides the window length (default: from the
            ``SeedResult``, else 10).
        test_fraction: Overrides the test fraction (default: from the
            ``SeedResult``, else 0.2).

    Returns:
        Long DataFrame with columns ``series_id``, ``horizon``, ``n``,
        ``mae``, ``naive_mae``, ``rel_mae``; one row per series and horizon
        (``n`` = number of origins scored; NaN metrics when ``n == 0``).

    Raises:
        ValueError: On invalid horizons, inputs, or a result without a model.
    """
    if isinstance(model_and_scaler, SeedResult):
        model, scaler = model_and_scaler.model, model_and_scaler.scaler
        seq_len = sequence_length or model_and_scaler.sequence_length
        frac = test_fraction if test_fraction is not None else model_and_scaler.test_fraction
    else:
        model, scaler = model_and_scaler
        seq_len = sequence_length or 10
        frac = test_fraction if test_fraction is not None else 0.2
    if model is None or scaler is None:
        raise ValueError("model_and_scaler has no model/scaler")
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1:
        raise ValueError("horizons must be positive integers")
    _validate_levels(levels, seq_len)

    series_ids = list(levels.columns)
    values = levels.to_numpy(dtype=np.float64)
    n_rows = len(values)
    scaled = scaler.transform(values)

    n_windows = n_rows - seq_len
    train_size = _split_index(n_windows, frac)
    starts = np.arange(train_size, n_windows)  # window i covers rows i..i+seq_len-1
    origins = starts + seq_len - 1  # last input row
    max_h = horizons[-1]

    batch = np.stack([scaled[s : s + seq_len] for s in starts])  # (n_origins, seq, k)
    preds_scaled = np.empty((max_h, len(starts), len(series_ids)))
    for k in range(max_h):
        nxt = model.predict(batch, batch_size=max(len(batch), 1), verbose=0)
        preds_scaled[k] = nxt
        batch = np.concatenate([batch[:, 1:, :], nxt[:, np.newaxis, :]], axis=1)

    rows = []
    for h in horizons:
        target = origins + h
        ok = target < n_rows
        pred = scaler.inverse_transform(preds_scaled[h - 1][ok]) if ok.any() else None
        actual = values[target[ok]]
        naive = values[origins[ok]]
        n = int(ok.sum())
        for j, sid in enumerate(series_ids):
            scores = (
                {"mae": np.nan, "naive_mae": np.nan, "rel_mae": np.nan}
                if n == 0
                else {
                    "mae": mae(actual[:, j], pred[:, j]),
                    "naive_mae": mae(actual[:, j], naive[:, j]),
                    "rel_mae": relative_mae(actual[:, j], pred[:, j], naive[:, j]),
                }
            )
            rows.append({"series_id": sid, "horizon": h, "n": n, **scores})
    return pd.DataFrame(rows, columns=["series_id", "horizon", "n", "mae", "naive_mae", "rel_mae"])


SEED_MODEL_FILE = "lstm_model.keras"
SEED_SCALER_FILE = "scaler.json"


def save_seed_model(result: SeedResult, folder: Path) -> tuple[Path, Path]:
    """Saves the trained model and scaler for the seed's daily run.

    Args:
        result: The ``SeedResult`` of ``run_seed_design``.
        folder: Where to write (created if needed).

    Returns:
        The paths of ``lstm_model.keras`` and ``scaler.json`` (the scaler's
        ``data_min_`` / ``data_max_``; the seed pickled the whole scaler).
    """
    if result.model is None or result.scaler is None:
        raise ValueError("the SeedResult has no model/scaler to save")
    folder.mkdir(parents=True, exist_ok=True)
    model_path, scaler_path = folder / SEED_MODEL_FILE, folder / SEED_SCALER_FILE
    result.model.save(model_path)
    scaler_path.write_text(
        json.dumps({"data_min": result.scaler.data_min_.tolist(), "data_max": result.scaler.data_max_.tolist()})
    )
    return model_path, scaler_path


@dataclass(frozen=True)
class SeedDaily:
    """What one daily run of the seed design did (counts only, never values).

    Attributes:
        seconds: Wall time of the whole run, imports excluded.
        is_session: Whether ``as_of`` is an NYSE session (the run goes on either way).
        predicted_sessions: Sessions predicted one step ahead and scored.
        forecast_steps: Steps of the recursive forecast.
    """

    seconds: float
    is_session: bool
    predicted_sessions: int
    forecast_steps: int


def run_seed_daily(
    *,
    url: str,
    api_key: str,
    series: Sequence[str],
    as_of: date,
    lookback_sessions: int,
    sequence_length: int,
    horizon: int,
    model_path: Path,
    scaler_path: Path,
    out_dir: Path,
) -> SeedDaily:
    """Runs the seed's daily script (its ``daily_forecast.py`` steps), timed from after imports.

    Steps, as the seed described them: check the NYSE calendar; refresh the
    FRED data of the last ``lookback_sessions + sequence_length`` sessions
    (plain fredapi, as the seed did); load the saved model and scaler; align
    on sessions (forward fill, drop incomplete rows); predict every lookback
    session with one ``model.predict``; MSE/MAE/R2 per series; the recursive
    forecast with one ``model.predict`` per step; write the four CSVs.

    Args:
        url: FRED API root (``fredapi``'s ``root_url``).
        api_key: FRED API key.
        series: Series ids, in the model's column order.
        as_of: The run's reference date.
        lookback_sessions: Sessions predicted and scored.
        sequence_length: Window length of the model.
        horizon: Forecast steps.
        model_path: The ``.keras`` file of ``save_seed_model``.
        scaler_path: The ``scaler.json`` of ``save_seed_model``.
        out_dir: Where the CSVs go (created if needed).

    Returns:
        A ``SeedDaily``.
    """
    from fredapi import Fred

    started = time.perf_counter()
    start = as_of - timedelta(days=int((lookback_sessions + sequence_length) * 1.6) + 30)
    open_today = is_session(as_of)
    fred = Fred(api_key=api_key)
    fred.root_url = url
    raw = {sid: fred.get_series(sid, observation_start=start, observation_end=as_of) for sid in series}
    model = keras.models.load_model(model_path, compile=False)
    bounds = json.loads(scaler_path.read_text())
    scaler = MinMaxScaler().fit(np.array([bounds["data_min"], bounds["data_max"]], dtype=np.float64))
    frame = pd.DataFrame({sid: pd.to_numeric(values, errors="coerce") for sid, values in raw.items()})
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns")
    frame = (
        frame.reindex(sessions_in_range(start, as_of)).ffill().dropna().iloc[-(lookback_sessions + sequence_length) :]
    )
    values = frame.to_numpy(dtype=np.float64)
    scaled = scaler.transform(values)
    X, _ = _create_sequences(scaled, sequence_length)
    predicted = scaler.inverse_transform(model.predict(X, verbose=0))
    actual = values[sequence_length:]
    metrics = pd.DataFrame(
        [
            {
                "series_id": sid,
                "mse": mse(actual[:, j], predicted[:, j]),
                "mae": mae(actual[:, j], predicted[:, j]),
                "r2": r2(actual[:, j], predicted[:, j]),
            }
            for j, sid in enumerate(series)
        ]
    )
    window, steps = scaled[-sequence_length:].copy(), []
    for _ in range(horizon):
        nxt = model.predict(window[np.newaxis, :, :], verbose=0)[0]
        steps.append(nxt)
        window = np.vstack([window[1:], nxt])
    forecast_dates = sessions_after(frame.index[-1].date(), horizon)
    forecast = pd.DataFrame(scaler.inverse_transform(np.array(steps)), index=forecast_dates, columns=list(series))
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.rename_axis("date").to_csv(out_dir / "actuals.csv")
    pd.DataFrame(predicted, index=frame.index[sequence_length:], columns=list(series)).rename_axis("date").to_csv(
        out_dir / "predicted.csv"
    )
    forecast.rename_axis("date").to_csv(out_dir / "forecasted_data.csv")
    metrics.to_csv(out_dir / "model_metrics.csv", index=False)
    return SeedDaily(time.perf_counter() - started, open_today, len(X), horizon)

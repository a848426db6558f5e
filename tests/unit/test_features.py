"""Features, windows, the chronological split and the JSON scaler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import InsufficientDataError
from tasks.core.features import (
    Scaler,
    chronological_split,
    feature_columns,
    level_history,
    make_features,
    warmup_rows,
    window_inputs,
)


def test_features_are_log_returns_and_deviation_from_the_rolling_mean(levels: pd.DataFrame) -> None:
    features = make_features(levels, 20)
    assert list(features.columns) == feature_columns(tuple(levels.columns))
    assert features.index[0] == levels.index[warmup_rows(20)]
    logs = np.log(levels["SP500"])
    day = features.index[50]
    position = levels.index.get_loc(day)
    assert features.loc[day, "ret:SP500"] == pytest.approx(logs.iloc[position] - logs.iloc[position - 1])
    assert features.loc[day, "lvl:SP500"] == pytest.approx(
        logs.iloc[position] - logs.iloc[position - 19 : position + 1].mean()
    )
    assert not features.isna().any().any()


def test_windows_equal_the_rows_a_loop_would_take() -> None:
    scaled = np.arange(40, dtype=float).reshape(20, 2)
    rows = np.array([3, 7, 19])
    windows = window_inputs(scaled, 3, rows)
    expected = np.stack([scaled[t - 3 : t] for t in rows])
    assert windows.shape == (3, 3, 2) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows, expected)


def test_level_history_holds_the_last_level_window_log_levels(levels: pd.DataFrame) -> None:
    dates = levels.index[[30, 31]]
    history = level_history(levels, dates, 5)
    np.testing.assert_allclose(history[1], np.log(levels.iloc[27:32].to_numpy()))


def test_split_is_chronological_with_validation_inside_the_training_part() -> None:
    split = chronological_split(1000, sequence_length=10, test_fraction=0.2, validation_fraction=0.2)
    assert split.train_end == 800
    train, validation, test = (split.target_rows(p) for p in ("train", "validation", "test"))
    assert train[0] == 10 and train[-1] + 1 == validation[0]
    assert validation[-1] + 1 == test[0] == 800 and test[-1] == 999
    assert len(validation) == round(790 * 0.2)


def test_too_little_data_names_the_settings_to_change() -> None:
    with pytest.raises(InsufficientDataError, match="sequence_length=10"):
        chronological_split(25, sequence_length=10, test_fraction=0.2, validation_fraction=0.2)
    assert chronological_split(30, sequence_length=10, test_fraction=0.2, validation_fraction=0.2).train_end == 24


def test_scaler_round_trips_through_json_without_pickle(levels: pd.DataFrame) -> None:
    features = make_features(levels, 20)
    scaler = Scaler.fit(features.iloc[:300]).with_shrinkage(np.array([0.0, 0.5, 0.0, 1.0]))
    text = scaler.to_json()
    assert text.lstrip().startswith("{")
    again = Scaler.from_json(text)
    assert again == scaler
    assert again.series == tuple(levels.columns)
    np.testing.assert_allclose(again.transform(features.to_numpy()[:300]).mean(axis=0), 0, atol=1e-9)


def test_scaler_holds_the_moments_of_the_rows_it_is_fitted_on(levels: pd.DataFrame) -> None:
    # Which rows those are (the training part only) is the leakage test in test_training.py.
    features = make_features(levels, 20).dropna()
    rows = features.iloc[:300]
    scaler = Scaler.fit(rows)
    np.testing.assert_allclose(scaler.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.scale, rows.std(axis=0, ddof=0), rtol=1e-12)
    assert scaler != Scaler.fit(features)  # the other rows would give other moments

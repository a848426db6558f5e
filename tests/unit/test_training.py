"""Training: deterministic, and blind to the test part."""

from __future__ import annotations

import random
import threading

import numpy as np
import pandas as pd
import pytest

from tasks.core.ensemble import fit_ensemble
from tasks.core.features import Scaler, make_features, window_inputs
from tasks.core.training import fit_lstm, refit_ensemble
from tests.harness.settings import tiny_settings


def weights_equal(a: object, b: object) -> bool:
    first, second = a.model.get_weights(), b.model.get_weights()
    assert first and len(first) == len(second)
    return all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))


@pytest.fixture(scope="module")
def trained(levels: pd.DataFrame) -> object:
    return fit_lstm(levels, tiny_settings())


def test_training_is_deterministic_for_a_seed(levels: pd.DataFrame, trained: object) -> None:
    again = fit_lstm(levels, tiny_settings())
    assert weights_equal(trained, again)
    assert again.scaler == trained.scaler
    pd.testing.assert_frame_equal(again.history, trained.history)


def test_training_is_the_same_while_other_threads_draw_from_pythons_random(
    levels: pd.DataFrame, trained: object
) -> None:
    # A Dask worker's and Prefect's own threads use the process-wide `random` that Keras seeds from.
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()
            stop.wait(0.0001)

    thread = threading.Thread(target=draw)
    thread.start()
    try:
        again = fit_lstm(levels, tiny_settings())
    finally:
        stop.set()
        thread.join()
    assert weights_equal(trained, again)


def test_training_threads_of_one_process_give_each_model_its_own_seeded_weights(
    levels: pd.DataFrame, trained: object
) -> None:
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(fit_lstm(levels, tiny_settings()))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and all(weights_equal(trained, r) for r in results)


def test_changing_the_test_part_changes_neither_the_scaler_nor_the_model(levels: pd.DataFrame, trained: object) -> None:
    test_start = pd.Timestamp(trained.split_dates.test_start)
    changed = levels.copy()
    rng = np.random.default_rng(3)
    test_rows = changed.index >= test_start
    changed.loc[test_rows] = changed.loc[test_rows].to_numpy() * rng.uniform(
        0.5, 2.0, size=(test_rows.sum(), levels.shape[1])
    )
    retrained = fit_lstm(changed, tiny_settings())
    assert retrained.split_dates == trained.split_dates
    assert retrained.scaler == trained.scaler  # mean, scale and shrinkage
    assert weights_equal(retrained, trained)


def test_changing_the_training_part_does_change_the_model(levels: pd.DataFrame, trained: object) -> None:
    # The leakage test above would pass vacuously if training ignored its data; it does not.
    changed = levels.copy()
    changed.iloc[50:60] *= 1.1
    assert not weights_equal(fit_lstm(changed, tiny_settings()), trained)


def fit_weights(trained: object, levels: pd.DataFrame) -> object:
    return fit_ensemble(trained.predictor, trained.scaler, levels, split=trained.split, settings=tiny_settings())


def test_changing_the_test_part_changes_neither_the_ensemble_weights_nor_the_mase_scale(
    levels: pd.DataFrame, trained: object
) -> None:
    before = fit_weights(trained, levels)
    changed = levels.copy()
    test_rows = changed.index >= pd.Timestamp(trained.split_dates.test_start)
    changed.loc[test_rows] = changed.loc[test_rows].to_numpy() * np.random.default_rng(4).uniform(
        0.5, 2.0, size=(test_rows.sum(), levels.shape[1])
    )
    after = fit_weights(trained, changed)
    assert after.card == before.card  # members, weights and their rolling-origin skill
    assert after.mase_scale == before.mase_scale


def test_changing_the_training_part_changes_the_ensemble_weights(levels: pd.DataFrame, trained: object) -> None:
    # The same network, other training data: the weights must follow (or the test above is vacuous).
    before = fit_weights(trained, levels)
    changed = levels.copy()
    changed.iloc[100:300] = changed.iloc[100:300].to_numpy() * np.linspace(1.0, 1.3, 200)[:, None]
    assert fit_weights(trained, changed).card.weights != before.card.weights


def oracle(levels: pd.DataFrame, trained: object, last_origin: int) -> object:
    """A network that knows the next session's returns for windows ending at feature rows up to
    `last_origin`, and predicts the random walk elsewhere (recursive windows included)."""
    settings = tiny_settings()
    scaler = trained.scaler
    scaled = scaler.transform(make_features(levels, settings.level_window).to_numpy())
    n_series = levels.shape[1]
    origins = np.arange(settings.sequence_length - 1, last_origin + 1)
    windows = window_inputs(scaled, settings.sequence_length, origins + 1)
    known = {window.tobytes(): scaled[row + 1, :n_series] for window, row in zip(windows, origins, strict=True)}
    mean, scale = scaler.return_moments()
    unknown = -np.asarray(mean) / np.asarray(scale)  # a zero return: the random walk

    def predict(batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, dtype=np.float32)
        return np.array([known.get(window.tobytes(), unknown) for window in x], dtype=np.float32)

    return predict


def lstm_weight_at_h1(ensemble: object) -> list[float]:
    return [row.weights.get("lstm", 0.0) for row in ensemble.card.weights if row.horizon == 1]


def test_the_lstms_weight_is_earned_on_the_validation_slice_never_on_its_own_training_windows(
    levels: pd.DataFrame, trained: object
) -> None:
    # A network perfect on the windows it trained on and no better than the random walk after them
    # (what overfitting looks like at its worst) has shown no skill: no weight.
    split, unshrunk = trained.split, trained.scaler.with_shrinkage(np.ones(levels.shape[1]))

    def fitted(last_known_origin: int) -> object:
        predictor = oracle(levels, trained, last_known_origin)
        return fit_ensemble(predictor, unshrunk, levels, split=split, settings=tiny_settings())

    assert lstm_weight_at_h1(fitted(split.validation_start - 2)) == [0.0] * levels.shape[1]
    # Not vacuous: the same network, perfect on the validation slice too, does earn weight there.
    assert min(lstm_weight_at_h1(fitted(split.train_end - 2))) > 0.5


def test_history_has_one_row_per_epoch_with_train_and_validation_loss(trained: object) -> None:
    assert list(trained.history.columns) == ["epoch", "loss", "val_loss"]
    assert trained.history["epoch"].tolist() == [1, 2]
    assert trained.history[["loss", "val_loss"]].notna().all().all()


def test_validation_slice_lies_inside_the_training_part(trained: object) -> None:
    dates = trained.split_dates
    assert trained.data_start < dates.validation_start < dates.test_start <= dates.data_end


def test_a_backtest_refit_trains_on_every_session_up_to_its_origin(levels: pd.DataFrame, trained: object) -> None:
    # The model it replaces held the last test_fraction out; a refit at an origin inside that test
    # part must not hold out again (it would train on older data than the model it replaces).
    settings = tiny_settings()
    features = make_features(levels, settings.level_window)
    assert trained.split.train_end < len(features)
    refitted = refit_ensemble(levels, settings)
    everything = Scaler.fit(features)
    assert refitted.scaler.mean == everything.mean and refitted.scaler.scale == everything.scale
    whole = fit_lstm(levels, settings, hold_out=False)
    assert whole.split.train_end == len(features) and len(whole.split.target_rows("test")) == 0
    assert whole.split.validation_start > trained.split.validation_start  # its validation slice is the latest rows
    assert whole.split_dates.test_start > whole.split_dates.data_end == levels.index[-1].date()
    assert set(whole.split_dates.label(features.index)) == {"train", "validation"}

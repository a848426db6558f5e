"""Training: deterministic, blind to the test part, described by a model card; the champion gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.errors import ModelMismatchError
from tasks.training import check_model_card, fit_lstm, gate_decision
from tests.conftest import tiny_settings


def weights_equal(a: object, b: object) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.model.get_weights(), b.model.get_weights()))


@pytest.fixture(scope="module")
def trained(levels: pd.DataFrame) -> object:
    return fit_lstm(levels, tiny_settings())


def test_training_is_deterministic_for_a_seed(levels: pd.DataFrame, trained: object) -> None:
    again = fit_lstm(levels, tiny_settings())
    assert weights_equal(trained, again)
    assert again.scaler == trained.scaler
    pd.testing.assert_frame_equal(again.history, trained.history)


def test_changing_the_test_part_changes_neither_the_scaler_nor_the_model(levels: pd.DataFrame, trained: object) -> None:
    test_start = pd.Timestamp(trained.split_dates.test_start)
    changed = levels.copy()
    rng = np.random.default_rng(3)
    test_rows = changed.index >= test_start
    changed.loc[test_rows] = changed.loc[test_rows].to_numpy() * rng.uniform(0.5, 2.0, size=(test_rows.sum(), levels.shape[1]))
    retrained = fit_lstm(changed, tiny_settings())
    assert retrained.split_dates == trained.split_dates
    assert retrained.scaler == trained.scaler  # mean, scale and shrinkage
    assert weights_equal(retrained, trained)


def test_changing_the_training_part_does_change_the_model(levels: pd.DataFrame, trained: object) -> None:
    # The leakage test above would pass vacuously if training ignored its data; it does not.
    changed = levels.copy()
    changed.iloc[50:60] *= 1.1
    assert not weights_equal(fit_lstm(changed, tiny_settings()), trained)


def test_history_has_one_row_per_epoch_with_train_and_validation_loss(trained: object) -> None:
    assert list(trained.history.columns) == ["epoch", "loss", "val_loss"]
    assert trained.history["epoch"].tolist() == [1, 2]
    assert trained.history[["loss", "val_loss"]].notna().all().all()


def test_validation_slice_lies_inside_the_training_part(trained: object) -> None:
    dates = trained.split_dates
    assert trained.data_start < dates.validation_start < dates.test_start <= dates.data_end


def card(series: list[str], *, source: str = "fred", mase: float = 0.99) -> dict:
    return {
        "version": "v1",
        "series": series,
        "sequence_length": 10,
        "data_source": source,
        "backtest": [{"series_id": s, "horizon": 1, "mase": mase} for s in series],
    }


def backtest(values: dict[str, float], horizon: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"series_id": list(values), "horizon": horizon, "mase": list(values.values())})


def test_gate_promotes_a_first_model_that_is_not_worse_than_the_random_walk() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    promote, reason = gate_decision(backtest({"SP500": 1.0, "VIXCLS": 0.97}), None, settings, data_source="fred")
    assert promote and "first model" in reason


def test_gate_rejects_a_model_worse_than_the_random_walk_and_says_where() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    promote, reason = gate_decision(backtest({"SP500": 1.02, "VIXCLS": 0.9}), None, settings, data_source="fred")
    assert not promote and "SP500 1.020" in reason and "VIXCLS" not in reason.split("has")[-1]


def test_gate_only_checks_the_configured_series() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"], champion_gate={"series": ["VIXCLS"]})
    promote, _ = gate_decision(backtest({"SP500": 1.5, "VIXCLS": 0.9}), None, settings, data_source="fred")
    assert promote


def test_gate_keeps_a_better_champion() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    promote, reason = gate_decision(
        backtest({"SP500": 0.99, "VIXCLS": 0.99}), card(["SP500", "VIXCLS"], mase=0.95), settings, data_source="fred"
    )
    assert not promote and "kept the old champion v1" in reason


def test_gate_ignores_a_champion_of_other_series_or_data() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    new = backtest({"SP500": 0.99, "VIXCLS": 0.99})
    assert gate_decision(new, card(["SP500"], mase=0.5), settings, data_source="fred")[0]
    assert gate_decision(new, card(["SP500", "VIXCLS"], source="demo", mase=0.5), settings, data_source="fred")[0]


def test_a_stored_model_for_other_series_or_data_is_refused_clearly() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"], sequence_length=10)
    check_model_card(card(["SP500", "VIXCLS"]), settings, data_source="fred")
    with pytest.raises(ModelMismatchError, match=r"trained on series \['SP500'\]"):
        check_model_card(card(["SP500"]), settings, data_source="fred")
    with pytest.raises(ModelMismatchError, match="trained on demo data, this run uses fred data"):
        check_model_card(card(["SP500", "VIXCLS"], source="demo"), settings, data_source="fred")

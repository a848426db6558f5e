"""The promotion rule: when a new model replaces the champion, and when a stored model may serve a run."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from tasks.core.contracts import CardDataRange, ModelCard
from tasks.core.errors import ModelMismatchError
from tasks.core.promotion import check_model_card, gate_decision, settings_for_model
from tests.harness.settings import tiny_settings


def card(series: list[str], *, source: str = "fred", mase: float = 0.99, level_window: int = 20) -> ModelCard:
    day = date(2024, 1, 2)
    return ModelCard(
        version="v1",
        created_utc=datetime(2024, 1, 2, tzinfo=timezone.utc),
        as_of=day,
        data_source=source,
        series=tuple(series),
        sequence_length=10,
        architecture="test",
        data=CardDataRange(start=day, validation_start=day, test_start=day, end=day),
        shrinkage={},
        settings={"level_window": level_window},
        metrics_test=[],
        backtest=[{"series_id": s, "horizon": 1, "mase": mase} for s in series],
        interval_z_quantiles=[],
        library_versions={},
        files={},
    )


def backtest(values: dict[str, float], horizon: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"series_id": list(values), "horizon": horizon, "mase": list(values.values())})


def test_gate_promotes_a_first_model_that_is_not_worse_than_the_random_walk() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    decision = gate_decision(backtest({"SP500": 1.0, "VIXCLS": 0.97}), None, settings, data_source="fred")
    assert decision.promoted and "first model" in decision.reason


def test_gate_rejects_a_model_worse_than_the_random_walk_and_says_where() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    decision = gate_decision(backtest({"SP500": 1.02, "VIXCLS": 0.9}), None, settings, data_source="fred")
    assert not decision.promoted and "SP500 1.020" in decision.reason and "VIXCLS" not in decision.reason.split("has")[-1]


def test_gate_only_checks_the_configured_series() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"], champion_gate={"series": ["VIXCLS"]})
    decision = gate_decision(backtest({"SP500": 1.5, "VIXCLS": 0.9}), None, settings, data_source="fred")
    assert decision.promoted


def test_gate_keeps_a_better_champion() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    decision = gate_decision(
        backtest({"SP500": 0.99, "VIXCLS": 0.99}), card(["SP500", "VIXCLS"], mase=0.95), settings, data_source="fred"
    )
    assert not decision.promoted and "kept the old champion v1" in decision.reason


def test_gate_ignores_a_champion_of_other_series_or_data() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    new = backtest({"SP500": 0.99, "VIXCLS": 0.99})
    assert gate_decision(new, card(["SP500"], mase=0.5), settings, data_source="fred").promoted
    assert gate_decision(new, card(["SP500", "VIXCLS"], source="demo", mase=0.5), settings, data_source="fred").promoted


def test_a_stored_model_for_other_series_or_data_is_refused_clearly() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"], sequence_length=10)
    check_model_card(card(["SP500", "VIXCLS"]), settings, data_source="fred")
    with pytest.raises(ModelMismatchError, match=r"trained on series \['SP500'\]"):
        check_model_card(card(["SP500"]), settings, data_source="fred")
    with pytest.raises(ModelMismatchError, match="trained on demo data, this run uses fred data"):
        check_model_card(card(["SP500", "VIXCLS"], source="demo"), settings, data_source="fred")


def test_a_run_uses_the_input_windows_the_model_was_trained_with() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"], sequence_length=12, level_window=20)
    run_settings, notes = settings_for_model(card(["SP500", "VIXCLS"], level_window=120), settings)
    assert (run_settings.sequence_length, run_settings.level_window) == (10, 120)
    assert notes == [
        "sequence_length=10 as the model v1 was trained (this run's settings say 12)",
        "level_window=120 as the model v1 was trained (this run's settings say 20)",
    ]
    same, nothing = settings_for_model(card(["SP500", "VIXCLS"], level_window=20), tiny_settings(sequence_length=10))
    assert nothing == [] and same.level_window == 20

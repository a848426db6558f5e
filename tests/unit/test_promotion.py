"""The promotion rule: when a new model replaces the champion, and when a stored model may serve a run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from tasks.core.contracts import CARD_FORMAT_1, CardDataRange, EnsembleCard, MemberWeights, ModelCard
from tasks.core.errors import ModelMismatchError
from tasks.core.promotion import check_model_card, gate_decision, settings_for_model
from tasks.core.settings import EnsembleSettings
from tests.harness.settings import tiny_settings

HORIZONS = (1, 5, 10, 20, 30)
THROUGH = date(2024, 1, 2)  # the data end of `card`s


def card(
    series: list[str], *, source: str = "fred", rel_mae: float = 0.99, level_window: int = 20, card_format: int = 2
) -> ModelCard:
    """A model card; format 1 as an earlier version wrote it (no ensemble, `mase` meaning today's rel_mae)."""
    day = date(2024, 1, 2)
    column = "rel_mae" if card_format == 2 else "mase"
    fields: dict[str, object] = {
        "version": "v1",
        "created_utc": datetime(2024, 1, 2, tzinfo=UTC),
        "as_of": day,
        "data_source": source,
        "series": tuple(series),
        "sequence_length": 10,
        "architecture": "test",
        "data": CardDataRange(start=day, validation_start=day, test_start=day, end=day),
        "shrinkage": {},
        "settings": {"level_window": level_window},
        "metrics_test": [],
        "backtest": [{"series_id": s, "horizon": h, column: rel_mae} for s in series for h in HORIZONS],
        "interval_z_quantiles": [],
        "library_versions": {},
        "files": {},
    }
    if card_format == 1:
        return ModelCard(format=CARD_FORMAT_1, **fields)
    ensemble = EnsembleCard(
        members=("drift", "lstm"),
        estimation_sessions=500,
        min_estimation_sessions=100,
        method="test",
        weights=tuple(MemberWeights(series_id=s, horizon=1, weights={"random_walk": 1.0}) for s in series),
    )
    return ModelCard(**fields, ensemble=ensemble, mase_scale=dict.fromkeys(series, 1.0))


def backtest(values: dict[str, float], horizons: tuple[int, ...] = HORIZONS, **at: float) -> pd.DataFrame:
    """rel_mae of each series at every horizon; `at` overrides one cell, e.g. SP500_5=1.02."""
    rows = [
        {"series_id": s, "horizon": h, "rel_mae": at.get(f"{s}_{h}", v)} for s, v in values.items() for h in horizons
    ]
    return pd.DataFrame(rows)


def test_gate_promotes_a_first_model_that_is_not_worse_than_the_random_walk() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    decision = gate_decision(
        backtest({"SP500": 1.0, "VIXCLS": 0.97}), None, settings, data_source="fred", data_through=THROUGH
    )
    assert decision.promoted and "first model" in decision.reason


def test_gate_names_the_unusable_champion_a_model_replaces_rather_than_calling_it_the_first() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    decision = gate_decision(
        backtest({"SP500": 1.0, "VIXCLS": 0.97}),
        None,
        settings,
        data_source="fred",
        data_through=THROUGH,
        unusable_champion="v1 cannot be used (its model file is missing)",
    )
    assert decision.promoted and "first model" not in decision.reason
    assert decision.reason.startswith("promoted: the champion v1 cannot be used (its model file is missing), backtest")


def test_gate_rejects_a_model_worse_than_the_random_walk_at_any_horizon_and_says_where() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    decision = gate_decision(
        backtest({"SP500": 0.99, "VIXCLS": 0.9}, SP500_20=1.02),
        None,
        settings,
        data_source="fred",
        data_through=THROUGH,
    )
    assert not decision.promoted
    assert "SP500 h=20 1.020" in decision.reason and "VIXCLS h=" not in decision.reason


def test_gate_tolerates_noise_up_to_the_stated_tolerance() -> None:
    settings = tiny_settings(series=["SP500"])
    assert gate_decision(
        backtest({"SP500": 0.99}, SP500_5=1.009), None, settings, data_source="fred", data_through=THROUGH
    ).promoted
    strict = tiny_settings(series=["SP500"], champion_gate={"tolerance": 0.0})
    assert not gate_decision(
        backtest({"SP500": 0.99}, SP500_5=1.009), None, strict, data_source="fred", data_through=THROUGH
    ).promoted


def test_a_missing_gated_horizon_fails_the_gate() -> None:
    settings = tiny_settings(series=["SP500"])
    decision = gate_decision(
        backtest({"SP500": 0.9}, horizons=(1, 5)), None, settings, data_source="fred", data_through=THROUGH
    )
    assert not decision.promoted and "SP500 h=10 nan" in decision.reason


def test_gate_only_checks_the_configured_series_and_horizons() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"], champion_gate={"series": ["VIXCLS"], "horizons": [1, 5]})
    decision = gate_decision(
        backtest({"SP500": 1.5, "VIXCLS": 0.9}, VIXCLS_30=1.5), None, settings, data_source="fred", data_through=THROUGH
    )
    assert decision.promoted


@pytest.mark.parametrize(
    ("champion_rel_mae", "promoted", "reason"),
    [
        (0.95, False, "kept the old champion v1: its backtest mean rel_mae 0.9500"),
        (0.98, True, "champion's 0.9800"),  # a tie goes to the new model: it has seen more recent data
    ],
)
def test_gate_keeps_a_champion_better_on_the_mean_and_a_tie_goes_to_the_new_model(
    champion_rel_mae: float, promoted: bool, reason: str
) -> None:
    decision = gate_decision(
        backtest({"SP500": 0.99, "VIXCLS": 0.97}),  # mean 0.98
        card(["SP500", "VIXCLS"], rel_mae=champion_rel_mae),
        tiny_settings(series=["SP500", "VIXCLS"]),
        data_source="fred",
        data_through=THROUGH,
    )
    assert decision.promoted is promoted and reason in decision.reason, decision.reason


def test_gate_never_replaces_a_champion_built_from_later_data() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    champion = card(["SP500", "VIXCLS"], rel_mae=0.99)
    better = backtest({"SP500": 0.9, "VIXCLS": 0.9})
    replay = gate_decision(better, champion, settings, data_source="fred", data_through=THROUGH - timedelta(days=1))
    assert not replay.promoted
    assert "data through 2024-01-02, the new model only through 2024-01-01" in replay.reason
    for later in (THROUGH, THROUGH + timedelta(days=1)):  # same or later data: the scores decide
        assert gate_decision(better, champion, settings, data_source="fred", data_through=later).promoted
    other_series = card(["SP500"], rel_mae=0.5)  # a champion for other series is replaced whatever its data
    assert gate_decision(
        better, other_series, settings, data_source="fred", data_through=THROUGH - timedelta(days=1)
    ).promoted


def test_gate_reads_a_format_1_champions_mase_as_rel_mae() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    old = card(["SP500", "VIXCLS"], rel_mae=0.95, card_format=1)
    assert not gate_decision(
        backtest({"SP500": 0.99, "VIXCLS": 0.99}), old, settings, data_source="fred", data_through=THROUGH
    ).promoted
    assert gate_decision(
        backtest({"SP500": 0.94, "VIXCLS": 0.94}), old, settings, data_source="fred", data_through=THROUGH
    ).promoted


def test_gate_ignores_a_champion_of_other_series_or_data() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    new = backtest({"SP500": 0.99, "VIXCLS": 0.99})
    assert gate_decision(new, card(["SP500"], rel_mae=0.5), settings, data_source="fred", data_through=THROUGH).promoted
    assert gate_decision(
        new, card(["SP500", "VIXCLS"], source="demo", rel_mae=0.5), settings, data_source="fred", data_through=THROUGH
    ).promoted
    assert gate_decision(
        new, card(["SP500"], source="demo", rel_mae=0.5), settings, data_source="demo", data_through=THROUGH
    ).promoted


def test_a_model_of_demo_data_never_replaces_a_champion_of_fred_data() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"])
    much_better = backtest({"SP500": 0.5, "VIXCLS": 0.5})
    for champion in (card(["SP500", "VIXCLS"], rel_mae=0.99), card(["SP500"], rel_mae=0.99)):
        decision = gate_decision(much_better, champion, settings, data_source="demo", data_through=THROUGH)
        assert not decision.promoted
        assert "it was trained on fred data, the new model on the built-in demo data" in decision.reason


def test_a_stored_model_for_other_series_or_data_is_refused_clearly() -> None:
    settings = tiny_settings(series=["SP500", "VIXCLS"], sequence_length=10)
    check_model_card(card(["SP500", "VIXCLS"]), settings, data_source="fred")
    with pytest.raises(ModelMismatchError, match=r"trained on series \['SP500'\]"):
        check_model_card(card(["SP500"]), settings, data_source="fred")
    with pytest.raises(ModelMismatchError, match="trained on demo data, this run uses fred data") as caught:
        check_model_card(card(["SP500", "VIXCLS"], source="demo"), settings, data_source="fred")
    assert "no FRED credentials" not in str(caught.value)
    # A run without FRED credentials falls back on demo data: the fix is the credentials, not a retraining.
    with pytest.raises(ModelMismatchError) as caught:
        check_model_card(card(["SP500", "VIXCLS"]), settings, data_source="demo")
    assert "trained on fred data, this run uses demo data. This run found no FRED credentials: give it " in str(
        caught.value
    )


def test_a_run_uses_the_input_windows_the_model_was_trained_with() -> None:
    ensemble = EnsembleSettings(estimation_sessions=500, min_estimation_sessions=100)  # as the card's
    settings = tiny_settings(series=["SP500", "VIXCLS"], sequence_length=12, level_window=20, ensemble=ensemble)
    run_settings, notes = settings_for_model(card(["SP500", "VIXCLS"], level_window=120), settings)
    assert (run_settings.sequence_length, run_settings.level_window) == (10, 120)
    assert notes == [
        "sequence_length=10 as the model v1 was trained (this run's settings say 12)",
        "level_window=120 as the model v1 was trained (this run's settings say 20)",
    ]
    trained_alike = tiny_settings(
        sequence_length=10, ensemble=EnsembleSettings(estimation_sessions=500, min_estimation_sessions=100)
    )
    same, nothing = settings_for_model(card(["SP500", "VIXCLS"], level_window=20), trained_alike)
    assert nothing == [] and same == trained_alike


def test_a_run_fetches_for_the_estimation_window_the_models_members_were_fitted_with() -> None:
    # The card's classical members were estimated on the last 500 sessions (at least 100); a daily
    # run with the defaults (1000, 250) must size its fetch and its members' history from the card.
    settings = tiny_settings(sequence_length=10, series=["SP500", "VIXCLS"])
    run_settings, notes = settings_for_model(card(["SP500", "VIXCLS"]), settings)
    assert (run_settings.ensemble.estimation_sessions, run_settings.ensemble.min_estimation_sessions) == (500, 100)
    assert run_settings.ensemble.skill_z == settings.ensemble.skill_z  # the rest is the run's
    assert notes == [
        "ensemble.estimation_sessions=500 as the model v1 was trained (this run's settings say 1000)",
        "ensemble.min_estimation_sessions=100 as the model v1 was trained (this run's settings say 250)",
    ]
    format_1, none = settings_for_model(card(["SP500", "VIXCLS"], card_format=1), settings)
    assert none == [] and format_1 == settings  # no classical members to fit

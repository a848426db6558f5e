"""Settings: defaults as documented, bad values rejected with a message naming the field."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from tasks.core.calendar import sessions_in_range
from tasks.core.settings import DEFAULT_SERIES, Settings


def test_defaults_match_the_documented_pipeline() -> None:
    settings = Settings()
    assert settings.series == ("SP500", "VIXCLS", "DJIA", "BAMLCC4A0710YTRIV") == DEFAULT_SERIES
    assert settings.history_start == date(2020, 1, 1)
    assert (settings.sequence_length, settings.forecast_horizon, settings.epochs) == (10, 30, 20)
    assert settings.test_fraction == 0.2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sequence_length": 0}, "sequence_length"),
        ({"series": []}, "series"),
        ({"test_fraction": 0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"series": ["SP500", "sp500"]}, "series.1"),
        ({"series": ["SP 500"]}, "series.0"),
        ({"series": ["SP500", "SP500"]}, "series"),
        ({"epochs": 0}, "epochs"),
        ({"fetch": {"timeout_seconds": 0}}, "fetch.timeout_seconds"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_values_fail_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**overrides)
    locations = {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}
    assert field in locations or any(field in error["msg"] for error in caught.value.errors())


def test_unknown_series_id_format_message_says_how_fred_spells_ids() -> None:
    with pytest.raises(ValidationError, match="not a FRED series id"):
        Settings(series=["sp500"])


def test_a_history_start_before_the_nyse_calendar_says_where_it_begins() -> None:
    message = "1985-01-01 is before 1989-01-01, where the NYSE calendar the series are aligned on begins"
    with pytest.raises(ValidationError, match=message):
        Settings(history_start=date(1985, 1, 1))
    with pytest.raises(ValidationError, match=message):
        Settings(groups={"old": {"series": ["SP500"], "history_start": "1985-01-01"}})
    assert Settings(history_start=date(1989, 1, 1)).history_start == date(1989, 1, 1)
    assert len(sessions_in_range(date(1989, 1, 1), date(1989, 1, 31))) == 21  # the calendar covers it


def test_gate_series_must_be_configured() -> None:
    with pytest.raises(ValidationError, match="champion_gate.series"):
        Settings(series=["SP500"], champion_gate={"series": ["VIXCLS"]})


def test_backtest_horizons_cannot_exceed_the_forecast_horizon() -> None:
    with pytest.raises(ValidationError, match=r"give backtest.horizons .* --backtest.horizons 1 5 10\)"):
        Settings(forecast_horizon=10)
    assert Settings(forecast_horizon=10, backtest={"horizons": [1, 5, 10]}).forecast_horizon == 10


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().epochs = 3  # type: ignore[misc]

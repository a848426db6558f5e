"""Dashboard artifacts: progress shown only for long work, figures rounded for a reader."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pandas as pd
import pytest

from tasks.core.contracts import RunManifest
from tasks.ops import artifacts


class Dashboard:
    """Records the progress artifacts created and updated, on a clock the test moves."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.created: list[float] = []
        self.updated: list[float] = []
        monkeypatch.setattr(artifacts, "time", SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr(artifacts, "create_progress_artifact", self._create)
        monkeypatch.setattr(artifacts, "update_progress_artifact", self._update)

    def _create(self, *, progress: float, description: str) -> Any:
        self.created.append(progress)
        return uuid4()

    def _update(self, artifact_id: Any, *, progress: float) -> None:
        self.updated.append(progress)


@pytest.fixture
def dashboard(monkeypatch: pytest.MonkeyPatch) -> Dashboard:
    return Dashboard(monkeypatch)


def test_progress_is_shown_at_once_by_default_and_moved_at_most_once_a_second(dashboard: Dashboard) -> None:
    report = artifacts.progress_reporter("epochs")
    assert dashboard.created == [0.0]
    dashboard.now = 0.5
    report(1, 4)  # too soon after the last update
    dashboard.now = 1.6
    report(2, 4)
    dashboard.now = 1.7
    report(4, 4)  # the last step is always shown
    assert dashboard.updated == [50.0, 100.0]


def test_work_quicker_than_show_after_adds_no_progress_artifact(dashboard: Dashboard) -> None:
    report = artifacts.progress_reporter("backtest", show_after=3.0)
    dashboard.now = 1.0
    report(5, 10)
    dashboard.now = 2.0
    report(10, 10)
    assert dashboard.created == [] and dashboard.updated == []


def test_work_longer_than_show_after_shows_its_progress_from_then_on(dashboard: Dashboard) -> None:
    report = artifacts.progress_reporter("backtest", show_after=3.0)
    dashboard.now = 1.0
    report(1, 4)
    dashboard.now = 3.5
    report(2, 4)
    dashboard.now = 9.0
    report(4, 4)
    assert dashboard.created == [50.0] and dashboard.updated == [100.0]


# ---------------------------------------------------------------- readable figures


def metrics_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series_id": ["SP500", "VIXCLS"],
            "split": ["test", "test"],
            "n": [120, 120],
            "mae": [33.13657407407384, 0.8123456789],
            "naive_mae": [33.5, 0.81],
            "rel_mae": [0.98765432, 1.0028],
            "mase": [0.51234567, 3.1],
            "r2": [float("nan"), 0.5],
            "coverage_80": [0.84374, 0.79],
            "date": pd.to_datetime(["2026-11-23", "2026-11-24"]),
        }
    )


def test_a_series_precision_is_the_decimals_it_is_observed_with() -> None:
    actuals = pd.DataFrame(
        {"series_id": ["A", "A", "B", "B", "C"], "value": [5611.85, 5600.1, 41000.0, 39999.0, 1.23456]}
    )
    assert artifacts.series_decimals(actuals) == {"A": 2, "B": 0, "C": 5}


def test_levels_get_the_series_precision_ratios_three_decimals_and_coverage_a_percent() -> None:
    table = artifacts.readable_table(metrics_frame(), {"SP500": 2, "VIXCLS": 4})
    assert table["mae"].tolist() == ["33.14", "0.8123"]
    assert table["naive_mae"].tolist() == ["33.50", "0.8100"]
    assert table["rel_mae"].tolist() == ["0.988", "1.003"]
    assert table["mase"].tolist() == ["0.512", "3.100"]
    assert table["r2"].tolist() == [None, "0.500"]
    assert table["coverage_80"].tolist() == ["84%", "79%"]
    assert table["date"].tolist() == ["2026-11-23", "2026-11-24"]
    assert table["n"].tolist() == [120, 120] and table["split"].tolist() == ["test", "test"]


def test_errors_of_a_coarse_series_keep_their_size_and_squared_errors_their_digits() -> None:
    # A series observed in whole numbers (0 decimals) or in hundredths (a yield, 2 decimals).
    frame = pd.DataFrame(
        {"series_id": ["WHOLE", "YIELD"], "mae": [0.4, 0.0412], "mse": [0.25, 0.002482], "naive_mse": [0.3, 0.00348]}
    )
    table = artifacts.readable_table(frame, {"WHOLE": 0, "YIELD": 2})
    assert table["mae"].tolist() == ["0.40", "0.04"]
    assert table["mse"].tolist() == ["0.25", "0.002482"]
    assert table["naive_mse"].tolist() == ["0.3", "0.00348"]


def test_a_coverage_and_its_calibrated_range_read_alike_and_a_tiny_p_value_is_not_zero() -> None:
    frame = pd.DataFrame(
        {"series_id": ["A", "B"], "coverage_80": [0.81, 0.9], "calibrated_80_low": [0.765432, 0.7],
         "dm_pvalue": [0.0004, 0.0412]}
    )  # fmt: skip
    table = artifacts.readable_table(frame, {})
    assert table["coverage_80"].tolist() == ["81%", "90%"] and table["calibrated_80_low"].tolist() == ["77%", "70%"]
    assert table["dm_pvalue"].tolist() == ["<0.001", "0.041"]


def manifest(series: tuple[str, ...]) -> RunManifest:
    return RunManifest(
        kind="daily",
        created_utc=datetime(2026, 11, 23, 14, 30, tzinfo=UTC),
        as_of=date(2026, 11, 23),
        data_source="demo",
        demo_data=True,
        data_start=date(2025, 6, 1),
        data_through=date(2026, 11, 23),
        model_version="v1",
        model_training_run="runs/20261120_000000",
        series=series,
        code_version="test",
        flow_run_id=None,
        run_folder="runs/20261123_143000",
        files=(),
    )


def test_the_summary_shows_each_fan_chart_inline_and_no_long_figures() -> None:
    metrics = metrics_frame().drop(columns=["coverage_80", "date"]).assign(naive_r2=0.1)
    forecast = pd.DataFrame(
        {
            "date": pd.to_datetime(["2026-11-24", "2026-11-24"]),
            "series_id": ["SP500", "VIXCLS"],
            "forecast": [5612.123456789, 15.987654321],
            "lower_80": [5500.0000001, 14.1],
            "upper_80": [5700.99999, 17.2],
        }
    )
    actuals = pd.DataFrame({"series_id": ["SP500", "VIXCLS"], "value": [5611.85, 15.25]})
    charts = {
        "fan_chart_SP500.png": b"\x89PNG sp500",
        "fan_chart_VIXCLS.png": b"\x89PNG vix",
        "fan_chart_SP500.svg": b"<svg/>",
    }
    tables = {"actuals.csv": actuals, "model_metrics.csv": metrics, "forecasted_data.csv": forecast}
    text = artifacts.summary_markdown(manifest(("SP500", "VIXCLS")), tables, location="here", url=None, charts=charts)
    for name in ("fan_chart_SP500.png", "fan_chart_VIXCLS.png"):
        assert f"(data:image/png;base64,{base64.b64encode(charts[name]).decode()})" in text
    assert text.count("data:image/") == 2  # PNGs only
    without_images = re.sub(r"\(data:image/png;base64,[^)]*\)", "", text)
    assert "5612.12" in without_images and "33.14" in without_images
    assert not re.search(r"\d\.\d{5,}", without_images)

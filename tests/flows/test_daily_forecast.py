"""The daily flow on the local storage default: calendar gate, champion loading, publishing."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from flows.common import not_after_today, today_in_new_york
from flows.daily_forecast import daily_forecast
from flows.train_model import train_model
from tasks.core.contracts import sha256_hex
from tasks.core.settings import BacktestSettings, ChampionGateSettings, EnsembleSettings, Settings
from tasks.ops import artifacts
from tests.flows.test_train_model import chart_names, run_artifact
from tests.harness.flow_runs import flow_run_logs
from tests.harness.settings import promoting_settings, tiny_settings

TRAIN_AS_OF, DAILY_AS_OF = date(2025, 6, 30), date(2025, 7, 8)


@pytest.fixture(scope="module")
def trained_store(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store")
    train_model(as_of=TRAIN_AS_OF, settings=promoting_settings(), output_dir=str(out))
    return out


@pytest.fixture
def store(trained_store: Path, tmp_path: Path) -> Path:
    """A private copy of the trained store, so tests can change it."""
    copy = tmp_path / "store"
    shutil.copytree(trained_store, copy)
    return copy


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_daily_run_publishes_a_complete_folder_and_moves_latest(store: Path) -> None:
    result = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store))
    folder = store / result["run_folder"]
    csvs = {"actuals.csv", "forecasted_data.csv", "model_metrics.csv", "predicted.csv"}
    charts = chart_names(promoting_settings().series, training=False)  # fan charts only: no backtest in a daily run
    assert {p.name for p in folder.iterdir()} == csvs | charts | {"claim.json", "manifest.json"}
    assert json.loads((store / "latest.json").read_text())["run_folder"] == result["run_folder"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {
        name: sha256_hex((folder / name).read_bytes()) for name in csvs | charts
    }
    assert manifest["kind"] == "daily" and manifest["model_version"] == result["model_version"]
    training_run = store / manifest["model_training_run"]
    assert (training_run / "model_history.csv").exists() and (training_run / "backtest_metrics.csv").exists()


def test_the_settings_only_training_reads_change_nothing_in_a_daily_run(store: Path) -> None:
    # What the daily command's help says: training settings are accepted and have no effect, and the
    # input windows come from the champion. Every published file is the same, byte for byte.
    def published(settings: Settings) -> dict[str, str]:
        result = daily_forecast(as_of=DAILY_AS_OF, settings=settings, output_dir=str(store))
        manifest = json.loads((store / result["run_folder"] / "manifest.json").read_text())
        return {f["name"]: f["sha256"] for f in manifest["files"]}

    training_only = tiny_settings(
        history_start=date(2024, 1, 2),
        epochs=9,
        batch_size=8,
        lstm_units=3,
        lstm_dropout=0.5,
        loss="mse",
        learning_rate=0.1,
        test_fraction=0.3,
        validation_fraction=0.3,
        shrinkage_confidence_z=3.0,
        seed=7,
        sequence_length=6,
        level_window=40,
        backtest=BacktestSettings(horizons=(1, 2), origin_step=3, refit_every=50),
        ensemble=EnsembleSettings(
            members=("drift",), skill_z=3.0, estimation_sessions=300, min_estimation_sessions=100
        ),
        champion_gate=ChampionGateSettings(max_rel_mae=0.5, tolerance=0.0),
    )
    assert published(training_only) == published(promoting_settings())


def test_replaying_a_past_day_publishes_its_folder_but_latest_keeps_the_newer_forecast(store: Path) -> None:
    newer = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store))
    replay = daily_forecast(as_of=date(2025, 7, 7), settings=promoting_settings(), output_dir=str(store))
    assert replay["run_folder"] != newer["run_folder"] and (store / replay["run_folder"] / "manifest.json").exists()
    assert json.loads((store / "latest.json").read_text())["run_folder"] == newer["run_folder"]
    assert replay["latest_json"] == newer["run_folder"] == newer["latest_json"]
    summary = run_artifact(store, "daily-forecast-summary", folder=replay["run_folder"]).data
    assert f"latest.json (what Power BI shows) still points at {newer['run_folder']}, as of {DAILY_AS_OF}" in summary


def test_a_replay_before_the_champions_data_end_warns_that_the_model_saw_the_future(store: Path) -> None:
    day = date(2025, 6, 20)  # a session before TRAIN_AS_OF, whose data the champion was built from
    state = daily_forecast(as_of=day, settings=promoting_settings(), output_dir=str(store), return_state=True)
    assert state.is_completed()
    logs = flow_run_logs(state.state_details.flow_run_id)
    warning = next(m for m in logs if "it has seen sessions this run forecasts" in m)
    assert f"data through {TRAIN_AS_OF}, after this run's as_of {day}" in warning
    on_time = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store), return_state=True)
    on_time_logs = flow_run_logs(on_time.state_details.flow_run_id)
    assert any(m.startswith("Champion model ") for m in on_time_logs)  # the logs were read
    assert not any("has seen sessions" in m for m in on_time_logs)


def test_a_forecast_beyond_the_champions_calibrated_horizons_warns(store: Path) -> None:
    state = daily_forecast(
        as_of=DAILY_AS_OF, settings=promoting_settings(forecast_horizon=40), output_dir=str(store), return_state=True
    )
    assert state.is_completed()
    forecast = pd.read_csv(store / state.result()["run_folder"] / "forecasted_data.csv")
    assert forecast["horizon"].max() == 40
    warning = next(m for m in flow_run_logs(state.state_details.flow_run_id) if "goes beyond" in m)
    assert "forecast_horizon=40 goes beyond the last horizon the model" in warning
    assert "calibrated at (30): the intervals and ensemble weights of sessions 31..40 repeat horizon 30's" in warning
    at_30 = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store), return_state=True)
    logs = flow_run_logs(at_30.state_details.flow_run_id)
    assert any(m.startswith("Champion model ") for m in logs) and not any("goes beyond" in m for m in logs)


def test_an_unreadable_latest_json_is_replaced_with_a_warning(store: Path) -> None:
    daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store))
    (store / "latest.json").write_text('{"format": "market-forecast-latest/9", "run_folder": "runs/x"}')
    state = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store), return_state=True)
    assert json.loads((store / "latest.json").read_text())["run_folder"] == state.result()["run_folder"]
    warning = next(m for m in flow_run_logs(state.state_details.flow_run_id) if m.startswith("latest.json in "))
    assert "could not be read as this version's pointer (broken, or written by a newer version" in warning


def test_daily_predictions_score_each_split_separately_and_mark_live_rows(store: Path) -> None:
    result = daily_forecast(
        as_of=DAILY_AS_OF, settings=promoting_settings(), lookback_sessions=120, output_dir=str(store)
    )
    folder = store / result["run_folder"]
    predicted = pd.read_csv(folder / "predicted.csv", parse_dates=["date"])
    assert predicted["date"].nunique() == 120
    live = predicted[predicted["split"] == "live"]
    assert not live.empty and (live["date"] > pd.Timestamp(TRAIN_AS_OF)).all()
    metrics = pd.read_csv(folder / "model_metrics.csv")
    assert set(metrics["split"]) == set(predicted["split"])
    actuals = pd.read_csv(folder / "actuals.csv", parse_dates=["date"])
    assert actuals["date"].min() == predicted["date"].min()  # only the lookback window is published


def test_forecast_covers_the_next_30_sessions_after_the_last_actual(store: Path) -> None:
    result = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store))
    forecast = pd.read_csv(store / result["run_folder"] / "forecasted_data.csv", parse_dates=["date"])
    sp = forecast[forecast["series_id"] == "SP500"]
    assert len(sp) == 30 and sp["date"].iloc[0] == pd.Timestamp("2025-07-09")
    assert pd.Timestamp("2025-09-01") not in set(sp["date"])  # Labor Day
    assert (sp["lower_95"] <= sp["lower_80"]).all() and (sp["upper_80"] <= sp["upper_95"]).all()
    assert set(forecast["as_of"]) == {"2025-07-08"}


@pytest.mark.parametrize(("day", "why"), [(date(2025, 7, 4), "July 4th"), (date(2025, 7, 5), "Saturday")])
def test_a_closed_market_completes_with_a_reason_and_writes_nothing(store: Path, day: date, why: str) -> None:
    before = listing(store)
    state = daily_forecast(as_of=day, settings=promoting_settings(), output_dir=str(store), return_state=True)
    assert state.is_completed()
    assert f"NYSE closed on {day}" in state.message and why in state.message
    assert listing(store) == before


def test_force_runs_on_a_closed_day(store: Path) -> None:
    result = daily_forecast(as_of=date(2025, 7, 4), force=True, settings=promoting_settings(), output_dir=str(store))
    manifest = json.loads((store / result["run_folder"] / "manifest.json").read_text())
    assert manifest["forced"] is True


def test_without_a_champion_the_error_says_to_train_first(prefect_harness: None, tmp_path: Path) -> None:
    state = daily_forecast(
        as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(tmp_path), return_state=True
    )
    assert state.is_failed() and "No champion model" in state.message and "train-model" in state.message
    assert not any(tmp_path.iterdir())


def test_an_as_of_after_today_fails_at_parameter_validation_and_writes_nothing(store: Path) -> None:
    from prefect.exceptions import ParameterTypeError

    before = listing(store)
    tomorrow = today_in_new_york() + timedelta(days=1)
    with pytest.raises(ParameterTypeError, match=f"as_of {tomorrow} is after today in New York"):
        daily_forecast(as_of=tomorrow, settings=promoting_settings(), output_dir=str(store), force=True)
    assert listing(store) == before


def test_as_of_may_be_any_day_up_to_today_in_new_york() -> None:
    today = today_in_new_york()
    assert not_after_today(today) == today and not_after_today(DAILY_AS_OF) == DAILY_AS_OF
    assert not_after_today(None) is None
    with pytest.raises(ValueError, match="Leave as_of empty for today"):
        not_after_today(today + timedelta(days=1))


def test_a_tampered_model_file_is_refused(store: Path) -> None:
    version = json.loads((store / "models/champion.json").read_text())["version"]
    scaler = store / "models" / version / "scaler.json"
    scaler.write_text(scaler.read_text().replace("0", "1", 1))
    state = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store), return_state=True)
    assert state.is_failed() and "scaler.json has sha256" in state.message


def test_a_champion_with_a_file_missing_says_how_to_recover(store: Path) -> None:
    version = json.loads((store / "models/champion.json").read_text())["version"]
    (store / "models" / version / "lstm_model.keras").unlink()
    state = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store), return_state=True)
    assert state.is_failed() and f"The champion cannot be used: Model version {version} is incomplete" in state.message
    assert "lstm_model.keras: not found" in state.message
    assert "Restore the file, or run the train-model flow: it replaces a champion whose files cannot be used." in (
        state.message
    )


def test_a_champion_for_other_series_is_refused(store: Path) -> None:
    settings = promoting_settings(series=["SP500", "VIXCLS"])
    state = daily_forecast(as_of=DAILY_AS_OF, settings=settings, output_dir=str(store), return_state=True)
    assert state.is_failed() and "cannot serve this run" in state.message and "['SP500', 'VIXCLS']" in state.message


def test_a_dashboard_that_cannot_take_the_summary_does_not_fail_a_published_run(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def api_down(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Prefect API answered 503")

    monkeypatch.setattr(artifacts, "create_markdown_artifact", api_down)
    state = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store), return_state=True)
    assert state.is_completed()
    folder = state.result()["run_folder"]
    assert json.loads((store / "latest.json").read_text())["run_folder"] == folder
    logs = flow_run_logs(state.state_details.flow_run_id)
    assert any(
        f"{folder} is published, but its summary and tables could not be posted" in m and "503" in m for m in logs
    )


def test_a_daily_run_removes_old_folders_of_runs_that_never_completed(store: Path) -> None:
    now = datetime.now(UTC)
    killed, recent = (f"runs/{now - timedelta(days=days):%Y%m%d_%H%M%S}" for days in (10, 1))
    for folder in (killed, recent):
        (store / folder).mkdir(parents=True)
        (store / folder / "claim.json").write_text("{}")
        (store / folder / "actuals.csv").write_text("date\n")
    before = {p for p in listing(store) if not p.startswith((killed, recent))}
    state = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), output_dir=str(store), return_state=True)
    published = state.result()["run_folder"]
    assert not (store / killed).exists() and (store / recent / "claim.json").exists()
    assert {p for p in listing(store) if not p.startswith((published, recent))} == before | {"latest.json"}
    logs = flow_run_logs(state.state_details.flow_run_id)
    assert any(m.startswith("Removed 1 incomplete run folder(s) older than 7 days") and killed in m for m in logs)

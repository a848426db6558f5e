"""The training flow end to end under prefect_test_harness, with a tiny model.

On the embedded demo data and on a local FRED-compatible server; bad inputs fail with the errors
the issue describes and leave nothing half-written in the output folder.
"""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import flows.train_model as train_module
from flows.common import today_in_new_york
from flows.train_model import train_model
from tasks.core.charts import fan_chart_name, skill_chart_name
from tasks.core.contracts import sha256_hex
from tasks.core.demo import generate_demo_series
from tasks.core.errors import StorageError
from tasks.core.outputs import SCHEMAS
from tasks.core.settings import BacktestSettings, Settings
from tasks.stages import publish as publish_stage
from tests.harness.flow_runs import flow_run_logs
from tests.harness.fred_server import FredServer
from tests.harness.settings import promoting_settings, tiny_settings

AS_OF = date(2025, 6, 30)
KEY = "abcdefabcdefabcdefabcdefabcdef12"


def chart_names(series: tuple[str, ...], *, training: bool) -> set[str]:
    """The charts a run folder holds: a fan chart per series (and the skill chart for training), PNG and SVG."""
    names = {fan_chart_name(s, fmt) for s in series for fmt in ("png", "svg")}
    return names | ({skill_chart_name("png"), skill_chart_name("svg")} if training else set())


def run_folder(out: Path) -> Path:
    folders = sorted((out / "runs").iterdir())
    assert len(folders) == 1
    return folders[0]


@pytest.fixture(scope="module")
def demo_run(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("train-demo")
    # progress_after_seconds=0: the backtest's progress artifact appears however quick it is.
    settings = promoting_settings(backtest=BacktestSettings(origin_step=5, progress_after_seconds=0))
    result = train_model(as_of=AS_OF, settings=settings, output_dir=str(out))
    return out, result


def test_training_publishes_every_file_with_its_documented_columns(demo_run: tuple[Path, dict]) -> None:
    out, result = demo_run
    folder = run_folder(out)
    assert result["run_folder"] == f"runs/{folder.name}"
    for name, columns in SCHEMAS.items():
        table = pd.read_csv(folder / name)
        assert list(table.columns) == columns, name
        assert len(table) > 0, name
    forecast = pd.read_csv(folder / "forecasted_data.csv")
    assert forecast.groupby("series_id").size().to_dict() == dict.fromkeys(Settings().series, 30)
    assert set(pd.read_csv(folder / "model_metrics.csv")["split"]) == {"test"}


def test_manifest_and_latest_describe_the_complete_run(demo_run: tuple[Path, dict]) -> None:
    out, result = demo_run
    folder = run_folder(out)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} == set(SCHEMAS) | chart_names(Settings().series, training=True)
    for entry in manifest["files"]:
        content = (folder / entry["name"]).read_bytes()
        assert entry["sha256"] == sha256_hex(content) and entry["bytes"] == len(content)
        if entry["name"].endswith(".csv"):
            assert entry["rows"] == len(pd.read_csv(folder / entry["name"]))
        else:
            assert entry["rows"] is None
    assert manifest["kind"] == "training" and manifest["as_of"] == "2025-06-30"
    assert manifest["data_through"] <= "2025-06-30" and manifest["model_version"] == result["model_version"]
    assert manifest["model_training_run"] == result["run_folder"]
    # latest.json is what Power BI shows: only daily runs move it.
    assert not (out / "latest.json").exists()


def test_the_run_folder_holds_every_chart_and_the_manifest_lists_each_with_its_hash(
    demo_run: tuple[Path, dict],
) -> None:
    out, _ = demo_run
    folder = run_folder(out)
    listed = {f["name"]: f for f in json.loads((folder / "manifest.json").read_text())["files"]}
    names = chart_names(Settings().series, training=True)
    assert names <= {p.name for p in folder.iterdir()}
    for name in sorted(names):
        content = (folder / name).read_bytes()
        assert listed[name]["sha256"] == sha256_hex(content) and listed[name]["bytes"] == len(content), name
        if name.endswith(".png"):
            with Image.open(io.BytesIO(content)) as image:
                image.load()
                assert image.width >= 600 and image.height >= 400, name
        else:
            assert ET.fromstring(content).tag == "{http://www.w3.org/2000/svg}svg", name


def test_demo_data_is_labelled_in_every_output(demo_run: tuple[Path, dict]) -> None:
    out, result = demo_run
    folder = run_folder(out)
    assert result["data_source"] == "demo"
    for name in ("actuals.csv", "predicted.csv", "forecasted_data.csv", "model_metrics.csv", "backtest_metrics.csv"):
        assert set(pd.read_csv(folder / name)["data_source"]) == {"demo"}, name
    assert json.loads((folder / "manifest.json").read_text())["demo_data"] is True


def test_model_version_folder_has_model_scaler_and_a_card_with_matching_hashes(demo_run: tuple[Path, dict]) -> None:
    out, result = demo_run
    version_dir = out / "models" / result["model_version"]
    card = json.loads((version_dir / "model_card.json").read_text())
    for name in ("lstm_model.keras", "scaler.json"):
        assert card["files"][name] == sha256_hex((version_dir / name).read_bytes())
    assert card["series"] == list(Settings().series) and card["data_source"] == "demo"
    assert card["data"]["start"] < card["data"]["validation_start"] < card["data"]["test_start"] <= card["data"]["end"]
    versions = set(card["library_versions"])
    assert card["settings"]["epochs"] == 2 and {"python", "keras", "numpy", "pandas", "prefect"} <= versions
    assert versions & {"tensorflow", "tensorflow-cpu"}  # whichever wheel provides TensorFlow here
    assert {m["series_id"] for m in card["metrics_test"]} == set(Settings().series)
    assert len(card["backtest"]) == 4 * 5 and card["champion_gate"]["promoted"] is True
    assert card["format"] == "market-forecast-model-card/2"
    weights = card["ensemble"]["weights"]
    assert {(w["series_id"], w["horizon"]) for w in weights} == {
        (s, h) for s in Settings().series for h in (1, 5, 10, 20, 30)
    }
    assert all(abs(sum(w["weights"].values()) - 1.0) < 1e-9 for w in weights)
    assert set(card["mase_scale"]) == set(Settings().series) and all(v > 0 for v in card["mase_scale"].values())
    champion = json.loads((out / "models" / "champion.json").read_text())
    assert champion["version"] == result["model_version"]
    assert champion["training_run_folder"] == card["training_run_folder"] == result["run_folder"]
    assert champion["model_card_sha256"] == sha256_hex((version_dir / "model_card.json").read_bytes())
    # Promoted once the run folder was complete: after its manifest was written, not when the run began.
    published = datetime.fromtimestamp(int((out / result["run_folder"] / "manifest.json").stat().st_mtime), UTC)
    assert datetime.fromisoformat(champion["promoted_utc"]) >= published
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pickle"))


def test_predictions_mark_which_rows_the_model_trained_on(demo_run: tuple[Path, dict]) -> None:
    out, _ = demo_run
    predicted = pd.read_csv(run_folder(out) / "predicted.csv", parse_dates=["date"])
    first = predicted.groupby("split")["date"].min()
    last = predicted.groupby("split")["date"].max()
    assert last["train"] < first["validation"] and last["validation"] < first["test"]
    metrics = pd.read_csv(run_folder(out) / "model_metrics.csv")
    test = predicted[predicted["split"] == "test"]
    sp = test[test["series_id"] == "SP500"]
    rel_mae = np.mean(np.abs(sp["actual"] - sp["predicted"])) / np.mean(np.abs(sp["actual"] - sp["naive"]))
    assert metrics.set_index("series_id").loc["SP500", "rel_mae"] == pytest.approx(rel_mae)


def test_training_progress_and_artifacts_reach_the_prefect_ui(demo_run: tuple[Path, dict]) -> None:
    out, _ = demo_run
    messages = flow_run_logs(UUID(flow_run_id(out)))
    assert any(m.startswith("epoch 2/2: loss") for m in messages)
    # This run's own artifacts: other training runs of the session post under the same keys.
    for key in ("train-model-metrics", "train-model-forecast", "train-model-backtest"):
        assert run_artifact(out, key).type == "table", key
    summary = run_artifact(out, "train-model-summary").data
    assert "DEMO DATA" in summary and "MASE" in summary


def test_the_summary_shows_the_published_pngs_inline(demo_run: tuple[Path, dict]) -> None:
    out, _ = demo_run
    summary = run_artifact(out, "train-model-summary").data
    inline = [base64.b64decode(data) for data in re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", summary)]
    folder = run_folder(out)
    published = [(folder / fan_chart_name(s)).read_bytes() for s in Settings().series]
    assert inline == [*published, (folder / skill_chart_name()).read_bytes()]


def test_artifact_tables_show_rounded_figures(demo_run: tuple[Path, dict]) -> None:
    out, _ = demo_run
    backtest = json.loads(run_artifact(out, "train-model-backtest").data)
    assert all(re.fullmatch(r"\d+\.\d{3}", row["rel_mae"]) for row in backtest)
    p_values = [row["dm_pvalue"] for row in backtest if row["dm_pvalue"] is not None]
    assert all(re.fullmatch(r"<0\.001|\d+\.\d{3}", p) for p in p_values)
    assert all(re.fullmatch(r"\d+%", row["coverage_80"]) for row in backtest if row["coverage_80"] is not None)
    forecast = json.loads(run_artifact(out, "train-model-forecast").data)
    assert all(re.fullmatch(r"\d+\.\d{2}", row["forecast"]) for row in forecast)  # the demo series have 2 decimals
    summary = re.sub(r"\(data:image/png;base64,[^)]*\)", "", run_artifact(out, "train-model-summary").data)
    assert not re.search(r"\d\.\d{5,}", summary)


def test_the_backtest_shows_its_progress_in_the_prefect_ui(demo_run: tuple[Path, dict]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

    out, _ = demo_run
    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id(out)]),
                type=ArtifactFilterType(any_=["progress"]),
            )
        )
    by_description = {a.description: a.data for a in progress}
    assert by_description.get("Walk-forward backtest origins") == 100.0
    assert by_description.get("LSTM training epochs") == 100.0


def flow_run_id(out: Path, folder: str | None = None) -> str:
    manifest = (out / folder if folder else run_folder(out)) / "manifest.json"
    return json.loads(manifest.read_text())["flow_run_id"]


def run_artifact(out: Path, key: str, *, folder: str | None = None) -> Any:
    """The artifact `key` of the run published in `out` (in its run folder `folder`, when there are several)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id(out, folder)])
            )
        )
    return artifact


@pytest.fixture
def fred_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[FredServer]:
    """A FRED-compatible server with the demo history, selected through FRED_API_KEY/FRED_API_URL."""
    data = generate_demo_series(Settings().series, AS_OF)
    with FredServer(data, api_key=KEY) as server:
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        yield server


def test_with_a_fred_key_the_flow_trains_on_fred_and_reports_rel_mae_and_mase_per_series(
    prefect_harness: None, fred_env: FredServer, tmp_path: Path
) -> None:
    result = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path))
    metrics = pd.read_csv(run_folder(tmp_path) / "model_metrics.csv")
    assert result["data_source"] == "fred" and set(metrics["data_source"]) == {"fred"}
    assert set(metrics["series_id"]) == set(Settings().series)
    assert metrics["rel_mae"].notna().all() and (metrics["rel_mae"] > 0).all()
    assert metrics["mase"].notna().all() and (metrics["mase"] > 0).all()
    assert {r.series_id for r in fred_env.requests()} == set(Settings().series)


def assert_nothing_written(out: Path) -> None:
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())
    assert not (out / "models").exists() and not (out / "latest.json").exists()


def test_a_bad_key_fails_with_freds_message_and_writes_nothing(
    prefect_harness: None, fred_env: FredServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRED_API_KEY", "0" * 32)
    state = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path), return_state=True)
    assert state.is_failed()
    assert "api_key is not registered" in state.message and "0" * 32 not in state.message
    assert_nothing_written(tmp_path)


def test_an_unknown_series_fails_naming_it_and_writes_nothing(
    prefect_harness: None, fred_env: FredServer, tmp_path: Path
) -> None:
    settings = promoting_settings(series=["SP500", "NOSUCHSERIES"])
    state = train_model(as_of=AS_OF, settings=settings, output_dir=str(tmp_path), return_state=True)
    assert state.is_failed() and "NOSUCHSERIES" in state.message and "series does not exist" in state.message
    assert_nothing_written(tmp_path)


def test_stale_data_fails_naming_the_series_and_writes_nothing(
    prefect_harness: None, fred_env: FredServer, tmp_path: Path
) -> None:
    vix = generate_demo_series(("VIXCLS",), AS_OF)["VIXCLS"].loc[:"2025-05-30"]
    fred_env.set_series("VIXCLS", vix)
    state = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path), return_state=True)
    assert state.is_failed()
    assert "Stale data for as_of 2025-06-30" in state.message and "VIXCLS: last observation 2025-05-30" in state.message
    assert_nothing_written(tmp_path)


def test_a_long_gap_fails_naming_series_and_dates_and_writes_nothing(
    prefect_harness: None, fred_env: FredServer, tmp_path: Path
) -> None:
    djia = generate_demo_series(("DJIA",), AS_OF)["DJIA"]
    djia.loc["2024-02-05":"2024-02-16"] = np.nan
    fred_env.set_series("DJIA", djia)
    state = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path), return_state=True)
    assert state.is_failed()
    assert "DJIA: 10 missing session(s) 2024-02-05 .. 2024-02-16" in state.message
    assert_nothing_written(tmp_path)


def test_bad_settings_fail_at_parameter_validation_naming_the_field(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="sequence_length"):
        train_model(as_of=AS_OF, settings={"sequence_length": 0}, output_dir=str(tmp_path))
    with pytest.raises(ParameterTypeError, match="test_fraction"):
        train_model(as_of=AS_OF, settings={"test_fraction": 1.5}, output_dir=str(tmp_path))
    with pytest.raises(ParameterTypeError, match="is after today in New York"):
        train_model(as_of=today_in_new_york() + timedelta(days=1), output_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_the_champion_gate_keeps_the_champion_against_demo_data_a_replay_and_a_worse_model(
    prefect_harness: None, fred_env: FredServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path))
    assert first["data_source"] == "fred" and first["promoted"]
    pointer = tmp_path / "models" / "champion.json"
    champion = pointer.read_bytes()
    assert first["model_version"] in champion.decode()

    with monkeypatch.context() as without_fred:  # a run by hand without the FRED key: the demo data
        without_fred.delenv("FRED_API_KEY")
        without_fred.delenv("FRED_API_URL")
        demo = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path))
    assert demo["data_source"] == "demo" and not demo["promoted"]
    assert "it was trained on fred data, the new model on the built-in demo data" in demo["reason"]

    replay = train_model(as_of=date(2025, 6, 20), settings=promoting_settings(), output_dir=str(tmp_path))
    assert not replay["promoted"]
    assert f"built from data through {AS_OF}, the new model only through 2025-06-20" in replay["reason"]

    strict = tiny_settings(champion_gate={"max_rel_mae": 0.1, "tolerance": 0.0})
    worse = train_model(as_of=AS_OF, settings=strict, output_dir=str(tmp_path))
    assert not worse["promoted"] and "backtest rel_mae must be at most 0.1 (random walk 0.1" in worse["reason"]

    assert pointer.read_bytes() == champion  # the first model is still the one the daily runs use
    assert len(list((tmp_path / "models").glob("*/model_card.json"))) == 4  # each model was kept for the record


def test_a_training_run_that_cannot_publish_its_folder_promotes_nothing(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gate promotes a first model; the champion must still not name a training run folder that
    # was never completed (the daily runs' model_training_run, Power BI's model tables).
    def storage_down(*args: object, **kwargs: object) -> None:
        raise StorageError("storage down while publishing the run folder")

    monkeypatch.setattr(publish_stage, "publish_run", storage_down)
    state = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path), return_state=True)
    assert state.is_failed() and "storage down while publishing" in state.message
    assert not (tmp_path / "models" / "champion.json").exists()
    assert len(list((tmp_path / "models").glob("*/model_card.json"))) == 1  # saved, for the record


def test_a_champion_whose_files_are_unusable_is_replaced_and_the_reason_names_it(
    prefect_harness: None, tmp_path: Path
) -> None:
    first = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path))
    (tmp_path / "models" / first["model_version"] / "lstm_model.keras").unlink()  # lost, say
    second = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path))
    assert second["promoted"]
    assert second["reason"].startswith(f"promoted: the champion {first['model_version']} cannot be used (Model version")
    assert "lstm_model.keras" in second["reason"] and "first model" not in second["reason"]
    assert second["model_version"] in (tmp_path / "models" / "champion.json").read_text()


@pytest.mark.parametrize(
    ("moved_during", "published_folders"),
    [
        ("train_groups", 1),  # found before publishing: the run publishes nothing and releases its folder
        ("publish_outputs", 2),  # found at the promotion: the run's folder is published all the same
    ],
)
def test_a_training_run_does_not_promote_over_a_champion_promoted_while_it_trained(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved_during: str, published_folders: int
) -> None:
    # The first champion covers two series only, so the gate promotes the second run's model whatever
    # its scores (a champion trained for other series is not compared).
    first = train_model(as_of=AS_OF, settings=promoting_settings(series=["SP500", "VIXCLS"]), output_dir=str(tmp_path))
    assert first["promoted"]
    pointer = tmp_path / "models" / "champion.json"
    # While the second run trains against the first champion, another run promotes its own model.
    meanwhile = pointer.read_text().replace(first["model_version"], "20250630_000000-0ther0ne")
    real = getattr(train_module, moved_during)

    def another_run_promotes_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if moved_during == "train_groups":  # once this run's groups are trained
            trained = real(*args, **kwargs)
            pointer.write_text(meanwhile)
            return trained
        pointer.write_text(meanwhile)  # just before this run publishes
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, moved_during, another_run_promotes_meanwhile)
    state = train_model(as_of=AS_OF, settings=promoting_settings(), output_dir=str(tmp_path), return_state=True)
    assert state.is_failed()
    assert (
        "its champion gate decided on model" in state.message
        and f"champion.json named {first['model_version']}" in state.message
    )
    assert "now names 20250630_000000-0ther0ne" in state.message
    assert pointer.read_text() == meanwhile  # the other run's promotion stands
    assert len(list((tmp_path / "runs").glob("*/manifest.json"))) == published_folders
    assert len(list((tmp_path / "runs").iterdir())) == published_folders  # no claimed folder left behind
    assert len(list((tmp_path / "models").glob("*/model_card.json"))) == 2  # the model is kept for the record


@pytest.mark.parametrize("moved", [("a",), ("a", "b")])
def test_a_group_whose_champion_moved_does_not_keep_the_other_groups_from_being_promoted(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: tuple[str, ...]
) -> None:
    # Group a's first champion covers SP500 only, so the gate promotes the next model of a whatever its
    # scores; group b has no champion yet.
    first = train_model(as_of=AS_OF, settings=promoting_settings(groups={"a": ["SP500"]}), output_dir=str(tmp_path))
    assert first["promoted"]
    pointers = {group: tmp_path / "models" / group / "champion.json" for group in ("a", "b")}
    meanwhile = pointers["a"].read_text().replace(first["groups"]["a"]["model_version"], "20250630_000000-0ther0ne")
    real = train_module.publish_outputs

    def another_run_promotes_meanwhile(*args: Any, **kwargs: Any) -> Any:
        for group in moved:  # just before this run publishes
            pointers[group].parent.mkdir(parents=True, exist_ok=True)
            pointers[group].write_text(meanwhile)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "publish_outputs", another_run_promotes_meanwhile)
    settings = promoting_settings(groups={"a": ["SP500", "VIXCLS"], "b": ["DJIA"]})
    state = train_model(as_of=AS_OF, settings=settings, output_dir=str(tmp_path), return_state=True)
    assert state.is_failed() and "models/a/champion.json" in state.message
    for group in moved:  # the other run's promotions stand
        assert pointers[group].read_text() == meanwhile
    if moved == ("a", "b"):
        assert "The promotions of 2 model groups failed: a: " in state.message and "; b: " in state.message
        return
    published = next(p for p in (tmp_path / "runs").glob("*/manifest.json") if "DJIA" in p.read_text())
    version_b = json.loads(published.read_text())["model_groups"]["b"]["model_version"]
    assert json.loads(pointers["b"].read_text())["version"] == version_b  # b promoted all the same

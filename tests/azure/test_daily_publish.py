"""A training run then a daily run against Azurite, from empty working directories (issue 3, items 1-4).

All tests read the one session run (`published` in conftest.py): train as of 2026-11-20 into a
fresh container, then the daily flow as of 2026-11-23 with nothing on local disk.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re

import pandas as pd
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId

from tasks.core.calendar import is_session, session_window_start
from tasks.core.charts import render_charts
from tests.azure.stores import DAILY_AS_OF, DAILY_CHARTS, DAILY_FILES, TRAIN_AS_OF, Published


def run_files(published: Published, folder: str | None = None) -> dict[str, bytes]:
    folder = folder or published.result["run_folder"]
    return {name.removeprefix(f"{folder}/"): content for name, content in published.store.blobs(f"{folder}/").items()}


def tables_from_csvs(files: dict[str, bytes]) -> dict[str, pd.DataFrame]:
    """The run's tables read back from its published CSVs (pandas 3 reads floats back exactly)."""
    dated = ("actuals.csv", "predicted.csv", "forecasted_data.csv")
    return {
        name: pd.read_csv(io.BytesIO(content), parse_dates=["date"] if name in dated else False)
        for name, content in files.items()
        if name.endswith(".csv")
    }


def test_the_charts_in_azure_are_those_the_published_csvs_draw(published: Published) -> None:
    history = published.trained.settings.charts.history_sessions
    for folder, as_of, extra in (
        (published.result["run_folder"], DAILY_AS_OF, ()),
        (published.trained.result["run_folder"], TRAIN_AS_OF, ("skill_by_horizon.png", "skill_by_horizon.svg")),
    ):
        files = run_files(published, folder)
        redrawn = render_charts(tables_from_csvs(files), as_of=as_of, demo=True, history_sessions=history)
        assert sorted(redrawn) == sorted((*DAILY_CHARTS, *extra))
        for name, content in redrawn.items():
            assert files[name] == content, f"{folder}/{name} in Azure differs from a rendering of its CSVs"


def test_daily_run_from_empty_directory_uses_the_champion_from_azurite(published: Published) -> None:
    champion = json.loads(published.store.read("models/champion.json"))
    assert published.result["model_version"] == champion["version"] == published.trained.result["model_version"]
    assert published.cwd_after == []  # nothing read from or written to the working directory


def test_published_run_folder_has_every_file(published: Published) -> None:
    folder = published.result["run_folder"]
    assert folder.startswith("runs/") and len(folder) == len("runs/YYYYMMDD_HHMMSS")
    assert sorted(run_files(published)) == sorted([*DAILY_FILES, "claim.json"])
    claim = json.loads(published.store.read(f"{folder}/claim.json"))
    assert (claim["run_folder"], claim["flow_run_id"]) == (folder, str(published.flow_run_id))


def test_manifest_rows_and_sha256_match_the_published_blobs(published: Published) -> None:
    files = run_files(published)
    manifest = json.loads(files.pop("manifest.json"))
    files.pop("claim.json")  # written before the run's files, not one of them
    assert sorted(entry["name"] for entry in manifest["files"]) == sorted(files)
    for entry in manifest["files"]:
        content = files[entry["name"]]
        assert entry["sha256"] == hashlib.sha256(content).hexdigest(), entry["name"]
        assert entry["bytes"] == len(content), entry["name"]
        expected_rows = len(pd.read_csv(io.BytesIO(content))) if entry["name"].endswith(".csv") else None
        assert entry["rows"] == expected_rows, entry["name"]


def test_manifest_records_model_version_data_range_as_of_and_code_version(published: Published) -> None:
    manifest = json.loads(run_files(published)["manifest.json"])
    assert manifest["kind"] == "daily"
    assert manifest["run_folder"] == published.result["run_folder"]
    assert manifest["as_of"] == DAILY_AS_OF.isoformat()
    assert manifest["data_through"] == DAILY_AS_OF.isoformat()
    assert manifest["data_start"] < manifest["data_through"]
    assert manifest["model_version"] == published.result["model_version"]
    assert manifest["data_source"] == "demo" and manifest["demo_data"] is True
    assert manifest["code_version"]
    assert manifest["created_utc"].endswith("Z")
    # The folder is named after the run's creation time in UTC.
    stamp = published.result["run_folder"].removeprefix("runs/")
    assert (
        manifest["created_utc"] == f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
    )


def test_latest_json_points_at_the_daily_run(published: Published) -> None:
    latest = json.loads(published.store.read("latest.json"))
    folder = published.result["run_folder"]
    assert latest["run_folder"] == folder
    assert latest["manifest"] == f"{folder}/manifest.json"
    assert latest["kind"] == "daily" and latest["model_version"] == published.result["model_version"]


def test_daily_flow_fetches_only_the_window_it_needs(published: Published) -> None:
    settings = published.trained.settings
    # The lookback (365), then the longest window before it: the classical members' estimation
    # window (1000) beats the LSTM's input and level windows (10 + 20) and the bands' long-run
    # volatility (501); then the margin for late values (10).
    assert (settings.ensemble.estimation_sessions, settings.sequence_length, settings.level_window) == (1000, 10, 20)
    needed = 365 + 1000 + 10
    assert published.fetch_calls == [{"start": session_window_start(DAILY_AS_OF, needed), "end": DAILY_AS_OF}]


def test_actuals_cover_exactly_the_lookback_sessions(published: Published) -> None:
    actuals = pd.read_csv(io.BytesIO(run_files(published)["actuals.csv"]), parse_dates=["date"])
    dates = actuals["date"].drop_duplicates()
    assert len(dates) == 365  # lookback_sessions default
    assert dates.max() == pd.Timestamp(DAILY_AS_OF)
    assert all(is_session(d.date()) for d in dates)


def test_predicted_csv_marks_which_rows_the_model_trained_on(published: Published) -> None:
    version = published.result["model_version"]
    card = json.loads(published.store.read(f"models/{version}/model_card.json"))["data"]
    predicted = pd.read_csv(io.BytesIO(run_files(published)["predicted.csv"]), parse_dates=["date"])
    bounds = {split: (group["date"].min(), group["date"].max()) for split, group in predicted.groupby("split")}
    assert set(bounds) <= {"train", "validation", "test", "live"}
    assert "live" in bounds and bounds["live"][0] > pd.Timestamp(card["end"]) == pd.Timestamp(TRAIN_AS_OF)
    assert bounds["test"][0] >= pd.Timestamp(card["test_start"]) and bounds["test"][1] <= pd.Timestamp(card["end"])
    if "validation" in bounds:
        assert bounds["validation"][1] < pd.Timestamp(card["test_start"])
    if "train" in bounds:
        assert bounds["train"][1] < pd.Timestamp(card["validation_start"])
    metrics = pd.read_csv(io.BytesIO(run_files(published)["model_metrics.csv"]))
    # Metrics are reported per split, never pooled over rows the model trained on.
    assert set(metrics["split"]) == set(bounds)
    assert (metrics.groupby("series_id")["split"].nunique() == len(bounds)).all()


def test_forecast_covers_30_nyse_sessions_after_the_last_actual(published: Published) -> None:
    forecast = pd.read_csv(io.BytesIO(run_files(published)["forecasted_data.csv"]), parse_dates=["date"])
    for _, group in forecast.groupby("series_id"):
        assert list(group["horizon"]) == list(range(1, 31))
        assert group["date"].min() == pd.Timestamp("2026-11-24")
        assert pd.Timestamp("2026-11-26") not in set(group["date"])  # Thanksgiving is skipped
        assert all(is_session(d.date()) for d in group["date"])
    assert set(forecast["as_of"]) == {DAILY_AS_OF.isoformat()}


def test_daily_flow_posts_a_summary_with_link_and_a_forecast_table(published: Published) -> None:
    folder = published.result["run_folder"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[published.flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    expected_url = f"{published.store.azurite.blob_endpoint}/{published.store.container}/{folder}/"
    summary = by_key["daily-forecast-summary"].data
    assert f"as of {DAILY_AS_OF}" in summary
    assert published.result["model_version"] in summary and folder in summary and expected_url in summary
    assert "MASE" in summary and "naive" in summary
    assert "AccountKey" not in summary and "AccountKey" not in str([a.data for a in artifacts])
    assert by_key["daily-forecast-published-run"].data == f"[{folder}]({expected_url})"
    # The fan charts are inline, byte for byte the PNGs published to Azure (a data URI: no SAS needed).
    inline = [base64.b64decode(d) for d in re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", summary)]
    blobs = run_files(published)
    assert inline == [blobs[f"fan_chart_{s}.png"] for s in published.trained.settings.series]
    assert f"{expected_url}fan_chart" not in summary
    table = by_key["daily-forecast-forecast"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert len(rows) == 30 * len(published.trained.settings.series)


def test_daily_flow_task_runs_are_named_after_the_stages(published: Published) -> None:
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[published.flow_run_id]))
        )
    stages = {run.name.rsplit("-", 1)[0] if not run.name.startswith("fetch-") else run.name for run in task_runs}
    assert stages == {
        "check-market-calendar",
        "resolve-storage",
        "resolve-data-source",
        "load-champion-model",
        "daily-fetch-window",
        *(f"fetch-{sid}" for sid in published.trained.settings.series),
        "align-sessions",
        "predict-history",
        "score-predictions",
        "forecast-sessions",
        "build-outputs",
        "claim-run-folder",
        "render-charts",
        "publish-run",
        "post-run-artifacts",
        "remove-incomplete-folders",
    }

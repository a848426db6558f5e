"""The embedded default (LocalFileSystem under output_dir) publishes the same layout as Azure Blob."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.daily_forecast import daily_forecast
from flows.train_model import train_model
from tests.azure.stores import DAILY_AS_OF, TRAIN_AS_OF, Published


def normalised(names: list[str], *, training_folder: str, daily_folder: str, version: str) -> set[str]:
    """File names with the run-specific parts (folder timestamps, model version) replaced by roles."""
    return {
        name.replace(training_folder, "runs/<training>")
        .replace(daily_folder, "runs/<daily>")
        .replace(version, "<version>")
        for name in names
    }


@pytest.fixture(scope="module")
def local_runs(published: Published, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    out = tmp_path_factory.mktemp("local-store")
    settings = published.trained.settings
    training = train_model(as_of=TRAIN_AS_OF, settings=settings, output_dir=str(out), storage_block=None)
    daily = daily_forecast(as_of=DAILY_AS_OF, settings=settings, output_dir=str(out), storage_block=None)
    return out, training, daily


def test_local_default_publishes_the_same_files_as_azure(
    published: Published, local_runs: tuple[Path, dict, dict]
) -> None:
    out, training, daily = local_runs
    lock = out / ".market-forecast.lock"  # a local folder's own: what Azure's ETag conditions do there
    assert lock.read_bytes() == b""
    local = normalised(
        [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p != lock],
        training_folder=training["run_folder"], daily_folder=daily["run_folder"], version=training["model_version"],
    )  # fmt: skip
    azure = normalised(
        list(published.store.blobs()),
        training_folder=published.trained.result["run_folder"],
        daily_folder=published.result["run_folder"],
        version=published.trained.result["model_version"],
    )
    assert local == azure
    assert "latest.json" in local and "models/champion.json" in local and "runs/<daily>/manifest.json" in local


def test_local_default_writes_the_same_pointer_and_manifest_fields_as_azure(
    published: Published, local_runs: tuple[Path, dict, dict]
) -> None:
    out, _, daily = local_runs
    local_latest = json.loads((out / "latest.json").read_text())
    azure_latest = json.loads(published.store.read("latest.json"))
    assert local_latest.keys() == azure_latest.keys()
    assert local_latest["run_folder"] == daily["run_folder"]
    local_manifest = json.loads((out / daily["run_folder"] / "manifest.json").read_text())
    azure_manifest = json.loads(published.store.read(f"{published.result['run_folder']}/manifest.json"))
    assert local_manifest.keys() == azure_manifest.keys()
    assert [f["name"] for f in local_manifest["files"]] == [f["name"] for f in azure_manifest["files"]]
    assert [f["rows"] for f in local_manifest["files"]] == [f["rows"] for f in azure_manifest["files"]]

"""Fixtures of the Azure tests: containers and storage blocks on Azurite, one trained champion.

One tiny model is trained into Azurite once per session (`trained`) and the daily flow runs on it
from an empty working directory (`published`). Tests that change a container get their own
(`champion_store`): a fresh container holding a copy of the champion's `models/` blobs and nothing
else, so each can compare listings before and after without seeing the others' runs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer

from tasks.core.charts import fan_chart_name
from tasks.core.settings import ChampionGateSettings, Settings
from tests.azurite_harness import Azurite, AzuriteUnavailable
from tests.conftest import tiny_settings, unavailable

TRAIN_AS_OF = date(2026, 11, 20)  # a Friday session
DAILY_AS_OF = date(2026, 11, 23)  # the Monday after: a session, the model has not seen it
THANKSGIVING = date(2026, 11, 26)
SATURDAY = date(2026, 11, 28)

DAILY_CSVS = ("actuals.csv", "predicted.csv", "forecasted_data.csv", "model_metrics.csv")
# A fan chart per series (the tiny settings keep the four default series), PNG and SVG.
DAILY_CHARTS = tuple(fan_chart_name(s, fmt) for s in Settings().series for fmt in ("png", "svg"))
DAILY_FILES = (*DAILY_CSVS, *DAILY_CHARTS, "manifest.json")
TRAINING_ONLY_FILES = ("model_history.csv", "backtest_metrics.csv")


def azure_settings(**overrides: Any) -> Settings:
    """Tiny settings whose 2-epoch model always passes the champion gate."""
    return tiny_settings(champion_gate=ChampionGateSettings(max_mase=100), **overrides)


def unique_name(prefix: str) -> str:
    """A container (and block) name: lower-case letters, digits and hyphens, 3-63 characters."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def save_block(name: str, container: str, azurite: Azurite) -> str:
    """Save an AzureBlobStorageContainer block for `container`; returns '<type-slug>/<name>'."""
    credentials = AzureBlobStorageCredentials(connection_string=azurite.connection_string)
    AzureBlobStorageContainer(container_name=container, credentials=credentials).save(name, overwrite=True)
    return f"azure-blob-storage-container/{name}"


def blob_bytes(azurite: Azurite, container: str, prefix: str | None = None) -> dict[str, bytes]:
    """Every blob of `container` (under `prefix`), name -> content, read with the account key."""
    with azurite.blob_service_client(retry_total=0) as service:
        client = service.get_container_client(container)
        return {
            blob.name: client.download_blob(blob.name).readall()
            for blob in client.list_blobs(name_starts_with=prefix)
        }


def blob_listing(azurite: Azurite, container: str) -> dict[str, str]:
    """name -> etag of every blob: equal listings mean nothing was added, removed or rewritten."""
    with azurite.blob_service_client(retry_total=0) as service:
        return {blob.name: blob.etag for blob in service.get_container_client(container).list_blobs()}


def copy_blobs(blobs: dict[str, bytes], azurite: Azurite, container: str) -> None:
    """Upload `blobs` (name -> content) into `container`, which must exist."""
    with azurite.blob_service_client(retry_total=0) as service:
        client = service.get_container_client(container)
        for name, content in blobs.items():
            client.upload_blob(name, content, overwrite=True)


@dataclass
class Store:
    """A container on Azurite with a saved storage block pointing at it."""

    azurite: Azurite
    container: str
    block: str  # "azure-blob-storage-container/<name>", the flows' storage_block parameter

    def blobs(self, prefix: str | None = None) -> dict[str, bytes]:
        return blob_bytes(self.azurite, self.container, prefix)

    def listing(self) -> dict[str, str]:
        return blob_listing(self.azurite, self.container)

    def read(self, name: str) -> bytes:
        with self.azurite.blob_service_client(retry_total=0) as service:
            return service.get_blob_client(self.container, name).download_blob().readall()


@dataclass
class Trained:
    """The session's training run into Azurite."""

    store: Store
    settings: Settings
    result: dict[str, Any]
    models: dict[str, bytes]  # the models/ blobs, copied into other containers


@dataclass
class Published:
    """The session's daily run on the trained store, from an empty working directory."""

    trained: Trained
    result: dict[str, Any]
    cwd: Path
    cwd_after: list[str]
    fetch_calls: list[dict[str, Any]] = field(default_factory=list)
    flow_run_id: Any = None

    @property
    def store(self) -> Store:
        return self.trained.store


@pytest.fixture(scope="session")
def live_azurite(azurite: Azurite) -> Azurite:
    """The session's Azurite, started again if a test stopped it."""
    try:
        return azurite.start()
    except AzuriteUnavailable as exc:
        unavailable(f"Azurite could not be restarted: {exc}")
        raise  # unreachable: unavailable() fails or skips


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        yield


@pytest.fixture(scope="session")
def trained(live_azurite: Azurite, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train a tiny model into a fresh Azurite container (from an empty working directory)."""
    from flows.train_model import train_model

    container = unique_name("trained")
    live_azurite.create_container(container)
    store = Store(live_azurite, container, save_block(container, container, live_azurite))
    settings = azure_settings()
    with working_directory(tmp_path_factory.mktemp("train-cwd")):
        result = train_model(
            as_of=TRAIN_AS_OF, settings=settings, output_dir="never-used", storage_block=store.block
        )
    assert result["promoted"], f"the tiny model was not promoted: {result['reason']}"
    return Trained(store, settings, result, store.blobs("models/"))


@pytest.fixture(scope="session")
def published(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Run the daily flow on the trained store from a fresh empty directory, recording its fetches."""
    import flows.daily_forecast as daily_module

    calls: list[dict[str, Any]] = []
    real_fetch_all = daily_module.fetch_all

    def recording_fetch_all(source: Any, settings: Settings, *, start: date, end: date) -> Any:
        calls.append({"start": start, "end": end})
        return real_fetch_all(source, settings, start=start, end=end)

    cwd = tmp_path_factory.mktemp("daily-cwd")
    with working_directory(cwd), pytest.MonkeyPatch.context() as patch:
        patch.setattr(daily_module, "fetch_all", recording_fetch_all)
        state = daily_module.daily_forecast(
            as_of=DAILY_AS_OF, settings=trained.settings, storage_block=trained.store.block, return_state=True
        )
    assert state.is_completed(), f"the daily flow did not complete: {state.message}"
    return Published(
        trained,
        state.result(),
        cwd,
        sorted(os.listdir(cwd)),
        calls,
        state.state_details.flow_run_id,
    )


@pytest.fixture(scope="session")
def champion_store(live_azurite: Azurite, trained: Trained) -> Callable[..., Store]:
    """Factory: a new container (on the session Azurite or another one) holding only the champion."""

    def make(prefix: str, azurite: Azurite | None = None) -> Store:
        server = azurite or live_azurite
        container = unique_name(prefix)
        server.create_container(container)
        copy_blobs(trained.models, server, container)
        return Store(server, container, save_block(container, container, server))

    return make


@pytest.fixture(scope="module")
def own_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A private Azurite for the tests of one module that kill it (the session one stays up)."""
    server = Azurite(tmp_path_factory.mktemp("own-azurite"))
    try:
        server.start()
    except AzuriteUnavailable as exc:
        unavailable(f"Azurite could not start: {exc}")
    yield server
    server.stop()

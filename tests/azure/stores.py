"""What the Azure tests share: the days they run for, containers and storage blocks on Azurite, and
the session's trained store and daily run as the fixtures in conftest.py build them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer

from tasks.core.charts import fan_chart_name
from tasks.core.settings import Settings
from tests.harness.azurite import Azurite

TRAIN_AS_OF = date(2026, 11, 20)  # a Friday session
DAILY_AS_OF = date(2026, 11, 23)  # the Monday after: a session, the model has not seen it
THANKSGIVING = date(2026, 11, 26)
SATURDAY = date(2026, 11, 28)

DAILY_CSVS = ("actuals.csv", "predicted.csv", "forecasted_data.csv", "model_metrics.csv")
# A fan chart per series (the tiny settings keep the four default series), PNG and SVG.
DAILY_CHARTS = tuple(fan_chart_name(s, fmt) for s in Settings().series for fmt in ("png", "svg"))
DAILY_FILES = (*DAILY_CSVS, *DAILY_CHARTS, "manifest.json")
TRAINING_ONLY_FILES = ("model_history.csv", "backtest_metrics.csv")


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
            blob.name: client.download_blob(blob.name).readall() for blob in client.list_blobs(name_starts_with=prefix)
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

"""Fixtures of the Azure tests: containers and storage blocks on Azurite, one trained champion.

One tiny model is trained into Azurite once per session (`trained`) and the daily flow runs on it
from an empty working directory (`published`). Tests that change a container get their own
(`champion_store`): a fresh container holding a copy of the champion's `models/` blobs and nothing
else, so each can compare listings before and after without seeing the others' runs.
tests/azure/stores.py has the helpers and the days.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect.filesystems import WritableFileSystem
from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer

from tasks.adapters.blob_store import resolve_storage
from tasks.core.settings import Settings
from tests.azure.stores import (
    DAILY_AS_OF,
    TRAIN_AS_OF,
    Published,
    Store,
    Trained,
    copy_blobs,
    save_block,
    unique_name,
)
from tests.harness.azurite import Azurite, AzuriteUnavailable
from tests.harness.ci import running, unavailable
from tests.harness.settings import promoting_settings


@pytest.fixture(params=["azurite", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WritableFileSystem]:
    """A storage block on each real backend: a fresh Azurite container, and a local folder."""
    if request.param == "local":
        yield resolve_storage(None, str(tmp_path))
        return
    azurite: Azurite = request.getfixturevalue("live_azurite")
    container = unique_name("shared")
    azurite.create_container(container)
    credentials = AzureBlobStorageCredentials(connection_string=azurite.connection_string)
    yield AzureBlobStorageContainer(container_name=container, credentials=credentials)


@pytest.fixture(scope="session")
def live_azurite(azurite: Azurite) -> Azurite:
    """The session's Azurite, running (under CI a failure to start fails the run)."""
    try:
        return azurite.start()
    except AzuriteUnavailable as exc:
        unavailable(f"Azurite could not be restarted: {exc}")
        raise  # unreachable: unavailable() fails or skips


@pytest.fixture(scope="session")
def trained(live_azurite: Azurite, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train a tiny model into a fresh Azurite container (from an empty working directory)."""
    from flows.train_model import train_model

    container = unique_name("trained")
    live_azurite.create_container(container)
    store = Store(live_azurite, container, save_block(container, container, live_azurite))
    settings = promoting_settings()
    with contextlib.chdir(tmp_path_factory.mktemp("train-cwd")):
        result = train_model(as_of=TRAIN_AS_OF, settings=settings, output_dir="never-used", storage_block=store.block)
    assert result["promoted"], f"the tiny model was not promoted: {result['reason']}"
    return Trained(store, settings, result, store.blobs("models/"))


@pytest.fixture(scope="session")
def published(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Run the daily flow on the trained store from a fresh empty directory, recording its fetches."""
    import flows.daily_forecast as daily_module
    import tasks.stages.groups as groups_module  # each model group's daily work fetches there

    calls: list[dict[str, Any]] = []
    real_fetch_all = groups_module.fetch_all

    def recording_fetch_all(source: Any, settings: Settings, *, start: date, end: date) -> Any:
        calls.append({"start": start, "end": end})
        return real_fetch_all(source, settings, start=start, end=end)

    cwd = tmp_path_factory.mktemp("daily-cwd")
    with contextlib.chdir(cwd), pytest.MonkeyPatch.context() as patch:
        patch.setattr(groups_module, "fetch_all", recording_fetch_all)
        state = daily_module.daily_forecast(
            as_of=DAILY_AS_OF, settings=trained.settings, storage_block=trained.store.block, return_state=True
        )
    assert state.is_completed(), f"the daily flow did not complete: {state.message}"
    return Published(
        trained,
        state.result(),
        cwd,
        sorted(p.name for p in Path(cwd).iterdir()),
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
    with running(Azurite(tmp_path_factory.mktemp("own-azurite")), "Azurite") as server:
        yield server

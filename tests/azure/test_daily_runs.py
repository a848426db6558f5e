"""The daily flow's other paths against Azurite: closed market, re-runs, a missing container."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from flows.daily_forecast import daily_forecast
from tasks.core.errors import StorageError
from tests.azure.stores import DAILY_AS_OF, SATURDAY, THANKSGIVING, Store, Trained, save_block, unique_name
from tests.harness.azurite import Azurite
from tests.harness.settings import promoting_settings


@pytest.mark.parametrize(
    ("day", "reason"),
    [(THANKSGIVING, "a NYSE holiday (Thanksgiving)"), (SATURDAY, "a Saturday")],
    ids=["thanksgiving", "saturday"],
)
def test_closed_market_day_completes_with_a_message_and_writes_nothing(
    champion_store: Callable[..., Store], trained: Trained, day: date, reason: str
) -> None:
    store = champion_store("closed")
    before = store.listing()

    state = daily_forecast(as_of=day, settings=trained.settings, storage_block=store.block, return_state=True)

    assert state.is_completed()
    assert state.message == f"NYSE closed on {day}, {reason}: no forecast, nothing written."
    assert store.listing() == before


def _wait_for_next_utc_second(folder: str) -> None:
    """Run folders are named to the second; a same-second re-run would (rightly) be refused."""
    while f"runs/{datetime.now(UTC):%Y%m%d_%H%M%S}" <= folder:
        time.sleep(0.05)


def test_rerun_of_the_same_day_creates_a_new_folder_and_keeps_the_old_one_intact(
    champion_store: Callable[..., Store], trained: Trained
) -> None:
    store = champion_store("rerun")
    first = daily_forecast(as_of=DAILY_AS_OF, settings=trained.settings, storage_block=store.block)["run_folder"]
    first_blobs = {name: etag for name, etag in store.listing().items() if name.startswith(f"{first}/")}
    _wait_for_next_utc_second(first)

    second = daily_forecast(as_of=DAILY_AS_OF, settings=trained.settings, storage_block=store.block)["run_folder"]

    assert second != first
    listing = store.listing()
    assert {
        name: etag for name, etag in listing.items() if name.startswith(f"{first}/")
    } == first_blobs  # not rewritten
    blobs = store.blobs(f"{first}/")
    manifest = json.loads(blobs[f"{first}/manifest.json"])
    for entry in manifest["files"]:
        assert hashlib.sha256(blobs[f"{first}/{entry['name']}"]).hexdigest() == entry["sha256"], entry["name"]
    assert json.loads(store.read("latest.json"))["run_folder"] == second


def test_missing_container_error_names_it_and_says_how_to_create_it(live_azurite: Azurite, trained: Trained) -> None:
    container = unique_name("missing")
    block = save_block(container, container, live_azurite)

    state = daily_forecast(as_of=DAILY_AS_OF, settings=promoting_settings(), storage_block=block, return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, StorageError)
    message = str(error)
    assert f"The Azure Blob container {container!r} does not exist" in message
    assert "does not create containers" in message
    assert f"az storage container create --name {container}" in message
    assert "AccountKey" not in message
    with live_azurite.blob_service_client(retry_total=0) as service:
        assert not service.get_container_client(container).exists()  # the flow did not create it

"""Runs sharing one storage never undo each other's writes, on Azurite and on a local folder.

Two deployments, or a manual run beside a scheduled one, may publish to one storage at once. Each
test runs on both real backends: a container on Azurite (ETag-conditional writes) and a local
folder (a lock file). The interleavings are made deterministic where they can be (a run that
publishes while another is between its reads and its writes), and are real threads where they
cannot.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prefect.filesystems import WritableFileSystem
from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer

from tasks.adapters.blob_store import read_bytes, update_bytes, write_bytes
from tasks.adapters.model_store import (
    check_champion_unchanged,
    promote_champion,
    read_champion_pointer,
    read_current_champion,
    save_model_version,
)
from tasks.adapters.run_store import CLAIM, claim_run_folder, publish_run, release_run_folder
from tasks.core.contracts import LatestPointer, ModelCard, RunClaim, RunManifest, sha256_hex
from tasks.core.errors import ChampionMovedError, StorageTransientError
from tests.azure.stores import DAILY_AS_OF, unique_name
from tests.harness.azurite import Azurite
from tests.unit.test_promotion import card as model_card
from tests.unit.test_storage import CREATED, FILES, manifest_for

TIMEOUT = 10.0


def in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    """Run work(0) .. work(count - 1) in threads released at once; their results, in order (errors re-raised)."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_concurrent_updates_of_one_file_lose_no_write(storage: WritableFileSystem) -> None:
    def increment(current: bytes | None) -> bytes:
        return str(int(current or b"0") + 1).encode()

    def ten_increments(_: int) -> None:
        for _ in range(10):
            update_bytes(storage, "counter.txt", increment, timeout=TIMEOUT, attempts=100)

    in_threads(4, ten_increments)
    assert read_bytes(storage, "counter.txt", timeout=TIMEOUT) == b"40"


def test_runs_started_in_the_same_second_claim_a_folder_each(storage: WritableFileSystem) -> None:
    folders = in_threads(6, lambda i: claim_run_folder(storage, CREATED, flow_run_id=f"run-{i}", timeout=TIMEOUT))
    assert sorted(folders) == [f"runs/20261123_14300{second}" for second in range(6)]  # type: ignore[type-var]
    for index, folder in enumerate(folders):
        claim = RunClaim.from_bytes(read_bytes(storage, f"{folder}/{CLAIM}", timeout=TIMEOUT))
        assert (claim.run_folder, claim.flow_run_id, claim.created_utc) == (folder, f"run-{index}", CREATED)


def test_a_retried_claim_of_the_same_run_gets_its_folder_back(storage: WritableFileSystem) -> None:
    # The claim task is retried when the storage's answer was lost although the claim landed.
    first = claim_run_folder(storage, CREATED, flow_run_id="run-a", timeout=TIMEOUT)
    assert claim_run_folder(storage, CREATED, flow_run_id="run-a", timeout=TIMEOUT) == first
    assert claim_run_folder(storage, CREATED, flow_run_id="run-b", timeout=TIMEOUT) != first
    anonymous = claim_run_folder(storage, CREATED, flow_run_id=None, timeout=TIMEOUT)
    assert claim_run_folder(storage, CREATED, flow_run_id=None, timeout=TIMEOUT) != anonymous  # no id: never shared


def test_a_released_folder_is_free_again_and_a_complete_one_keeps_its_claim(storage: WritableFileSystem) -> None:
    failed = claim_run_folder(storage, CREATED, flow_run_id="failed", timeout=TIMEOUT)
    assert release_run_folder(storage, failed, timeout=TIMEOUT) == "released"
    assert claim_run_folder(storage, CREATED, flow_run_id="next", timeout=TIMEOUT) == failed

    published = claim_run_folder(storage, CREATED, flow_run_id="published", timeout=TIMEOUT)
    publish_run(storage, FILES, manifest_for(published, as_of=date(2026, 11, 23)), move_latest=True, timeout=TIMEOUT)
    assert release_run_folder(storage, published, timeout=TIMEOUT) == "complete"
    assert b'"published"' in read_bytes(storage, f"{published}/{CLAIM}", timeout=TIMEOUT)


def test_latest_json_stays_on_a_newer_run_published_while_an_older_one_was_publishing(
    storage: WritableFileSystem,
) -> None:
    # The older run (as_of Monday) reads latest.json before it writes its files; the newer one
    # (as_of Tuesday) publishes completely in between. latest.json must stay on Tuesday.
    monday, tuesday = "runs/20261123_143000", "runs/20261124_143000"

    def newer_run_publishes(name: str, index: int, total: int) -> None:
        if index == 1:
            publish_run(
                storage, FILES, manifest_for(tuesday, as_of=date(2026, 11, 24)), move_latest=True, timeout=TIMEOUT
            )

    older = publish_run(
        storage,
        FILES,
        manifest_for(monday, as_of=date(2026, 11, 23)),
        move_latest=True,
        timeout=TIMEOUT,
        on_file=newer_run_publishes,
    )
    latest = LatestPointer.from_bytes(read_bytes(storage, "latest.json", timeout=TIMEOUT))
    assert latest is not None and latest.run_folder == tuesday
    assert not older.moved_latest and older.latest == latest  # what the older run reports (its log warning)
    assert read_bytes(storage, f"{monday}/manifest.json", timeout=TIMEOUT)  # its folder is published all the same


def saved_card(storage: WritableFileSystem, version: str) -> tuple[ModelCard, str]:
    files = {"lstm_model.keras": version.encode(), "scaler.json": b"{}"}
    card = model_card(["SP500"]).model_copy(
        update={"version": version, "files": {name: sha256_hex(content) for name, content in files.items()}}
    )
    return card, save_model_version(storage, card, files, timeout=TIMEOUT)


def test_a_training_run_never_replaces_a_champion_promoted_while_it_trained(storage: WritableFileSystem) -> None:
    first, first_sha = saved_card(storage, "v1")
    promote_champion(storage, first, first_sha, replaces=None, promoted_utc=CREATED, timeout=TIMEOUT)
    # Two training runs both gated their model against v1; the one that finished first promoted v3.
    slow, slow_sha = saved_card(storage, "v2")
    quick, quick_sha = saved_card(storage, "v3")
    assert read_current_champion(storage, timeout=TIMEOUT).version == "v1"
    promote_champion(storage, quick, quick_sha, replaces="v1", promoted_utc=CREATED, timeout=TIMEOUT)
    champion = read_bytes(storage, "models/champion.json", timeout=TIMEOUT)

    check_champion_unchanged(storage, quick, replaces="v1", timeout=TIMEOUT)  # it names the model itself
    with pytest.raises(ChampionMovedError, match="now names v3"):
        check_champion_unchanged(storage, slow, replaces="v1", timeout=TIMEOUT)  # what the run checks first
    with pytest.raises(ChampionMovedError) as moved:
        promote_champion(storage, slow, slow_sha, replaces="v1", promoted_utc=CREATED, timeout=TIMEOUT)
    assert "decided on model v2 when models/champion.json named v1, and models/champion.json now names v3" in str(
        moved.value
    )
    assert "Re-run the train-model flow" in str(moved.value)
    assert read_bytes(storage, "models/champion.json", timeout=TIMEOUT) == champion

    # A retried promotion whose first write landed succeeds and changes nothing.
    again = promote_champion(storage, quick, quick_sha, replaces="v1", promoted_utc=CREATED, timeout=TIMEOUT)
    assert again.version == "v3" and read_bytes(storage, "models/champion.json", timeout=TIMEOUT) == champion


def test_the_first_promotion_into_an_empty_store_happens_once(storage: WritableFileSystem) -> None:
    # Two first trainings found no champion; only one of them becomes it.
    cards = [saved_card(storage, f"v{i}") for i in range(4)]

    def promote(index: int) -> str:
        card, sha = cards[index]
        try:
            return promote_champion(storage, card, sha, replaces=None, promoted_utc=CREATED, timeout=TIMEOUT).version
        except ChampionMovedError:
            return "refused"

    outcomes = in_threads(4, promote)
    pointer = read_champion_pointer(storage, timeout=TIMEOUT)
    assert pointer is not None and sorted(outcomes) == sorted([pointer.version, "refused", "refused", "refused"])


def test_an_azure_update_gives_up_when_the_blob_keeps_changing(live_azurite: Azurite) -> None:
    container = unique_name("contended")
    live_azurite.create_container(container)
    credentials = AzureBlobStorageCredentials(connection_string=live_azurite.connection_string)
    storage = AzureBlobStorageContainer(container_name=container, credentials=credentials)
    write_bytes(storage, "latest.json", b"0", timeout=TIMEOUT)
    decisions = {"count": 0}

    def decide_while_another_writer_writes(current: bytes | None) -> bytes:
        decisions["count"] += 1
        write_bytes(storage, "latest.json", json.dumps(decisions["count"]).encode(), timeout=TIMEOUT)
        return b"mine"

    with pytest.raises(StorageTransientError, match="another writer changed it 3 times in a row"):
        update_bytes(storage, "latest.json", decide_while_another_writer_writes, timeout=TIMEOUT, attempts=3)
    assert decisions["count"] == 3 and read_bytes(storage, "latest.json", timeout=TIMEOUT) == b"3"


def test_two_daily_runs_started_in_the_same_second_publish_two_complete_folders(
    champion_store: Callable[..., Any], trained: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.daily_forecast as daily_module

    store = champion_store("same-second")
    started = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(daily_module, "utc_now", lambda: started)  # both runs start in this very second

    def daily_run(_: int) -> Any:
        return daily_module.daily_forecast(as_of=DAILY_AS_OF, settings=trained.settings, storage_block=store.block)

    results: list[Any] = in_threads(2, daily_run)
    folders = sorted(result["run_folder"] for result in results)
    assert folders == [f"runs/{started:%Y%m%d_%H%M%S}", f"runs/{started + timedelta(seconds=1):%Y%m%d_%H%M%S}"]
    for folder in folders:
        blobs = store.blobs(f"{folder}/")
        manifest = RunManifest.from_bytes(blobs[f"{folder}/manifest.json"])
        assert manifest.run_folder == folder
        assert set(blobs) == {
            f"{folder}/{name}" for name in (*(f.name for f in manifest.files), "manifest.json", CLAIM)
        }
        assert all(sha256_hex(blobs[f"{folder}/{f.name}"]) == f.sha256 for f in manifest.files)
    assert json.loads(store.read("latest.json"))["run_folder"] in folders

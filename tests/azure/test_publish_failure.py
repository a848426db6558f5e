"""Publishing never leaves a half run: latest.json moves only after a folder is complete (issue 3, item 3).

The mid-upload failures are real: Azurite is killed (SIGKILL) right after the first file of a run
lands, while the daily flow is publishing, then restarted (after letting it save its metadata, so
the crash loses nothing that was already written). A short outage is retried through by the
publish stage's task retries; a permanent refusal (a real lease conflict) is not retried and removes
what was written; a complete folder is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prefect import flow

import tasks.stages.publish as publish_stage
from flows.daily_forecast import daily_forecast
from tasks.adapters.blob_store import resolve_storage
from tasks.adapters.run_store import publish_run
from tasks.core.contracts import RunHeader, RunManifest
from tasks.core.errors import PublishError, is_transient
from tasks.core.settings import StorageSettings
from tests.azure.stores import DAILY_AS_OF, DAILY_FILES, TRAIN_AS_OF, Store
from tests.harness.azurite import Azurite
from tests.harness.flow_runs import flow_run_logs
from tests.harness.settings import promoting_settings

# Short per-call limits so the dead Azurite is given up on in seconds, not minutes.
FAST_FAILING = StorageSettings(attempts=2, timeout_seconds=2, retry_delay_seconds=0.1)


def manifest_matches_blobs(store: Store, folder: str) -> bool:
    blobs = store.blobs(f"{folder}/")
    manifest = json.loads(blobs[f"{folder}/manifest.json"])
    return all(
        hashlib.sha256(blobs[f"{folder}/{entry['name']}"]).hexdigest() == entry["sha256"] for entry in manifest["files"]
    ) and set(blobs) - {f"{folder}/claim.json"} == {f"{folder}/{e['name']}" for e in manifest["files"]} | {
        f"{folder}/manifest.json"
    }


def header_for(folder: str) -> RunHeader:
    return RunHeader(
        kind="daily",
        created_utc=datetime(2026, 11, 23, tzinfo=UTC),
        as_of=DAILY_AS_OF,
        data_source="demo",
        demo_data=True,
        data_start=DAILY_AS_OF,
        data_through=DAILY_AS_OF,
        model_version="v1",
        model_training_run=None,
        series=("SP500",),
        code_version="test",
        flow_run_id=None,
        run_folder=folder,
    )


def manifest_for(folder: str, files: dict[str, bytes]) -> RunManifest:
    return RunManifest.for_files(header_for(folder), files, {})


@dataclass
class KilledUpload:
    store: Store
    previous: str  # the complete run latest.json pointed at before
    failed_folder: str
    killed_after: str
    error: BaseException
    state: Any
    logs: list[str]
    latest_after_restart: dict[str, Any]
    next_result: dict[str, Any]
    latest_after_next: dict[str, Any]


@pytest.fixture(scope="module")
def killed_upload(own_azurite: Azurite, champion_store: Callable[..., Store]) -> KilledUpload:
    """A complete daily run, then one whose upload dies with Azurite, then one after the restart."""
    store = champion_store("killed", azurite=own_azurite)
    settings = promoting_settings(storage=FAST_FAILING)
    previous = daily_forecast(as_of=TRAIN_AS_OF, settings=settings, storage_block=store.block)["run_folder"]
    own_azurite.wait_persisted()  # the previous run must survive the crash

    seen: dict[str, str] = {}
    real_publish_run = publish_stage.publish_run

    def publish_run_killing_azurite(
        *args: Any, on_file: Callable[[str, int, int], None] | None = None, **kwargs: Any
    ) -> Any:
        seen["folder"] = args[2].run_folder

        def after_each_file(name: str, index: int, total: int) -> None:
            if on_file is not None:
                on_file(name, index, total)
            if index == 1 and "killed_after" not in seen:
                seen["killed_after"] = name
                # Let Azurite save what it has, so the crash loses nothing that was written: had
                # latest.json been moved early, it would still be moved after the restart.
                own_azurite.wait_persisted()
                own_azurite.kill()

        return real_publish_run(*args, on_file=after_each_file, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish_stage, "publish_run", publish_run_killing_azurite)
        state = daily_forecast(as_of=DAILY_AS_OF, settings=settings, storage_block=store.block, return_state=True)
    error = state.result(raise_on_failure=False)

    logs = flow_run_logs(state.state_details.flow_run_id)

    own_azurite.restart()
    latest_after_restart = json.loads(store.read("latest.json"))
    next_result = daily_forecast(as_of=DAILY_AS_OF, settings=settings, storage_block=store.block)
    return KilledUpload(
        store, previous, seen["folder"], seen["killed_after"], error, state, logs,
        latest_after_restart, next_result, json.loads(store.read("latest.json")),
    )  # fmt: skip


def test_killed_upload_fails_the_flow_with_a_publish_error(killed_upload: KilledUpload) -> None:
    assert killed_upload.state.is_failed()
    assert isinstance(killed_upload.error, PublishError)
    assert killed_upload.killed_after == "actuals.csv"


def test_killed_upload_gives_up_after_the_configured_attempts(killed_upload: KilledUpload) -> None:
    # storage.attempts=2: one retry by Prefect, then the run fails; each attempt's error comes from
    # the project's own limit or a refused connection, never from the SDK's retries (~85 s a call).
    retries = [m for m in killed_upload.logs if re.search(r"Retry \d+/\d+", m)]
    assert len(retries) == 1 and "Retry 1/1" in retries[0]
    failed_attempts = [m for m in killed_upload.logs if "failed at predicted.csv" in m]
    assert failed_attempts and all(
        "Cannot connect to host" in m or "no answer within 2 s" in m for m in failed_attempts
    )


def test_killed_upload_leaves_latest_json_on_the_previous_complete_run(killed_upload: KilledUpload) -> None:
    assert killed_upload.latest_after_restart["run_folder"] == killed_upload.previous
    assert manifest_matches_blobs(killed_upload.store, killed_upload.previous)


def test_killed_upload_leaves_a_partial_folder_without_manifest(killed_upload: KilledUpload) -> None:
    # The claim and the first file landed and survived the crash; the cleanup could not reach the
    # dead Azurite, nor could the release of the claim (the run says so in its log; a later run removes
    # the folder once old).
    folder = killed_upload.failed_folder
    assert sorted(killed_upload.store.blobs(f"{folder}/")) == [f"{folder}/actuals.csv", f"{folder}/claim.json"]
    assert any(
        m.startswith(f"Could not check whether {folder} is complete") and "its claim.json was left" in m
        for m in killed_upload.logs
    )


def test_killed_upload_error_says_which_file_failed_and_where_latest_points(killed_upload: KilledUpload) -> None:
    # The first attempt's error (in the log, followed by Prefect's retry) says what was written and left.
    first = next(m for m in killed_upload.logs if f"failed at predicted.csv (2/{len(DAILY_FILES)})" in m)
    assert (
        f"Publishing {killed_upload.failed_folder} to Azure Blob container '{killed_upload.store.container}'" in first
    )
    assert "Cannot connect to host" in first or "no answer within 2 s" in first
    assert f"could not be removed ({killed_upload.failed_folder}/actuals.csv" in first
    assert "the folder has no manifest.json, so it is not a complete run" in first
    assert any("Retry 1/1" in m for m in killed_upload.logs)
    # The final error (after the retry, with Azurite still down) keeps the reader's facts.
    message = str(killed_upload.error)
    assert f"Publishing {killed_upload.failed_folder}" in message
    assert "latest.json was not changed" in message
    assert "Re-run the flow" in message
    assert not [m for m in [message, *killed_upload.logs] if "AccountKey=" in m and "AccountKey=***" not in m]
    assert killed_upload.failed_folder in (killed_upload.state.message or "")


def test_next_run_after_restart_publishes_and_moves_latest(killed_upload: KilledUpload) -> None:
    folder = killed_upload.next_result["run_folder"]
    assert folder not in (killed_upload.previous, killed_upload.failed_folder)
    assert killed_upload.latest_after_next["run_folder"] == folder
    assert manifest_matches_blobs(killed_upload.store, folder)


def test_upload_retries_through_a_short_outage_and_completes(
    own_azurite: Azurite, champion_store: Callable[..., Store]
) -> None:
    own_azurite.start()
    store = champion_store("outage", azurite=own_azurite)
    block = resolve_storage(store.block, "unused")
    # Retries 1, 2, 4 and 8 s apart: room for Azurite's restart on a loaded machine (it takes seconds).
    settings = promoting_settings(storage=StorageSettings(attempts=5, timeout_seconds=3, retry_delay_seconds=1.0))
    folder = "runs/20261123_120000"
    files = {"actuals.csv": b"date,value\n2026-11-23,1.0\n", "predicted.csv": b"date,value\n2026-11-23,2.0\n"}
    restarted = threading.Thread(target=lambda: (time.sleep(1), own_azurite.restart()))
    real_publish_run = publish_stage.publish_run

    def publish_run_with_outage(
        *args: Any, on_file: Callable[[str, int, int], None] | None = None, **kwargs: Any
    ) -> Any:
        def outage_after_first_file(name: str, index: int, total: int) -> None:
            if index == 1 and restarted.ident is None:
                own_azurite.wait_persisted()
                own_azurite.kill()
                restarted.start()  # back within a few seconds, while the publish stage retries

        return real_publish_run(*args, on_file=outage_after_first_file, **kwargs)

    @flow
    def publish_only() -> Any:
        return publish_stage._publish_run.with_options(**publish_stage.retry_options(settings.storage))(
            block, files, manifest_for(folder, files), move_latest=True, settings=settings
        )

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(publish_stage, "publish_run", publish_run_with_outage)
            state = publish_only(return_state=True)
    finally:
        if restarted.ident is not None:
            restarted.join()
    assert state.is_completed(), state.message
    logs = flow_run_logs(state.state_details.flow_run_id)
    assert any(f"Publishing {folder}" in m and "failed at predicted.csv" in m for m in logs)
    assert any("Retry 1/4" in m for m in logs)
    assert json.loads(store.read("latest.json"))["run_folder"] == folder
    assert manifest_matches_blobs(store, folder)


# ---------------------------------------------------------------- without a flow: publish_run itself

FILES = {"actuals.csv": b"date,value\n2026-11-23,1.0\n", "predicted.csv": b"date,value\n2026-11-23,2.0\n"}
TIMEOUT = 5.0


def test_failed_publish_removes_the_files_it_already_wrote(champion_store: Callable[..., Store]) -> None:
    store = champion_store("cleanup")
    block = resolve_storage(store.block, "unused")
    publish_run(block, FILES, manifest_for("runs/20261123_100000", FILES), move_latest=True, timeout=TIMEOUT)
    # A real, permanent refusal: another writer holds a lease on predicted.csv of the next run.
    blocked = "runs/20261123_110000/predicted.csv"
    with store.azurite.blob_service_client(retry_total=0) as service:
        blob = service.get_blob_client(store.container, blocked)
        blob.upload_blob(b"held by another writer")
        blob.acquire_lease(lease_duration=-1)
    before = store.listing()

    with pytest.raises(PublishError) as raised:
        publish_run(block, FILES, manifest_for("runs/20261123_110000", FILES), move_latest=True, timeout=TIMEOUT)

    assert store.listing() == before  # actuals.csv of the failed run was removed again
    assert not is_transient(raised.value)  # so the publish stage does not retry a refusal
    message = str(raised.value)
    assert "failed at predicted.csv (2/3)" in message
    assert "still points at runs/20261123_100000" in message
    assert f"could not be removed ({blocked})" in message  # the leased blob is not ours to remove


def test_publish_refuses_to_overwrite_a_complete_run_folder(champion_store: Callable[..., Store]) -> None:
    store = champion_store("overwrite")
    block = resolve_storage(store.block, "unused")
    publish_run(block, FILES, manifest_for("runs/20261123_100000", FILES), move_latest=True, timeout=TIMEOUT)
    before = store.listing()
    other = {name: content + b"changed\n" for name, content in FILES.items()}

    with pytest.raises(PublishError, match=re.escape("runs/20261123_100000 already holds a complete run")):
        publish_run(block, other, manifest_for("runs/20261123_100000", other), move_latest=True, timeout=TIMEOUT)

    assert store.listing() == before

"""Publishing never leaves a half run: latest.json moves only after a folder is complete (issue 3, item 3).

The mid-upload failures are real: Azurite is killed (SIGKILL) right after the first file of a run
lands, while the daily flow is publishing, then restarted (after letting it save its metadata, so
the crash loses nothing that was already written). A short outage is retried through; a permanent
refusal removes what was written; a complete folder is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

import tasks.storage as storage_module
from flows.daily_forecast import daily_forecast
from tasks.errors import PublishError
from tasks.settings import StorageSettings
from tasks.storage import build_manifest, publish_run, resolve_storage
from tests.azure.conftest import DAILY_AS_OF, TRAIN_AS_OF, Store, azure_settings
from tests.azurite_harness import Azurite

# Short per-call limits so the dead Azurite is given up on in seconds, not minutes.
FAST_FAILING = StorageSettings(attempts=2, timeout_seconds=2, retry_delay_seconds=0.1)


def manifest_matches_blobs(store: Store, folder: str) -> bool:
    blobs = store.blobs(f"{folder}/")
    manifest = json.loads(blobs[f"{folder}/manifest.json"])
    return all(
        hashlib.sha256(blobs[f"{folder}/{entry['name']}"]).hexdigest() == entry["sha256"] for entry in manifest["files"]
    ) and len(blobs) == len(manifest["files"]) + 1


@dataclass
class KilledUpload:
    store: Store
    previous: str  # the complete run latest.json pointed at before
    failed_folder: str
    killed_after: str
    error: BaseException
    state: Any
    failing_run_seconds: float
    latest_after_restart: dict[str, Any]
    next_result: dict[str, Any]
    latest_after_next: dict[str, Any]


@pytest.fixture(scope="module")
def killed_upload(own_azurite: Azurite, champion_store: Callable[..., Store]) -> KilledUpload:
    """A complete daily run, then one whose upload dies with Azurite, then one after the restart."""
    store = champion_store("killed", azurite=own_azurite)
    settings = azure_settings(storage=FAST_FAILING)
    previous = daily_forecast(as_of=TRAIN_AS_OF, settings=settings, storage_block=store.block)["run_folder"]
    own_azurite.wait_persisted()  # the previous run must survive the crash

    seen: dict[str, str] = {}
    real_publish_run = storage_module.publish_run

    def publish_run_killing_azurite(*args: Any, on_file: Callable[[str, int, int], None] | None = None, **kwargs: Any) -> Any:
        seen["folder"] = args[1]

        def after_each_file(name: str, index: int, total: int) -> None:
            if on_file is not None:
                on_file(name, index, total)
            if index == 1:
                seen["killed_after"] = name
                # Let Azurite save what it has, so the crash loses nothing that was written: had
                # latest.json been moved early, it would still be moved after the restart.
                own_azurite.wait_persisted()
                own_azurite.kill()

        return real_publish_run(*args, on_file=after_each_file, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage_module, "publish_run", publish_run_killing_azurite)
        started = time.monotonic()
        state = daily_forecast(as_of=DAILY_AS_OF, settings=settings, storage_block=store.block, return_state=True)
        failing_run_seconds = time.monotonic() - started
    error = state.result(raise_on_failure=False)

    own_azurite.restart()
    latest_after_restart = json.loads(store.read("latest.json"))
    next_result = daily_forecast(as_of=DAILY_AS_OF, settings=settings, storage_block=store.block)
    return KilledUpload(
        store, previous, seen["folder"], seen["killed_after"], error, state, failing_run_seconds,
        latest_after_restart, next_result, json.loads(store.read("latest.json")),
    )  # fmt: skip


def test_killed_upload_fails_the_flow_with_a_publish_error(killed_upload: KilledUpload) -> None:
    assert killed_upload.state.is_failed()
    assert isinstance(killed_upload.error, PublishError)
    assert killed_upload.killed_after == "actuals.csv"


def test_killed_upload_gives_up_within_the_storage_time_limits(killed_upload: KilledUpload) -> None:
    # 2 attempts x 2 s per write, 2 s for the cleanup, ~5 s waiting for Azurite to persist, plus the
    # flow itself; the SDK's own retries against a dead endpoint would take ~85 s per call.
    assert killed_upload.failing_run_seconds < 60


def test_killed_upload_leaves_latest_json_on_the_previous_complete_run(killed_upload: KilledUpload) -> None:
    assert killed_upload.latest_after_restart["run_folder"] == killed_upload.previous
    assert manifest_matches_blobs(killed_upload.store, killed_upload.previous)


def test_killed_upload_leaves_a_partial_folder_without_manifest(killed_upload: KilledUpload) -> None:
    # The first file landed and survived the crash; the cleanup could not reach the dead Azurite.
    assert sorted(killed_upload.store.blobs(f"{killed_upload.failed_folder}/")) == [
        f"{killed_upload.failed_folder}/actuals.csv"
    ]


def test_killed_upload_error_says_which_file_failed_and_where_latest_points(killed_upload: KilledUpload) -> None:
    message = str(killed_upload.error)
    assert f"Publishing {killed_upload.failed_folder} to Azure Blob container '{killed_upload.store.container}'" in message
    assert "failed at predicted.csv (2/5)" in message
    assert "no answer within 2 s" in message
    assert f"latest.json was not changed and still points at {killed_upload.previous}" in message
    assert f"could not be removed ({killed_upload.failed_folder}/actuals.csv" in message
    assert "the folder has no manifest.json, so it is not a complete run" in message
    assert "Re-run the flow" in message
    assert "AccountKey" not in message
    assert killed_upload.failed_folder in (killed_upload.state.message or "")


def test_next_run_after_restart_publishes_and_moves_latest(killed_upload: KilledUpload) -> None:
    folder = killed_upload.next_result["run_folder"]
    assert folder not in (killed_upload.previous, killed_upload.failed_folder)
    assert killed_upload.latest_after_next["run_folder"] == folder
    assert manifest_matches_blobs(killed_upload.store, folder)


def test_upload_retries_through_a_short_outage_and_completes(
    own_azurite: Azurite, champion_store: Callable[..., Store], caplog: pytest.LogCaptureFixture
) -> None:
    own_azurite.start()
    store = champion_store("outage", azurite=own_azurite)
    block = resolve_storage(store.block, "unused")
    patient = StorageSettings(attempts=4, timeout_seconds=3, retry_delay_seconds=0.5)
    files = {"actuals.csv": b"date,value\n2026-11-23,1.0\n", "predicted.csv": b"date,value\n2026-11-23,2.0\n"}
    restarted = threading.Thread(target=lambda: (time.sleep(1), own_azurite.restart()))

    def outage_after_first_file(name: str, index: int, total: int) -> None:
        if index == 1:
            own_azurite.wait_persisted()
            own_azurite.kill()
            restarted.start()  # back within a few seconds, while predicted.csv is being retried

    try:
        published = publish_run(
            block, "runs/20261123_120000", files, build_manifest(files, {}),
            move_latest=True, policy=patient, on_file=outage_after_first_file,
        )  # fmt: skip
    finally:
        if restarted.is_alive() or restarted.ident is not None:
            restarted.join()
    assert published.folder == "runs/20261123_120000"
    assert any("Writing runs/20261123_120000/predicted.csv failed" in r.getMessage() and "retry 1/3" in r.getMessage() for r in caplog.records)
    assert json.loads(store.read("latest.json"))["run_folder"] == "runs/20261123_120000"
    assert manifest_matches_blobs(store, "runs/20261123_120000")


# ---------------------------------------------------------------- without a flow: publish_run itself


class RefusingWrite:
    """The real Azure block, except that writing `name` fails with a permanent (non-retried) error."""

    def __init__(self, block: Any, name: str) -> None:
        self._block, self._name, self.attempts = block, name, 0

    def write_path(self, path: str, content: bytes, _sync: bool | None = None) -> Any:
        if path.endswith(f"/{self._name}"):
            self.attempts += 1

            async def refuse() -> None:
                raise HttpResponseError(message="This request is not authorized to perform this operation.")

            return refuse()
        return self._block.write_path(path, content, _sync=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._block, name)


FILES = {"actuals.csv": b"date,value\n2026-11-23,1.0\n", "predicted.csv": b"date,value\n2026-11-23,2.0\n"}


def test_failed_publish_removes_the_files_it_already_wrote(champion_store: Callable[..., Store]) -> None:
    store = champion_store("cleanup")
    block = resolve_storage(store.block, "unused")
    publish_run(block, "runs/20261123_100000", FILES, build_manifest(FILES, {}), move_latest=True, policy=FAST_FAILING)
    before = store.listing()
    refusing = RefusingWrite(block, "predicted.csv")

    with pytest.raises(PublishError) as raised:
        publish_run(refusing, "runs/20261123_110000", FILES, build_manifest(FILES, {}), move_latest=True, policy=FAST_FAILING)

    assert store.listing() == before  # actuals.csv of the failed run was removed again
    assert refusing.attempts == 1  # a refusal is not retried
    message = str(raised.value)
    assert "failed at predicted.csv (2/3)" in message
    assert "still points at runs/20261123_100000" in message
    assert "the files already written were removed" in message


def test_publish_refuses_to_overwrite_a_complete_run_folder(champion_store: Callable[..., Store]) -> None:
    store = champion_store("overwrite")
    block = resolve_storage(store.block, "unused")
    publish_run(block, "runs/20261123_100000", FILES, build_manifest(FILES, {}), move_latest=True, policy=FAST_FAILING)
    before = store.listing()
    other = {name: content + b"changed\n" for name, content in FILES.items()}

    with pytest.raises(PublishError, match=re.escape("runs/20261123_100000 already holds a complete run")):
        publish_run(block, "runs/20261123_100000", other, build_manifest(other, {}), move_latest=True, policy=FAST_FAILING)

    assert store.listing() == before

"""Run folders that never became complete are removed once old, on Azurite and on a local folder.

A run killed (or cut off from its storage) before its manifest.json leaves its claim.json and
whatever files it wrote; its own clean-up is best effort. The next run that publishes removes such
folders once `storage.incomplete_folder_days` old, and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem
from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer

from tasks.adapters.blob_store import list_paths, write_bytes
from tasks.adapters.run_store import remove_incomplete_folders
from tests.azure.stores import unique_name
from tests.harness.azurite import Azurite

TIMEOUT = 10.0
CUT_OFF = datetime(2026, 11, 27, tzinfo=UTC)  # folders named before it are old enough
FILES = [
    "latest.json",
    "models/champion.json",
    "runs/20261101_120000/claim.json",  # complete: kept
    "runs/20261101_120000/actuals.csv",
    "runs/20261101_120000/manifest.json",
    "runs/20261102_120000/claim.json",  # killed while publishing: removed
    "runs/20261102_120000/actuals.csv",
    "runs/20261103_080000/actuals.csv",  # its run removed its claim but not this file: removed
    "runs/20261126_235959/claim.json",  # killed, the last second before the cut-off: removed
    "runs/20261127_000000/claim.json",  # killed, but not old enough: kept
    "runs/20261130_120000/claim.json",  # a run still writing: kept
    "runs/20261130_120000/actuals.csv",
    "runs/20260901_120000/claim.json",  # before the two months looked at: kept
    "runs/by-hand/notes.csv",  # not a run folder: kept
]
REMOVED = ["runs/20261102_120000", "runs/20261103_080000", "runs/20261126_235959"]


def fill(storage: WritableFileSystem, paths: list[str]) -> None:
    for path in paths:
        write_bytes(storage, path, b"x", timeout=TIMEOUT)


def test_only_old_folders_without_a_manifest_are_removed(storage: WritableFileSystem) -> None:
    fill(storage, FILES)
    result = remove_incomplete_folders(storage, older_than=CUT_OFF, timeout=TIMEOUT)
    assert result is not None and result.removed == REMOVED and result.left == []
    kept = [path for path in FILES if not path.startswith(tuple(f"{folder}/" for folder in REMOVED))]
    assert list_paths(storage, "", timeout=TIMEOUT) == sorted(kept)
    if isinstance(storage, LocalFileSystem):  # the emptied folders go too
        assert not any(Path(str(storage.basepath), folder).exists() for folder in REMOVED)
    again = remove_incomplete_folders(storage, older_than=CUT_OFF, timeout=TIMEOUT)
    assert again is not None and again.removed == [] and again.left == []


def test_a_container_with_a_base_folder_lists_and_removes_inside_it(live_azurite: Azurite) -> None:
    container = unique_name("based")
    live_azurite.create_container(container)
    credentials = AzureBlobStorageCredentials(connection_string=live_azurite.connection_string)
    outside = AzureBlobStorageContainer(container_name=container, credentials=credentials)
    inside = AzureBlobStorageContainer(container_name=container, credentials=credentials, base_folder="prod")
    fill(outside, ["runs/20261102_120000/claim.json"])  # another tenant's folder, outside the base
    fill(inside, ["runs/20261102_120000/claim.json", "runs/20261102_120000/actuals.csv"])
    assert list_paths(inside, "runs/2026", timeout=TIMEOUT) == [
        "runs/20261102_120000/actuals.csv",
        "runs/20261102_120000/claim.json",
    ]
    result = remove_incomplete_folders(inside, older_than=CUT_OFF, timeout=TIMEOUT)
    assert result is not None and result.removed == ["runs/20261102_120000"]
    assert list_paths(outside, "", timeout=TIMEOUT) == ["runs/20261102_120000/claim.json"]


def test_a_block_that_cannot_list_is_left_alone() -> None:
    remote = RemoteFileSystem(basepath=f"memory://{unique_name('remote')}")
    remote.write_path("runs/20261102_120000/claim.json", b"x")
    assert list_paths(remote, "runs/", timeout=TIMEOUT) is None
    assert remove_incomplete_folders(remote, older_than=CUT_OFF, timeout=TIMEOUT) is None
    assert remote.read_path("runs/20261102_120000/claim.json") == b"x"


def test_the_months_looked_at_run_across_a_new_year(storage: WritableFileSystem) -> None:
    fill(storage, ["runs/20261105_120000/claim.json", "runs/20261231_235959/claim.json", "runs/20270102_000000/a.csv"])
    result = remove_incomplete_folders(storage, older_than=datetime(2027, 1, 5, tzinfo=UTC), timeout=TIMEOUT)
    assert result is not None and result.removed == [
        "runs/20261105_120000",
        "runs/20261231_235959",
        "runs/20270102_000000",
    ]

"""Publishing and the model store on a local folder: order, atomicity from the reader's view, integrity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem

from tasks.errors import ModelIntegrityError, ModelStoreError, PublishError, StorageError
from tasks.settings import StorageSettings
from tasks.storage import (
    StorageNotFound,
    build_manifest,
    load_model_files,
    promote_champion,
    publish_run,
    read_bytes,
    read_champion_pointer,
    resolve_storage,
    save_model_version,
    sha256_hex,
)

POLICY = StorageSettings(attempts=2, timeout_seconds=5, retry_delay_seconds=0.01)
FILES = {"actuals.csv": b"date,series_id\n", "forecasted_data.csv": b"date\n2026-11-23\n"}


def local(tmp_path: Path) -> LocalFileSystem:
    return resolve_storage(None, str(tmp_path))


class FailingStorage(LocalFileSystem):
    """A local folder whose n-th write raises a permanent error (a unit test of our own logic)."""

    _block_type_slug = "failing-test-storage"  # must not replace LocalFileSystem in Prefect's registry
    fail_at: int = 2
    writes: int = 0

    def write_path(self, path: str, content: bytes) -> str:  # type: ignore[override]
        self.writes += 1
        if self.writes == self.fail_at:
            raise PermissionError(f"simulated failure writing {path}")
        return super().write_path(path, content)


def publish(storage: LocalFileSystem, folder: str, *, move_latest: bool = True) -> object:
    manifest = build_manifest(FILES, {"actuals.csv": 0, "forecasted_data.csv": 1}, kind="daily")
    return publish_run(storage, folder, FILES, manifest, move_latest=move_latest, policy=POLICY)


def test_run_folder_holds_every_file_and_a_manifest_with_their_hashes(tmp_path: Path) -> None:
    publish(local(tmp_path), "runs/20261123_143000")
    folder = tmp_path / "runs/20261123_143000"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_folder"] == "runs/20261123_143000"
    for entry in manifest["files"]:
        assert sha256_hex((folder / entry["name"]).read_bytes()) == entry["sha256"]
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143000"


def test_latest_json_stays_when_a_publish_fails_and_the_partial_folder_is_removed(tmp_path: Path) -> None:
    publish(local(tmp_path), "runs/20261123_143000")
    failing = FailingStorage(basepath=str(tmp_path))
    with pytest.raises(PublishError) as caught:
        publish(failing, "runs/20261124_143000")
    message = str(caught.value)
    assert "failed at forecasted_data.csv (2/3)" in message
    assert "latest.json was not changed and still points at runs/20261123_143000" in message
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143000"
    assert not list((tmp_path / "runs/20261124_143000").glob("*"))


def test_a_complete_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    storage = local(tmp_path)
    publish(storage, "runs/20261123_143000")
    with pytest.raises(PublishError, match="already holds a complete run"):
        publish(storage, "runs/20261123_143000")


def test_a_run_can_be_published_without_moving_latest(tmp_path: Path) -> None:
    storage = local(tmp_path)
    publish(storage, "runs/20261123_143000")
    publish(storage, "runs/20261123_150000", move_latest=False)
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143000"


def test_reading_a_missing_path_is_a_clear_not_found(tmp_path: Path) -> None:
    with pytest.raises(StorageNotFound, match="nothing.json"):
        read_bytes(local(tmp_path), "nothing.json", policy=POLICY)
    assert read_champion_pointer(local(tmp_path), policy=POLICY) is None


def stored_model(tmp_path: Path) -> LocalFileSystem:
    storage = local(tmp_path)
    files = {"lstm_model.keras": b"PK-model-bytes", "scaler.json": b"{}"}
    card = {"version": "v1", "files": {name: sha256_hex(content) for name, content in files.items()}}
    card_sha = save_model_version(storage, "v1", files, card, policy=POLICY)
    promote_champion(
        storage, "v1", card_sha, promoted_utc="2026-11-23T00:00:00+00:00", reason="test",
        training_run_folder="runs/20261123_000000", policy=POLICY,
    )
    return storage


def test_a_saved_model_loads_with_its_hashes_checked(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    pointer = read_champion_pointer(storage, policy=POLICY)
    files, card = load_model_files(storage, pointer["version"], card_sha256=pointer["model_card_sha256"], policy=POLICY)
    assert files["lstm_model.keras"] == b"PK-model-bytes" and card["version"] == "v1"


def test_a_replaced_model_file_fails_the_hash_check(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    (tmp_path / "models/v1/lstm_model.keras").write_bytes(b"PK-other-bytes")
    with pytest.raises(ModelIntegrityError, match="lstm_model.keras has sha256"):
        load_model_files(storage, "v1", card_sha256=None, policy=POLICY)


def test_an_edited_model_card_fails_the_champion_hash_check(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    pointer = read_champion_pointer(storage, policy=POLICY)
    (tmp_path / "models/v1/model_card.json").write_text('{"version": "v1", "files": {}}')
    with pytest.raises(ModelIntegrityError, match="does not match the sha256 recorded"):
        load_model_files(storage, "v1", card_sha256=pointer["model_card_sha256"], policy=POLICY)


def test_a_missing_model_file_is_a_model_store_error(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    (tmp_path / "models/v1/scaler.json").unlink()
    with pytest.raises(ModelStoreError, match="incomplete"):
        load_model_files(storage, "v1", card_sha256=None, policy=POLICY)


def test_a_storage_block_name_needs_its_type() -> None:
    with pytest.raises(StorageError, match="azure-blob-storage-container/forecast"):
        resolve_storage("forecast", "data")


def test_a_second_run_in_the_same_second_gets_the_next_folder(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from tasks.storage import free_run_folder

    storage = local(tmp_path)
    created = datetime(2026, 11, 23, 14, 30, 0, tzinfo=timezone.utc)
    assert free_run_folder(storage, created, policy=POLICY) == "runs/20261123_143000"
    publish(storage, "runs/20261123_143000")
    assert free_run_folder(storage, created, policy=POLICY) == "runs/20261123_143001"

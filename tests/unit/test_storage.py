"""Publishing and the model store on a local folder: order, atomicity from the reader's view, integrity."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem

from tasks.adapters import blob_store
from tasks.adapters.blob_store import read_bytes, resolve_storage, write_bytes
from tasks.adapters.model_store import load_model_files, promote_champion, read_champion_pointer, save_model_version
from tasks.adapters.run_store import PublishedRun, claim_run_folder, publish_run
from tasks.core.contracts import RunHeader, RunManifest, sha256_hex
from tasks.core.errors import (
    InvalidStoredFileError,
    ModelIntegrityError,
    ModelStoreError,
    PublishError,
    StorageError,
    StorageNotFoundError,
)
from tests.unit.test_promotion import card as model_card

TIMEOUT = 5.0
FILES = {"actuals.csv": b"date,series_id\n", "forecasted_data.csv": b"date\n2026-11-23\n"}
CREATED = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


def local(tmp_path: Path) -> LocalFileSystem:
    return resolve_storage(None, str(tmp_path))


def fail_the_nth_local_write(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The n-th file written to a local folder from now raises a permanent error (a unit test of our own logic)."""
    writes = {"count": 0}
    real = blob_store._replace_local_file

    def replace(target: Path, content: bytes) -> None:
        writes["count"] += 1
        if writes["count"] == n:
            raise PermissionError(f"simulated failure writing {target.name}")
        real(target, content)

    monkeypatch.setattr(blob_store, "_replace_local_file", replace)


def manifest_for(folder: str, *, as_of: date = date(2026, 11, 23), created: datetime = CREATED) -> RunManifest:
    header = RunHeader(
        kind="daily",
        created_utc=created,
        as_of=as_of,
        data_source="demo",
        demo_data=True,
        data_start=date(2026, 1, 2),
        data_through=date(2026, 11, 23),
        model_version="v1",
        model_training_run=None,
        series=("SP500",),
        code_version="test",
        flow_run_id=None,
        run_folder=folder,
    )
    return RunManifest.for_files(header, FILES, {"actuals.csv": 0, "forecasted_data.csv": 1})


def publish(storage: LocalFileSystem, folder: str, *, move_latest: bool = True) -> object:
    return publish_run(storage, FILES, manifest_for(folder), move_latest=move_latest, timeout=TIMEOUT)


def test_run_folder_holds_every_file_and_a_manifest_with_their_hashes(tmp_path: Path) -> None:
    publish(local(tmp_path), "runs/20261123_143000")
    folder = tmp_path / "runs/20261123_143000"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_folder"] == "runs/20261123_143000"
    assert {p.name for p in folder.iterdir()} == set(FILES) | {"manifest.json"}
    assert {e["name"]: e["sha256"] for e in manifest["files"]} == {
        name: sha256_hex((folder / name).read_bytes()) for name in FILES
    }
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143000"


def test_latest_json_stays_when_a_publish_fails_and_the_partial_folder_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(local(tmp_path), "runs/20261123_143000")
    fail_the_nth_local_write(monkeypatch, 2)
    with pytest.raises(PublishError) as caught:
        publish(local(tmp_path), "runs/20261124_143000")
    message = str(caught.value)
    assert "failed at forecasted_data.csv (2/3)" in message
    assert "latest.json was not changed and still points at runs/20261123_143000" in message
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143000"
    assert not list((tmp_path / "runs/20261124_143000").glob("*"))


def test_a_complete_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    storage = local(tmp_path)
    publish(storage, "runs/20261123_143000")
    other = RunManifest.for_files(manifest_for("runs/20261123_143000"), {"actuals.csv": b"other"}, {"actuals.csv": 0})
    with pytest.raises(PublishError, match="already holds a complete run"):
        publish_run(storage, {"actuals.csv": b"other"}, other, move_latest=True, timeout=TIMEOUT)


def test_a_retried_publish_of_the_same_run_only_moves_latest(tmp_path: Path) -> None:
    storage = local(tmp_path)
    publish(storage, "runs/20261123_143000", move_latest=False)  # as if latest.json had failed
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs/20261123_143000").iterdir()}
    publish(storage, "runs/20261123_143000")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs/20261123_143000").iterdir()} == written
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143000"


@pytest.mark.parametrize(
    ("as_of", "started", "moves"),
    [
        (date(2026, 11, 24), timedelta(hours=-20), True),  # the next day's run
        (date(2026, 11, 23), timedelta(minutes=30), True),  # a re-run of the same day
        (date(2025, 7, 8), timedelta(hours=2), False),  # a replay of a past day, started later
        (date(2026, 11, 23), timedelta(minutes=-5), False),  # an attempt overtaken by a later run of the day
    ],
)
def test_latest_json_only_moves_to_a_newer_daily_run(
    tmp_path: Path, as_of: date, started: timedelta, moves: bool
) -> None:
    storage = local(tmp_path)
    publish(storage, "runs/20261123_143000")
    second = manifest_for("runs/20261123_163000", as_of=as_of, created=CREATED + started)
    published = publish_run(storage, FILES, second, move_latest=True, timeout=TIMEOUT)
    assert isinstance(published, PublishedRun) and published.moved_latest is moves
    assert (tmp_path / "runs/20261123_163000/manifest.json").exists()  # published either way
    expected = "runs/20261123_163000" if moves else "runs/20261123_143000"
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == expected
    assert published.latest is not None and published.latest.run_folder == expected


def test_a_run_can_be_published_without_moving_latest(tmp_path: Path) -> None:
    storage = local(tmp_path)
    publish(storage, "runs/20261123_143000")
    publish(storage, "runs/20261123_150000", move_latest=False)
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143000"


def test_reading_a_missing_path_is_a_clear_not_found(tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError, match="nothing.json"):
        read_bytes(local(tmp_path), "nothing.json", timeout=TIMEOUT)
    assert read_champion_pointer(local(tmp_path), timeout=TIMEOUT) is None


def stored_model(tmp_path: Path) -> LocalFileSystem:
    storage = local(tmp_path)
    files = {"lstm_model.keras": b"PK-model-bytes", "scaler.json": b"{}"}
    card = model_card(["SP500"]).model_copy(
        update={"files": {name: sha256_hex(content) for name, content in files.items()}}
    )
    card_sha = save_model_version(storage, card, files, timeout=TIMEOUT)
    promote_champion(storage, card, card_sha, replaces=None, promoted_utc=CREATED, timeout=TIMEOUT)
    return storage


def test_a_saved_model_loads_with_its_hashes_checked(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    pointer = read_champion_pointer(storage, timeout=TIMEOUT)
    assert pointer is not None
    files, card = load_model_files(storage, pointer.version, card_sha256=pointer.model_card_sha256, timeout=TIMEOUT)
    assert files["lstm_model.keras"] == b"PK-model-bytes" and card.version == "v1"


def test_a_replaced_model_file_fails_the_hash_check(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    (tmp_path / "models/v1/lstm_model.keras").write_bytes(b"PK-other-bytes")
    with pytest.raises(ModelIntegrityError, match="lstm_model.keras has sha256"):
        load_model_files(storage, "v1", card_sha256=None, timeout=TIMEOUT)


def test_an_edited_model_card_fails_the_champion_hash_check(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    pointer = read_champion_pointer(storage, timeout=TIMEOUT)
    assert pointer is not None
    (tmp_path / "models/v1/model_card.json").write_text('{"version": "v1", "files": {}}')
    with pytest.raises(ModelIntegrityError, match="does not match the sha256 recorded"):
        load_model_files(storage, "v1", card_sha256=pointer.model_card_sha256, timeout=TIMEOUT)


def test_a_card_this_version_cannot_read_is_a_model_store_error(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    (tmp_path / "models/v1/model_card.json").write_text('{"format": "market-forecast-model-card/9", "version": "v1"}')
    with pytest.raises(ModelStoreError, match="not a model card this version can read"):
        load_model_files(storage, "v1", card_sha256=None, timeout=TIMEOUT)


def test_a_missing_model_file_is_a_model_store_error(tmp_path: Path) -> None:
    storage = stored_model(tmp_path)
    (tmp_path / "models/v1/scaler.json").unlink()
    with pytest.raises(ModelStoreError, match="incomplete"):
        load_model_files(storage, "v1", card_sha256=None, timeout=TIMEOUT)


def test_a_storage_block_name_needs_its_type() -> None:
    with pytest.raises(StorageError, match="azure-blob-storage-container/forecast"):
        resolve_storage("forecast", "data")


def test_an_output_dir_that_is_a_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(StorageError, match=r"output_dir .*/afile is a file, not a folder: give a folder"):
        resolve_storage(None, str(tmp_path / "afile"))
    assert resolve_storage(None, str(tmp_path / "new")).basepath == str(tmp_path / "new")  # created when written


def test_a_second_run_in_the_same_second_gets_the_next_folder(tmp_path: Path) -> None:
    storage = local(tmp_path)
    assert claim_run_folder(storage, CREATED, flow_run_id=None, timeout=TIMEOUT) == "runs/20261123_143000"
    assert claim_run_folder(storage, CREATED, flow_run_id=None, timeout=TIMEOUT) == "runs/20261123_143001"


def test_a_complete_folder_from_before_claims_is_never_claimed(tmp_path: Path) -> None:
    storage = local(tmp_path)
    publish(storage, "runs/20261123_143000")  # a manifest, no claim.json
    assert claim_run_folder(storage, CREATED, flow_run_id=None, timeout=TIMEOUT) == "runs/20261123_143001"
    assert not (tmp_path / "runs/20261123_143000/claim.json").exists()


@pytest.mark.parametrize(
    "order", [("runs/20261123_143000", "runs/20261123_143001"), ("runs/20261123_143001", "runs/20261123_143000")]
)
def test_of_two_runs_started_in_the_same_second_latest_ends_on_the_later_folder(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    storage = local(tmp_path)
    moved = [
        publish_run(storage, FILES, manifest_for(folder), move_latest=True, timeout=TIMEOUT).moved_latest
        for folder in order
    ]
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261123_143001"
    assert moved == [True, order[1] == "runs/20261123_143001"]


def test_a_reader_never_sees_a_half_written_local_file(tmp_path: Path) -> None:
    # champion.json rewritten while another thread reads it, as a daily run reads the champion
    # while a training run promotes one: every read is a whole pointer, the old one or the new.
    storage = stored_model(tmp_path)
    pointer = tmp_path / "models" / "champion.json"
    versions = [pointer.read_bytes(), pointer.read_bytes().replace(b'"v1"', b'"v1-rewritten"')]
    stop = threading.Event()
    problems: list[str] = []

    def read_continuously() -> None:
        while not stop.is_set():
            try:
                read_champion_pointer(storage, timeout=TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                problems.append(repr(exc)[:200])

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for index in range(400):
            write_bytes(storage, "models/champion.json", versions[index % 2], timeout=TIMEOUT)
    finally:
        stop.set()
        reader.join()
    assert problems == []
    assert [p.name for p in pointer.parent.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_a_broken_latest_json_is_replaced_by_the_next_complete_run(tmp_path: Path) -> None:
    publish(local(tmp_path), "runs/20261123_143000")
    (tmp_path / "latest.json").write_bytes(b'{"format": "market-forecast-latest/1", "run_fol')  # cut short
    published = publish(local(tmp_path), "runs/20261124_143000")
    assert json.loads((tmp_path / "latest.json").read_text())["run_folder"] == "runs/20261124_143000"
    assert published.replaced_unreadable_latest  # the run's log says so
    assert not publish(local(tmp_path), "runs/20261125_143000").replaced_unreadable_latest


def test_a_broken_champion_json_is_never_taken_for_no_champion(tmp_path: Path) -> None:
    stored_model(tmp_path)
    (tmp_path / "models" / "champion.json").write_bytes(b"")
    with pytest.raises(InvalidStoredFileError) as caught:
        read_champion_pointer(local(tmp_path), timeout=TIMEOUT)
    message = str(caught.value)
    assert "models/champion.json in local folder" in message and "is not a valid ChampionPointer (0 bytes" in message
    assert "delete it to let the next training run promote a new champion" in message

"""A run claims its folder once, even through a retry, and releases it when it fails before it is complete."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect import flow
from prefect.filesystems import WritableFileSystem

from tasks.adapters import run_store
from tasks.adapters.blob_store import resolve_storage
from tasks.core.errors import StorageError, StorageTransientError
from tasks.core.settings import Settings
from tasks.stages import publish
from tasks.stages.publish import claimed_run_folder
from tests.harness.flow_runs import flow_run_logs

CREATED = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
FOLDER = "runs/20261123_143000"


@flow
def fails_inside_its_folder(storage: WritableFileSystem) -> None:
    with claimed_run_folder(storage, CREATED, Settings()):
        raise RuntimeError("the run's own error")


def failed_run_logs(storage: WritableFileSystem) -> list[str]:
    state = fails_inside_its_folder(storage, return_state=True)
    assert state.is_failed() and "the run's own error" in state.message  # the run's error, whatever the release did
    return flow_run_logs(state.state_details.flow_run_id)


def test_a_failed_run_removes_its_claim(prefect_harness: None, tmp_path: Path) -> None:
    logs = failed_run_logs(resolve_storage(None, str(tmp_path)))
    assert f"{FOLDER} released: the run failed before it was complete" in logs
    assert not (tmp_path / FOLDER).exists()


def test_a_claim_that_cannot_be_removed_is_a_warning_saying_what_removes_it(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_store, "delete_paths", lambda storage, paths, timeout: paths)  # the storage went away
    logs = failed_run_logs(resolve_storage(None, str(tmp_path)))
    assert any(
        m.startswith(f"{FOLDER}/claim.json could not be removed from local folder")
        and "a later run removes the folder once 7 days old (in an Azure container or a local folder" in m
        for m in logs
    ), logs
    assert (tmp_path / FOLDER / "claim.json").exists()


def test_a_folder_that_cannot_be_checked_is_not_called_incomplete(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(storage: WritableFileSystem, path: str, *, timeout: float) -> bytes | None:
        raise StorageError(f"Reading {path} failed: connection refused")

    storage = resolve_storage(None, str(tmp_path))
    monkeypatch.setattr(run_store, "read_optional", unreachable)
    monkeypatch.setattr(publish, "claim_run_folder", lambda *args, **kwargs: FOLDER)  # claimed before it went
    logs = failed_run_logs(storage)
    warning = next(m for m in logs if m.startswith(f"Could not check whether {FOLDER} is complete"))
    assert "connection refused" in warning and "holds no complete run" not in warning


@flow
def claims_its_folder(storage: WritableFileSystem, settings: Settings) -> str:
    with claimed_run_folder(storage, CREATED, settings) as folder:
        return folder


def test_a_retried_claim_keeps_the_folder_its_lost_first_attempt_claimed(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = resolve_storage(None, str(tmp_path))
    other = tmp_path / FOLDER / "claim.json"  # another run holds this second's folder
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    real = run_store.create_bytes
    attempts: list[str] = []

    def lands_but_the_answer_is_lost(storage: WritableFileSystem, path: str, content: bytes, **kwargs: float) -> object:
        result = real(storage, path, content, **kwargs)
        attempts.append(path)
        if len(attempts) == 2:  # the first attempt's claim of the next second landed
            other.unlink()  # meanwhile the other run failed and released its folder
            raise StorageTransientError(f"Writing {path} failed: no answer within 60 s")
        return result

    monkeypatch.setattr(run_store, "create_bytes", lands_but_the_answer_is_lost)
    settings = Settings.model_validate({"storage": {"retry_delay_seconds": 0}})
    folder = claims_its_folder(storage, settings)
    assert folder == "runs/20261123_143001"
    assert not other.exists()  # the freed second was not claimed as well

"""Run store adapter: publish a run folder completely, then move latest.json.

Layout in the storage block (what Power BI reads):

    runs/YYYYMMDD_HHMMSS/<csv files>, manifest.json   one folder per run (UTC time of the run)
    latest.json                                        the complete daily run with the latest as_of

A run folder is complete when its manifest.json exists: the manifest is written after every data
file and latest.json after the manifest, so a reader following latest.json never sees a half run.

Runs sharing one storage (two deployments, a manual run beside a scheduled one) do not get in each
other's way: a run claims its folder by creating its claim.json where none exists, and moves
latest.json with a write that fails if another run moved it since it was read (then it reads and
decides again). Both go through `blob_store.update_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from prefect.filesystems import WritableFileSystem
from pydantic import ValidationError

from tasks.adapters.blob_store import (
    create_bytes,
    delete_paths,
    describe_storage,
    list_paths,
    read_optional,
    update_bytes,
    write_bytes,
)
from tasks.core.contracts import LatestPointer, RunClaim, RunManifest
from tasks.core.errors import PublishError, StorageError

LATEST = "latest.json"
MANIFEST = "manifest.json"
CLAIM = "claim.json"
RUNS = "runs"
# How far before its cut-off `remove_incomplete_folders` looks for folders (one listing per month).
INCOMPLETE_LOOK_BACK = timedelta(days=62)


@dataclass(frozen=True)
class PublishedRun:
    """Where a run was published."""

    folder: str
    manifest: RunManifest
    moved_latest: bool
    location: str
    latest: LatestPointer | None
    """What latest.json points at after the publish (None: nothing, before the first daily run)."""
    replaced_unreadable_latest: bool = False
    """latest.json held something no LatestPointer of this version reads (broken, or a newer format)."""


def run_folder_name(created_utc: datetime) -> str:
    """'runs/YYYYMMDD_HHMMSS' for a UTC datetime."""
    return f"{RUNS}/{created_utc:%Y%m%d_%H%M%S}"


def claim_run_folder(
    storage: WritableFileSystem,
    created_utc: datetime,
    *,
    flow_run_id: str | None,
    timeout: float,
    retried: bool = False,
) -> str:
    """Claim the run folder for `created_utc` (or the next second whose folder is free) and return it.

    A folder is free when it holds no claim.json and no manifest.json (a run published before claims
    existed). The claim is created only where none exists, so two runs never share a folder. A claim
    of this very run (same flow run, same start: a retried claim whose first write landed) is its own.
    `retried`: an earlier attempt of this claim may have landed further on (a folder before it has
    been released since), so this run's own claim is looked for in the minute first.
    """
    folders = [run_folder_name(created_utc + timedelta(seconds=extra)) for extra in range(60)]

    def claim(folder: str) -> bytes:
        return RunClaim(run_folder=folder, created_utc=created_utc, flow_run_id=flow_run_id).to_bytes()

    if retried and flow_run_id is not None:
        for folder in folders:
            if read_optional(storage, f"{folder}/{CLAIM}", timeout=timeout) == claim(folder):
                return folder
    for folder in folders:
        if read_optional(storage, f"{folder}/{MANIFEST}", timeout=timeout) is not None:
            continue
        content = claim(folder)
        now, claimed = create_bytes(storage, f"{folder}/{CLAIM}", content, timeout=timeout)
        if claimed or (flow_run_id is not None and now == content):
            return folder
    raise PublishError(
        f"Every run folder from {run_folder_name(created_utc)} on for a minute is claimed by another run in "
        f"{describe_storage(storage)}. Re-run in a minute."
    )


Release = Literal["released", "complete", "left"]
"""What `release_run_folder` did: removed the claim; kept it (the folder is complete); could not remove it."""


def release_run_folder(storage: WritableFileSystem, folder: str, *, timeout: float) -> Release:
    """Remove the claim of a run that failed before its folder was complete.

    A complete folder (it holds manifest.json) keeps its claim. A claim that cannot be removed ("left":
    the storage is down, or a block without delete) is removed with its folder by a later run
    (`remove_incomplete_folders`), where the block can list its files.

    Raises:
        StorageError: the storage cannot say whether the folder is complete.
    """
    if read_optional(storage, f"{folder}/{MANIFEST}", timeout=timeout) is not None:
        return "complete"
    return "left" if delete_paths(storage, [f"{folder}/{CLAIM}"], timeout=timeout) else "released"


@dataclass(frozen=True)
class RemovedFolders:
    """What `remove_incomplete_folders` did."""

    removed: list[str]
    left: list[str]
    """Incomplete folders some file of which could not be removed (the next run tries again)."""


def remove_incomplete_folders(
    storage: WritableFileSystem, *, older_than: datetime, timeout: float
) -> RemovedFolders | None:
    """Remove the run folders named before `older_than` that never became complete (no manifest.json).

    Such a folder is what a run leaves when it was killed, or lost its storage, before its manifest
    was written (its own clean-up is best effort): its claim.json and whatever files it wrote. No
    reader uses it. Folders named in the `INCOMPLETE_LOOK_BACK` before `older_than` are looked at
    (one listing per month); None when the block cannot list its files (only local folders and
    Azure containers can).

    Raises:
        StorageError: the folders could not be listed.
    """
    first = older_than - INCOMPLETE_LOOK_BACK
    files: dict[str, list[str]] = {}
    for month in _months(first, older_than):
        listed = list_paths(storage, f"{RUNS}/{month}", timeout=timeout)
        if listed is None:
            return None
        for path in listed:
            folder = "/".join(path.split("/")[:2])
            files.setdefault(folder, []).append(path)
    removed: list[str] = []
    left: list[str] = []
    for folder, paths in sorted(files.items()):
        named = _folder_time(folder)
        if named is None or not first <= named < older_than or f"{folder}/{MANIFEST}" in paths:
            continue
        # The claim last: a folder left half removed still says which run held it.
        ordered = sorted(paths, key=lambda path: path == f"{folder}/{CLAIM}")
        (left if delete_paths(storage, ordered, timeout=timeout) else removed).append(folder)
    return RemovedFolders(removed, left)


def _months(first: datetime, last: datetime) -> list[str]:
    """'YYYYMM' of every month from `first`'s to `last`'s."""
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _folder_time(folder: str) -> datetime | None:
    """When the run of runs/YYYYMMDD_HHMMSS started (UTC); None for any other name."""
    try:
        return datetime.strptime(folder, f"{RUNS}/%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def publish_run(
    storage: WritableFileSystem,
    files: Mapping[str, bytes],
    manifest: RunManifest,
    *,
    move_latest: bool,
    timeout: float,
    on_file: Callable[[str, int, int], None] | None = None,
) -> PublishedRun:
    """Write a run folder completely, then (optionally) point latest.json at it.

    latest.json only moves forward: a run whose as_of is older than the one latest.json points at
    (a replayed past day), or of the same as_of but started earlier (an attempt overtaken by a
    re-run), is published without moving it.

    Order: every data file, then manifest.json (the folder is complete from here), then latest.json.
    Idempotent: when the folder already holds this very manifest (an earlier attempt of the same
    publish failed at latest.json), only latest.json is written.
    If any write fails, latest.json is left as it was, the files already written are removed where
    possible, and PublishError says what was written, what was left and where latest.json points
    (raised from the storage error, so a transient cause makes the publish stage retry).

    Args:
        storage: the storage block.
        files: file name -> bytes.
        manifest: the run's manifest; its run_folder (e.g. "runs/20261123_143012") must not hold
            a manifest yet.
        move_latest: whether this run may become what latest.json points at (daily runs).
        timeout: time limit of each read and write.
        on_file: progress callback (name, index from 1, total).
    """
    folder = manifest.run_folder
    manifest_bytes = manifest.to_bytes()
    try:
        existing = read_optional(storage, f"{folder}/{MANIFEST}", timeout=timeout)
        latest = _valid_latest(read_optional(storage, LATEST, timeout=timeout))
    except StorageError as exc:
        raise PublishError(
            f"Publishing {folder} to {describe_storage(storage)} failed before any file was written: {exc}. "
            "latest.json was not changed. Re-run the flow when the storage is reachable."
        ) from exc
    if existing is not None and existing != manifest_bytes:
        raise PublishError(f"{folder} already holds a complete run; refusing to overwrite it.")
    previous = latest.run_folder if latest else None
    # The same manifest: an earlier attempt of this very publish wrote the folder, and only
    # latest.json is left to do.
    ordered = [] if existing is not None else [*files.items(), (MANIFEST, manifest_bytes)]
    written: list[str] = []
    for index, (name, content) in enumerate(ordered, start=1):
        path = f"{folder}/{name}"
        try:
            write_bytes(storage, path, content, timeout=timeout)
        except StorageError as exc:
            left = delete_paths(storage, [*written, path], timeout=timeout)
            cleanup = (
                "the files already written were removed"
                if not left
                else f"{len(left)} partial file(s) could not be removed ({', '.join(left)}); the "
                "folder has no manifest.json, so it is not a complete run"
            )
            raise PublishError(
                f"Publishing {folder} to {describe_storage(storage)} failed at {name} "
                f"({index}/{len(ordered)}): {exc}. latest.json was not changed and still points at "
                f"{previous or 'nothing (no earlier run)'}; {cleanup}. Re-run the flow when the "
                "storage is reachable."
            ) from exc
        written.append(path)
        if on_file is not None:
            on_file(name, index, len(ordered))
    if not move_latest:
        return PublishedRun(folder, manifest, False, describe_storage(storage), latest)
    pointer = LatestPointer.for_run(manifest)
    pointer_bytes = pointer.to_bytes()
    try:
        # Decided on latest.json as it is when written: a run that moved it meanwhile is never undone.
        unreadable = [False]  # of the content last decided on

        def decide(current: bytes | None) -> bytes | None:
            valid = _valid_latest(current)
            unreadable[0] = current is not None and valid is None
            return pointer_bytes if pointer.supersedes(valid) else None

        now, moves = update_bytes(storage, LATEST, decide, timeout=timeout)
    except StorageError as exc:
        raise PublishError(
            f"{folder} was published completely (manifest.json written), but latest.json could "
            f"not be updated and may still point at {previous or 'nothing'}: {exc}. Re-run, or "
            f"point latest.json at {folder} by hand."
        ) from exc
    return PublishedRun(
        folder,
        manifest,
        moves,
        describe_storage(storage),
        pointer if moves else _valid_latest(now),
        replaced_unreadable_latest=moves and unreadable[0],
    )


def _valid_latest(content: bytes | None) -> LatestPointer | None:
    """latest.json's pointer; None when there is none or it is broken (a complete run replaces it)."""
    if content is None:
        return None
    try:
        return LatestPointer.from_bytes(content)
    except ValidationError:
        return None

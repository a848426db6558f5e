"""Storage stage: the only code that reads or writes the model store and the published runs.

Both live in one Prefect `WritableFileSystem`-style block (read_path / write_path): a
`LocalFileSystem` under `data/` by default, prefect-azure's `AzureBlobStorageContainer` in
production. Layout:

    runs/YYYYMMDD_HHMMSS/<csv files>, manifest.json   one folder per run (UTC time of the run)
    latest.json                                        the newest complete champion run
    models/<version>/lstm_model.keras, scaler.json, model_card.json
    models/champion.json                               the version the daily flow uses

A run folder is complete when its manifest.json exists; the manifest is written after every data
file and latest.json after the manifest, so a reader following latest.json never sees a half run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import LocalFileSystem, WritableFileSystem

from tasks.errors import ModelIntegrityError, ModelStoreError, PublishError, StorageError, redact
from tasks.settings import Settings, StorageSettings

LATEST = "latest.json"
CHAMPION = "models/champion.json"
MANIFEST = "manifest.json"
RUNS = "runs"
MODELS = "models"

T = TypeVar("T")
_log = logging.getLogger(__name__)


class StorageNotFound(StorageError):
    """The path does not exist in the storage block."""


def sha256_hex(content: bytes) -> str:
    """Hex sha256 of `content`."""
    return hashlib.sha256(content).hexdigest()


def describe_storage(storage: WritableFileSystem) -> str:
    """Where a storage block points, for logs and summaries (no credentials)."""
    if isinstance(storage, LocalFileSystem):
        return f"local folder {Path(storage.basepath or '.').expanduser().resolve()}"
    container = getattr(storage, "container_name", None)
    if container is not None:
        base = getattr(storage, "base_folder", None)
        return f"Azure Blob container {container!r}" + (f" under {base!r}" if base else "")
    return type(storage).__name__


def resolve_storage(storage_block: str | None, output_dir: str) -> WritableFileSystem:
    """The storage the flows read and write.

    Args:
        storage_block: A saved block as "<block-type-slug>/<name>", e.g.
            "azure-blob-storage-container/market-forecast"; None for a local folder.
        output_dir: The local folder used when storage_block is None.

    Raises:
        StorageError: the block cannot be loaded or cannot read and write files.
    """
    if storage_block is None:
        return LocalFileSystem(basepath=str(Path(output_dir).expanduser().resolve()))
    if "/" not in storage_block:
        raise StorageError(
            f"storage_block {storage_block!r} must name the block type too, as "
            f"'<block-type-slug>/<name>', e.g. 'azure-blob-storage-container/{storage_block}' "
            f"or 'local-file-system/{storage_block}'."
        )
    try:
        block = Block.load(storage_block)
    except ValueError as exc:
        raise StorageError(
            f"Storage block {storage_block!r} could not be loaded: {exc}. Create it with "
            "`python -m blocks setup` or in the Prefect UI, or omit storage_block to use the local "
            "output_dir."
        ) from None
    if not (hasattr(block, "read_path") and hasattr(block, "write_path")):
        raise StorageError(
            f"Block {storage_block!r} is a {type(block).__name__}, which cannot read and write files; "
            "use a LocalFileSystem or an AzureBlobStorageContainer block."
        )
    return block


# ---------------------------------------------------------------- low-level I/O with retries


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (prefect-azure wraps Azure errors in RuntimeError)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _error_code(exc: BaseException) -> str | None:
    return next((code for e in _chain(exc) if (code := getattr(e, "error_code", None))), None)


def _is_transient(exc: BaseException) -> bool:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    for error in _chain(exc):
        if isinstance(error, (ServiceRequestError, ServiceResponseError, ConnectionError, TimeoutError)):
            return True
        if isinstance(error, HttpResponseError) and not isinstance(error, (ServiceRequestError, ServiceResponseError)):
            status = error.status_code or 0
            return status in (408, 429) or status >= 500
    return False


def _is_not_found(exc: BaseException) -> bool:
    # LocalFileSystem raises ValueError("Path ... does not exist."); Azure a BlobNotFound error.
    return _error_code(exc) == "BlobNotFound" or (isinstance(exc, ValueError) and "does not exist" in str(exc))


def _container_hint(storage: WritableFileSystem) -> str:
    name = getattr(storage, "container_name", "?")
    return (
        f"The Azure Blob container {name!r} does not exist. The storage block does not create "
        f"containers: create it once with `az storage container create --name {name} "
        "--connection-string \"$AZURE_STORAGE_CONNECTION_STRING\"`, in the Azure portal "
        "(Storage account > Containers > + Container), or with `python -m blocks setup "
        "--create-container`."
    )


def _call(storage: WritableFileSystem, method: str, *args: Any, timeout: float) -> Any:
    """Call a storage block method with an overall timeout where the block is async underneath.

    Azure's SDK retries a dead endpoint for about 85 s per call on its own; the timeout bounds
    that so our retry policy (and the error message) stay in charge. LocalFileSystem is called as is.
    """
    bound = getattr(storage, method)
    if isinstance(storage, LocalFileSystem):
        return bound(*args)
    import asyncio
    import inspect

    from prefect.utilities.asyncutils import run_coro_as_sync

    try:
        pending = bound(*args, _sync=False)
    except TypeError:  # a block whose methods are plain sync functions
        return bound(*args)
    if not inspect.iscoroutine(pending):
        return pending

    async def bounded() -> Any:
        return await asyncio.wait_for(pending, timeout)

    return run_coro_as_sync(bounded())


def _with_retries(action: Callable[[], T], *, what: str, storage: WritableFileSystem, policy: StorageSettings) -> T:
    delay = policy.retry_delay_seconds
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised typed
            if _error_code(exc) == "ContainerNotFound":
                raise StorageError(f"{what} failed: {_container_hint(storage)}") from None
            if _is_not_found(exc):
                raise StorageNotFound(f"{what}: not found in {describe_storage(storage)}") from None
            if not _is_transient(exc) or attempt == policy.attempts:
                if isinstance(exc, TimeoutError) and not str(exc):  # asyncio.wait_for says nothing
                    detail = f"no answer within {policy.timeout_seconds:g} s (is the storage endpoint reachable?)"
                else:
                    # redact: an Azure error can quote a URL with a SAS signature in it.
                    detail = redact(str(exc).splitlines()[0]) if str(exc) else "no message"
                raise StorageError(
                    f"{what} failed on {describe_storage(storage)} after {attempt} attempt(s): "
                    f"{type(exc).__name__}: {detail}"
                ) from exc
            _log.warning("%s failed (%s), retry %d/%d in %.1fs", what, type(exc).__name__, attempt, policy.attempts - 1, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def write_bytes(storage: WritableFileSystem, path: str, content: bytes, *, policy: StorageSettings) -> None:
    """Write `content` to `path`, retrying transient errors (timeouts, connection errors, 5xx, 429)."""
    _with_retries(
        lambda: _call(storage, "write_path", path, content, timeout=policy.timeout_seconds),
        what=f"Writing {path}",
        storage=storage,
        policy=policy,
    )


def read_bytes(storage: WritableFileSystem, path: str, *, policy: StorageSettings) -> bytes:
    """Read `path`; StorageNotFound if it does not exist."""
    return _with_retries(
        lambda: _call(storage, "read_path", path, timeout=policy.timeout_seconds),
        what=f"Reading {path}",
        storage=storage,
        policy=policy,
    )


def read_json(storage: WritableFileSystem, path: str, *, policy: StorageSettings) -> dict[str, Any] | None:
    """Parsed JSON at `path`, or None if the path does not exist."""
    try:
        return json.loads(read_bytes(storage, path, policy=policy))
    except StorageNotFound:
        return None


def delete_paths(storage: WritableFileSystem, paths: list[str], *, timeout: float | None = None) -> list[str]:
    """Best-effort removal of `paths`; returns the ones that could not be removed.

    A path that does not exist counts as removed (the write that failed may never have landed).

    Args:
        storage: the storage block.
        paths: paths relative to the block.
        timeout: overall time limit in seconds for an Azure container (None = no limit). Against
            an unreachable endpoint the SDK retries each call for about 85 s on its own; without a
            limit a cleanup after a failed upload would add that for every file.
    """
    left: list[str] = []
    if isinstance(storage, LocalFileSystem):
        for path in paths:
            try:
                storage._resolve_path(path).unlink(missing_ok=True)
            except OSError:
                left.append(path)
        return left
    credentials = getattr(storage, "credentials", None)
    container = getattr(storage, "container_name", None)
    if credentials is None or container is None:
        return list(paths)

    import asyncio

    from prefect.utilities.asyncutils import run_coro_as_sync

    removed: set[str] = set()

    async def _delete() -> None:
        async with credentials.get_container_client(container) as client:
            for path in paths:
                try:
                    await client.delete_blob(storage._get_path_relative_to_base_folder(path))
                except Exception as exc:  # noqa: BLE001 - whatever is not removed is reported
                    if _error_code(exc) != "BlobNotFound":
                        continue
                removed.add(path)

    async def _bounded() -> None:
        await asyncio.wait_for(_delete(), timeout)

    try:
        run_coro_as_sync(_bounded())
    except Exception:  # noqa: BLE001 - the storage may be the thing that is down, or too slow
        pass
    return [path for path in paths if path not in removed]


# ---------------------------------------------------------------- publishing runs


@dataclass(frozen=True)
class PublishedRun:
    """Where a run was published."""

    folder: str
    manifest: dict[str, Any]
    moved_latest: bool
    location: str


def run_folder_name(created_utc: Any) -> str:
    """'runs/YYYYMMDD_HHMMSS' for a UTC datetime."""
    return f"{RUNS}/{created_utc:%Y%m%d_%H%M%S}"


def free_run_folder(storage: WritableFileSystem, created_utc: datetime, *, policy: StorageSettings) -> str:
    """The run folder for `created_utc`, or the next free second if a complete run already holds it."""
    for extra in range(60):
        folder = run_folder_name(created_utc + timedelta(seconds=extra))
        if read_json(storage, f"{folder}/{MANIFEST}", policy=policy) is None:
            return folder
    raise PublishError(f"Every run folder from {run_folder_name(created_utc)} on for a minute is taken.")


def build_manifest(files: Mapping[str, bytes], rows: Mapping[str, int], **fields: Any) -> dict[str, Any]:
    """The manifest of a run: given fields plus name, rows, bytes and sha256 of each file."""
    return {
        "format": "market-forecast-run/1",
        **fields,
        "files": [
            {"name": name, "rows": rows.get(name), "bytes": len(content), "sha256": sha256_hex(content)}
            for name, content in files.items()
        ],
    }


def publish_run(
    storage: WritableFileSystem,
    folder: str,
    files: Mapping[str, bytes],
    manifest: dict[str, Any],
    *,
    move_latest: bool,
    policy: StorageSettings,
    on_file: Callable[[str, int, int], None] | None = None,
) -> PublishedRun:
    """Write a run folder completely, then (optionally) point latest.json at it.

    Order: every data file, then manifest.json (the folder is complete from here), then latest.json.
    If any write fails, latest.json is left as it was, the files already written are removed where
    possible, and PublishError says what was written, what was left and where latest.json points.

    Args:
        storage: the storage block.
        folder: e.g. "runs/20261123_143012"; must not hold a manifest yet.
        files: file name -> bytes.
        manifest: from build_manifest.
        move_latest: whether this run becomes what latest.json points at.
        policy: attempts, timeout and retry delay of each write.
        on_file: progress callback (name, index from 1, total).
    """
    if read_json(storage, f"{folder}/{MANIFEST}", policy=policy) is not None:
        raise PublishError(f"{folder} already holds a complete run; refusing to overwrite it.")
    latest = read_json(storage, LATEST, policy=policy)
    previous = latest.get("run_folder") if latest else None
    manifest = {**manifest, "run_folder": folder}
    ordered = [*files.items(), (MANIFEST, json.dumps(manifest, indent=2).encode())]
    written: list[str] = []
    for index, (name, content) in enumerate(ordered, start=1):
        path = f"{folder}/{name}"
        try:
            write_bytes(storage, path, content, policy=policy)
        except StorageError as exc:
            left = delete_paths(storage, written + [path], timeout=policy.timeout_seconds)
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
    if move_latest:
        pointer = {
            "run_folder": folder,
            "manifest": f"{folder}/{MANIFEST}",
            **{k: manifest.get(k) for k in ("kind", "created_utc", "as_of", "data_through", "model_version")},
        }
        try:
            write_bytes(storage, LATEST, json.dumps(pointer, indent=2).encode(), policy=policy)
        except StorageError as exc:
            raise PublishError(
                f"{folder} was published completely (manifest.json written), but latest.json could "
                f"not be updated and may still point at {previous or 'nothing'}: {exc}. Re-run, or "
                f"point latest.json at {folder} by hand."
            ) from exc
    return PublishedRun(folder, manifest, move_latest, describe_storage(storage))


# ---------------------------------------------------------------- model store

MODEL_FILES = ("lstm_model.keras", "scaler.json")
MODEL_CARD = "model_card.json"


def save_model_version(
    storage: WritableFileSystem, version: str, files: Mapping[str, bytes], card: dict[str, Any], *, policy: StorageSettings
) -> str:
    """Write models/<version>/ (model files, then the card); returns the card's sha256."""
    folder = f"{MODELS}/{version}"
    for name, content in files.items():
        write_bytes(storage, f"{folder}/{name}", content, policy=policy)
    card_bytes = json.dumps(card, indent=2).encode()
    write_bytes(storage, f"{folder}/{MODEL_CARD}", card_bytes, policy=policy)
    return sha256_hex(card_bytes)


def read_champion_pointer(storage: WritableFileSystem, *, policy: StorageSettings) -> dict[str, Any] | None:
    """models/champion.json, or None when no model was ever promoted."""
    return read_json(storage, CHAMPION, policy=policy)


def promote_champion(
    storage: WritableFileSystem,
    version: str,
    card_sha256: str,
    *,
    promoted_utc: str,
    reason: str,
    training_run_folder: str,
    policy: StorageSettings,
) -> None:
    """Point models/champion.json at `version` (and the run folder its training published)."""
    pointer = {
        "version": version,
        "model_card": f"{MODELS}/{version}/{MODEL_CARD}",
        "model_card_sha256": card_sha256,
        "training_run_folder": training_run_folder,
        "promoted_utc": promoted_utc,
        "reason": reason,
    }
    write_bytes(storage, CHAMPION, json.dumps(pointer, indent=2).encode(), policy=policy)


def load_model_files(
    storage: WritableFileSystem, version: str, *, card_sha256: str | None, policy: StorageSettings
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Read a model version's files and card, checking every sha256.

    Raises:
        ModelStoreError: a file is missing.
        ModelIntegrityError: a hash does not match.
    """
    folder = f"{MODELS}/{version}"
    try:
        card_bytes = read_bytes(storage, f"{folder}/{MODEL_CARD}", policy=policy)
        files = {name: read_bytes(storage, f"{folder}/{name}", policy=policy) for name in MODEL_FILES}
    except StorageNotFound as exc:
        raise ModelStoreError(f"Model version {version} is incomplete in {describe_storage(storage)}: {exc}") from None
    if card_sha256 is not None and sha256_hex(card_bytes) != card_sha256:
        raise ModelIntegrityError(
            f"{folder}/{MODEL_CARD} does not match the sha256 recorded in {CHAMPION}: the card was "
            "changed after promotion. Retrain (run the train-model flow) or restore the file."
        )
    card = json.loads(card_bytes)
    for name, content in files.items():
        expected = card.get("files", {}).get(name)
        if expected != sha256_hex(content):
            raise ModelIntegrityError(
                f"{folder}/{name} has sha256 {sha256_hex(content)[:12]}..., its model card says "
                f"{str(expected)[:12]}...: the file is corrupt or was replaced. Retrain (run the "
                "train-model flow) or restore the file."
            )
    return files, card


# ---------------------------------------------------------------- tasks


@task(name="resolve-storage", cache_policy=NO_CACHE)
def resolve_storage_task(storage_block: str | None, output_dir: str) -> WritableFileSystem:
    """Load the storage block (or the local output folder) and say where outputs go."""
    storage = resolve_storage(storage_block, output_dir)
    get_run_logger().info("Storage: %s", describe_storage(storage))
    return storage


@task(name="choose-run-folder", cache_policy=NO_CACHE)
def free_run_folder_task(storage: WritableFileSystem, created_utc: datetime, settings: Settings) -> str:
    """The run's folder, runs/YYYYMMDD_HHMMSS (UTC), moved on by a second if a complete run holds it."""
    folder = free_run_folder(storage, created_utc, policy=settings.storage)
    get_run_logger().info("This run publishes to %s", folder)
    return folder


@task(name="publish-run", cache_policy=NO_CACHE)
def publish_run_task(
    storage: WritableFileSystem,
    folder: str,
    files: dict[str, bytes],
    manifest: dict[str, Any],
    *,
    move_latest: bool,
    policy: StorageSettings,
) -> PublishedRun:
    """Publish the run folder, manifest last, then latest.json; log each file as it lands."""
    logger = get_run_logger()

    def on_file(name: str, index: int, total: int) -> None:
        logger.info("Published %s/%s (%d/%d)", folder, name, index, total)

    published = publish_run(storage, folder, files, manifest, move_latest=move_latest, policy=policy, on_file=on_file)
    if move_latest:
        logger.info("latest.json now points at %s in %s", folder, published.location)
    else:
        logger.info("%s published to %s; latest.json left unchanged", folder, published.location)
    return published

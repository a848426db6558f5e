"""Blob store adapter: read, write and delete files of the storage block, each within a time limit.

The model store and the published runs live in one Prefect `WritableFileSystem`-style block: a
`LocalFileSystem` under `data/` by default, prefect-azure's `AzureBlobStorageContainer` in
production, or any other block with `read_path` / `write_path`.

Every failure leaves here as one of the pipeline's typed errors, classified once:
- `StorageTransientError`: a timeout, a connection error, HTTP 408/429/5xx. The I/O stages retry
  these (Prefect task retries, `tasks.stages.retry`), like FRED's;
- `StorageNotFoundError`: the path does not exist;
- `StorageError`: anything else (a missing container, a refused credential), with what to do.

Files are read and written through the block's own `read_path` / `write_path`, except in an Azure
container: there they go through the container client that the block's credentials hand out
(`AzureBlobStorageCredentials.get_container_client`, public API), called with SDK retries off and
an overall time limit, because the SDK alone retries a dead endpoint for about 85 s per call and our
retry policy and its message should be in charge instead. The WritableFileSystem interface has no
delete: removing a failed publish's partial files works for local folders and Azure containers.

Files that several runs may write at once (latest.json, champion.json, a run folder's claim) change
only through `update_bytes` / `create_bytes`: decided on what is there when written (ETag conditions
in Azure, a lock file in a local folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, cast

from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem, WritableFileSystem
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import ValidationError

from blocks.azure import parse_connection_string
from blocks.redaction import redact
from tasks.core.contracts import StoredJson
from tasks.core.errors import (
    InvalidStoredFileError,
    PipelineError,
    StorageError,
    StorageNotFoundError,
    StorageTransientError,
)

if TYPE_CHECKING:  # pragma: no cover
    from azure.storage.blob.aio import BlobClient, ContainerClient
    from prefect_azure import AzureBlobStorageContainer

T = TypeVar("T")
S = TypeVar("S", bound=StoredJson)


def describe_storage(storage: WritableFileSystem) -> str:
    """Where a storage block points, for logs and summaries (no credentials)."""
    if isinstance(storage, LocalFileSystem):
        return f"local folder {local_root(storage)}"
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
        folder = Path(output_dir).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise StorageError(
                f"output_dir {folder} is a file, not a folder: give a folder (created if missing), or the "
                "storage_block of a saved storage block."
            )
        return LocalFileSystem(basepath=str(folder))
    if "/" not in storage_block:
        raise StorageError(
            f"storage_block {storage_block!r} must name the block type too, as "
            f"'<block-type-slug>/<name>', e.g. 'azure-blob-storage-container/{storage_block}' "
            f"or 'local-file-system/{storage_block}'."
        )
    try:
        block = cast(Block, Block.load(storage_block))  # sync here; Prefect types it as sync or async
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
    return cast(WritableFileSystem, block)


def local_root(storage: LocalFileSystem) -> Path:
    """The absolute folder a LocalFileSystem block reads and writes."""
    return Path(storage.basepath or ".").expanduser().resolve()


def _local_path(storage: LocalFileSystem, path: str) -> Path:
    root = local_root(storage)
    target = (root / path).resolve()
    if root != target and root not in target.parents:
        raise StorageError(f"{path!r} lies outside the storage folder {root}")
    return target


def _is_azure(storage: WritableFileSystem) -> TypeGuard[AzureBlobStorageContainer]:
    # Duck-typed: prefect-azure is imported only where an Azure block is actually used.
    return hasattr(storage, "container_name") and hasattr(storage, "credentials")


def _blob_name(storage: WritableFileSystem, path: str) -> str:
    base = (getattr(storage, "base_folder", None) or "").strip("/")
    return f"{base}/{path}" if base else path


def published_url(storage: WritableFileSystem, folder: str) -> str | None:
    """A link to a published folder: file:// for a local folder, the Blob URL for Azure (no credentials)."""
    if isinstance(storage, LocalFileSystem):
        return (local_root(storage) / folder).as_uri()
    if not _is_azure(storage):
        return None
    credentials = storage.credentials
    endpoint = getattr(credentials, "account_url", None)
    secret = getattr(credentials, "connection_string", None)
    if endpoint is None and secret is not None:
        try:
            endpoint = parse_connection_string(secret.get_secret_value()).endpoint
        except ValueError:
            return None
    if endpoint is None:
        return None
    container = storage.container_name
    return f"{str(endpoint).rstrip('/')}/{container}/{_blob_name(storage, folder)}/"


# ---------------------------------------------------------------- classification


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
        if isinstance(error, HttpResponseError):
            status = error.status_code or 0
            return status in (408, 429) or status >= 500
    return False


def _container_hint(storage: WritableFileSystem) -> str:
    name = getattr(storage, "container_name", "?")
    return (
        f"The Azure Blob container {name!r} does not exist. The storage block does not create "
        f"containers: create it once with `az storage container create --name {name} "
        '--connection-string "$AZURE_STORAGE_CONNECTION_STRING"`, in the Azure portal '
        "(Storage account > Containers > + Container), or with `python -m blocks setup "
        "--create-container`."
    )


def _classified(exc: Exception, *, what: str, storage: WritableFileSystem, timeout: float) -> StorageError:
    """The typed error for a failed storage call (its message never holds a secret)."""
    if _error_code(exc) == "ContainerNotFound":
        return StorageError(f"{what} failed: {_container_hint(storage)}")
    if _error_code(exc) == "BlobNotFound" or isinstance(exc, FileNotFoundError):
        return StorageNotFoundError(f"{what}: not found in {describe_storage(storage)}")
    if isinstance(exc, TimeoutError) and not str(exc):  # asyncio's timeout says nothing
        detail = f"no answer within {timeout:g} s (is the storage endpoint reachable?)"
    else:
        # redact: an Azure error can quote a URL with a SAS signature in it.
        detail = redact(str(exc).splitlines()[0]) if str(exc) else "no message"
    kind = StorageTransientError if _is_transient(exc) else StorageError
    return kind(f"{what} failed on {describe_storage(storage)}: {type(exc).__name__}: {detail}")


def _run(
    storage: WritableFileSystem,
    *,
    what: str,
    timeout: float,
    block: Callable[[], T],
    azure: Callable[[ContainerClient], Awaitable[T]],
) -> T:
    """Run one storage operation and classify any failure.

    An Azure container is called through its container client, any other block through its own method.
    """
    try:
        if not _is_azure(storage):
            return block()

        async def bounded() -> T:
            client = storage.credentials.get_container_client(storage.container_name)
            async with client:
                return await asyncio.wait_for(azure(client), timeout)

        return cast(T, run_coro_as_sync(bounded()))
    except PipelineError:  # the pipeline's own errors (already classified, or raised by a caller's callback)
        raise
    except Exception as exc:
        raise _classified(exc, what=what, storage=storage, timeout=timeout) from exc


# Azure SDK per-call options: no retries of its own (the stages retry), bounded socket waits.
_NO_SDK_RETRY: dict[str, Any] = {"retry_total": 0}


def read_bytes(storage: WritableFileSystem, path: str, *, timeout: float) -> bytes:
    """The content of `path`.

    Raises:
        StorageNotFoundError: the path does not exist.
        StorageTransientError: a timeout or a retryable HTTP status.
        StorageError: any other failure.
    """

    def block() -> bytes:
        if isinstance(storage, LocalFileSystem) and not _local_path(storage, path).is_file():
            raise FileNotFoundError(path)
        return cast(bytes, storage.read_path(path))  # sync here; Prefect types it as sync or async

    async def azure(client: ContainerClient) -> bytes:
        stream = await client.get_blob_client(_blob_name(storage, path)).download_blob(**_NO_SDK_RETRY)
        return bytes(await stream.readall())

    return _run(storage, what=f"Reading {path}", timeout=timeout, block=block, azure=azure)


# Content types of the published files in Azure: a browser shows a chart from its blob URL (an
# <img>, Power BI's image URL) only as an image type; SVG in particular is never sniffed.
CONTENT_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".csv": "text/csv",
    ".json": "application/json",
}


def content_type(path: str) -> str | None:
    """The Content-Type a file is stored with in Azure (None: the service's default)."""
    return CONTENT_TYPES.get(Path(path).suffix.lower())


def write_bytes(storage: WritableFileSystem, path: str, content: bytes, *, timeout: float) -> None:
    """Write `content` to `path`, replacing what is there (in Azure with its `content_type`).

    Raises:
        StorageTransientError: a timeout or a retryable HTTP status.
        StorageError: any other failure.
    """

    async def azure(client: ContainerClient) -> None:
        await _upload(client.get_blob_client(_blob_name(storage, path)), path, content, {"overwrite": True})

    def block() -> object:
        if isinstance(storage, LocalFileSystem):
            _replace_local_file(_local_path(storage, path), content)
            return None
        return storage.write_path(path, content)  # the block's own (sync-compatible) write

    _run(storage, what=f"Writing {path}", timeout=timeout, block=block, azure=azure)


async def _upload(blob: BlobClient, path: str, content: bytes, conditions: dict[str, Any]) -> None:
    """Upload `content` to a blob with `path`'s content type, no SDK retries, under `conditions`."""
    from azure.storage.blob import ContentSettings

    settings = ContentSettings(content_type=content_type(path))
    await blob.upload_blob(content, content_settings=settings, **conditions, **_NO_SDK_RETRY)


def update_bytes(
    storage: WritableFileSystem,
    path: str,
    decide: Callable[[bytes | None], bytes | None],
    *,
    timeout: float,
    attempts: int = 5,
) -> tuple[bytes | None, bool]:
    """Read `path` and write what `decide` makes of it, unless another writer changes it in between.

    `decide` gets the current content (None: no such file) and returns the new content, or None to
    leave the file as it is. This is how two runs sharing one storage never overwrite each other's
    pointer (latest.json, champion.json) or run folder:
    - Azure container: the write is conditional on the blob's ETag (or, for a new blob, on its
      absence); when another writer got there first, the blob is read and decided again, up to
      `attempts` times;
    - local folder: reading, deciding and writing hold an exclusive lock on the folder's
      `LOCK_FILE` (fcntl; a platform without it reads and writes unprotected);
    - any other block: read, then write, with no protection against a concurrent writer.

    Returns:
        What the file holds afterwards, and whether this call wrote it.

    Raises:
        StorageTransientError: a timeout, a retryable HTTP status, or the file changed under every
            one of the `attempts`.
        StorageError: any other failure.
    """

    def block() -> tuple[bytes | None, bool]:
        def read_decide_write() -> tuple[bytes | None, bool]:
            current = read_optional(storage, path, timeout=timeout)
            new = decide(current)
            if new is None:
                return current, False
            write_bytes(storage, path, new, timeout=timeout)
            return new, True

        if not isinstance(storage, LocalFileSystem):
            return read_decide_write()
        with _local_lock(storage, timeout=timeout):
            return read_decide_write()

    async def azure(client: ContainerClient) -> tuple[bytes | None, bool]:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        blob = client.get_blob_client(_blob_name(storage, path))
        for _ in range(attempts):
            try:
                stream = await blob.download_blob(**_NO_SDK_RETRY)
                current: bytes | None = bytes(await stream.readall())
                etag: str | None = stream.properties.etag
            except ResourceNotFoundError as exc:
                if _error_code(exc) != "BlobNotFound":
                    raise
                current, etag = None, None
            new = decide(current)
            if new is None:
                return current, False
            condition: dict[str, Any] = (
                {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified}
                if etag is not None
                else {"overwrite": False}
            )
            try:
                await _upload(blob, path, new, condition)
            except (ResourceModifiedError, ResourceExistsError):
                continue  # another writer got there first: read what it wrote, and decide again
            return new, True
        raise StorageTransientError(
            f"Updating {path} in {describe_storage(storage)}: another writer changed it {attempts} times in a "
            "row. Re-run when the other runs sharing this storage have finished."
        )

    return _run(storage, what=f"Updating {path}", timeout=timeout, block=block, azure=azure)


def create_bytes(
    storage: WritableFileSystem, path: str, content: bytes, *, timeout: float
) -> tuple[bytes | None, bool]:
    """Write `content` to `path` only if no file is there (`update_bytes`).

    Returns:
        What the file holds afterwards, and whether this call created it.
    """
    return update_bytes(storage, path, lambda current: content if current is None else None, timeout=timeout)


LOCK_FILE = ".market-forecast.lock"
"""The lock file `update_bytes` holds in a local storage folder (empty; safe to delete when no run is on)."""


@contextlib.contextmanager
def _local_lock(storage: LocalFileSystem, *, timeout: float) -> Iterator[None]:
    """Hold the local storage folder's exclusive lock, waiting at most `timeout` seconds for it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock (documented in update_bytes)
        yield
        return
    root = local_root(storage)
    root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with (root / LOCK_FILE).open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StorageTransientError(
                        f"{root / LOCK_FILE} stayed locked for {timeout:g} s: another run is writing to this "
                        "folder. Re-run when it has finished."
                    ) from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace_local_file(target: Path, content: bytes) -> None:
    """Write a new file and rename it over `target`.

    A reader sees the old content or the new, never a truncated file (a crash mid-write, or a daily
    run reading champion.json as it is promoted).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        partial.write_bytes(content)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def read_stored(storage: WritableFileSystem, path: str, model: type[S], *, timeout: float, remedy: str) -> S | None:
    """The stored JSON file at `path` parsed as `model`, or None if it does not exist.

    Raises:
        InvalidStoredFileError: it exists but is not a valid `model` (`remedy` says what to do).
    """
    content = read_optional(storage, path, timeout=timeout)
    if content is None:
        return None
    try:
        return model.from_bytes(content)
    except ValidationError as exc:
        raise InvalidStoredFileError(
            f"{path} in {describe_storage(storage)} is not a valid {model.__name__} ({len(content)} bytes; "
            f"{validation_problems(exc)}): it was cut short or edited. {remedy}"
        ) from None


def validation_problems(exc: ValidationError) -> str:
    """'<n> problem(s), first: <where>: <what>' of a stored file that did not parse."""
    first = exc.errors()[0]
    return f"{exc.error_count()} problem(s), first: {first['loc']}: {first['msg']}"


def read_optional(storage: WritableFileSystem, path: str, *, timeout: float) -> bytes | None:
    """The content of `path`, or None if it does not exist."""
    try:
        return read_bytes(storage, path, timeout=timeout)
    except StorageNotFoundError:
        return None


def delete_paths(storage: WritableFileSystem, paths: list[str], *, timeout: float) -> list[str]:
    """Best-effort removal of `paths`; returns the ones that could not be removed.

    A path that does not exist counts as removed (the write that failed may never have landed).
    `timeout` bounds the whole removal: the storage may be the very thing that is down.
    """
    removed: set[str] = set()

    def block() -> None:
        if not isinstance(storage, LocalFileSystem):  # no delete in the WritableFileSystem interface
            return
        root = local_root(storage)
        for path in paths:
            target = _local_path(storage, path)
            try:
                target.unlink(missing_ok=True)
                removed.add(path)
            except OSError:
                continue
            for folder in target.parents:  # the folders left empty go too (a failed run's runs/<folder>/)
                if folder == root or not folder.is_relative_to(root):
                    break
                try:
                    folder.rmdir()
                except OSError:  # not empty (or already gone)
                    break

    async def azure(client: ContainerClient) -> None:
        for path in paths:
            try:
                await client.delete_blob(_blob_name(storage, path), **_NO_SDK_RETRY)
            except Exception as exc:  # noqa: BLE001 - whatever is not removed is reported
                if _error_code(exc) != "BlobNotFound":
                    continue
            removed.add(path)

    with contextlib.suppress(StorageError):  # what was not removed is reported below
        _run(storage, what="Removing partial files", timeout=timeout, block=block, azure=azure)
    return [path for path in paths if path not in removed]


def list_paths(storage: WritableFileSystem, prefix: str, *, timeout: float) -> list[str] | None:
    """The paths of the files whose path starts with `prefix` (a string prefix, not only a folder), sorted.

    None when the block cannot list its files: the WritableFileSystem interface has no listing, so
    this works for local folders and Azure containers only.

    Raises:
        StorageTransientError: a timeout or a retryable HTTP status.
        StorageError: any other failure.
    """
    if not isinstance(storage, LocalFileSystem) and not _is_azure(storage):
        return None
    base = (getattr(storage, "base_folder", None) or "").strip("/")

    def block() -> list[str]:
        root = local_root(cast(LocalFileSystem, storage))
        folder, _, start = prefix.rpartition("/")
        parent = _local_path(cast(LocalFileSystem, storage), folder or ".")
        entries = [entry for entry in parent.iterdir() if entry.name.startswith(start)] if parent.is_dir() else []
        files = [entry for entry in entries if entry.is_file()]
        files += [path for entry in entries if entry.is_dir() for path in entry.rglob("*") if path.is_file()]
        return sorted(path.relative_to(root).as_posix() for path in files)

    async def azure(client: ContainerClient) -> list[str]:
        names = [
            blob.name async for blob in client.list_blobs(name_starts_with=_blob_name(storage, prefix), **_NO_SDK_RETRY)
        ]
        return sorted(name[len(base) + 1 :] if base else name for name in names)

    return _run(storage, what=f"Listing {prefix}*", timeout=timeout, block=block, azure=azure)

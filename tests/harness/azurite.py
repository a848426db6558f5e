"""Run Azurite, the official Azure Storage emulator, on loopback for tests.

This module is test support only. It installs the Azurite version pinned in
``tests/azurite/package.json`` (``npm ci``, once, into ``tests/azurite/node_modules``)
and runs its blob service on ``127.0.0.1`` with the well-known development
account ``devstoreaccount1``. Nothing here contacts any other address.

Typical use::

    with Azurite(tmp_path / "azurite") as azurite:
        azurite.create_container("forecasts")
        credentials = AzureBlobStorageCredentials(
            connection_string=azurite.connection_string
        )

Notes for tests that simulate storage failures:

* :meth:`Azurite.kill` is a crash (SIGKILL). Azurite keeps its metadata in
  LokiJS databases that it saves to disk every 5 s, so anything written in the
  last ~5 s before a kill may be gone after :meth:`Azurite.restart`. Call
  :meth:`Azurite.wait_persisted` before ``kill()`` when the data must survive.
  :meth:`Azurite.stop` (SIGTERM) saves everything first.
* azure-storage-blob's default retry policy (3 retries, backoff ~15 s, ~18 s,
  ~24 s) needs about a minute to give up on a dead server. Build clients with
  :meth:`Azurite.blob_service_client` and e.g. ``retry_total=0`` to fail fast.

Requires node >= 18 and npm on ``PATH``. Linux/macOS only (process groups,
``fcntl``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import (
    BlobServiceClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from tests.harness.process import HOST, ManagedProcess, tail

try:  # pragma: no cover - always present on Linux/macOS
    import fcntl
except ImportError:  # pragma: no cover - Windows: no inter-process install lock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AZURITE_DIR",
    "Azurite",
    "AzuriteUnavailable",
    "ensure_azurite_installed",
]

AZURITE_DIR: Path = Path(__file__).resolve().parents[1] / "azurite"

# The fixed development account every Azurite instance serves (public, documented).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LOG_FILE_NAME = "azurite.log"
MIN_NODE_MAJOR = 18
NPM_CI_TIMEOUT = 900.0

# LokiJS databases Azurite autosaves every 5 s (see wait_persisted).
_DB_FILES = ("__azurite_db_blob__.json", "__azurite_db_blob_extent__.json")
_AUTOSAVE_INTERVAL = 5.0
# Printed by azurite-blob 3.35.0 once its HTTP server is bound.
_LISTENING = "Azurite Blob service successfully listens on"

_FIX_HINT = (
    "Azurite needs node >= {major} and npm on PATH (https://nodejs.org/ or your "
    "package manager), and the npm registry reachable for the one-time install. "
    "To install by hand: cd {dir} && npm ci --no-audit --no-fund"
)


class AzuriteUnavailable(RuntimeError):
    """Azurite could not be installed or started."""


def _fix_hint() -> str:
    return _FIX_HINT.format(major=MIN_NODE_MAJOR, dir=AZURITE_DIR)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise AzuriteUnavailable(f"`node` was not found on PATH. {_fix_hint()}")
    return node


def _check_node_version(node: str) -> None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        major = int(out.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise AzuriteUnavailable(
            f"Could not determine the node version with `{node} --version`: {exc}. {_fix_hint()}"
        ) from exc
    if major < MIN_NODE_MAJOR:
        raise AzuriteUnavailable(f"node {out} at {node} is too old. {_fix_hint()}")


def _pinned_version() -> str:
    manifest = json.loads((AZURITE_DIR / "package.json").read_text())
    return manifest["dependencies"]["azurite"]


def _executable() -> Path:
    return AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"


def _installed() -> bool:
    """True when node_modules holds a complete install of the pinned version."""
    if not _executable().exists():  # follows the .bin symlink
        return False
    try:
        manifest = AZURITE_DIR / "node_modules" / "azurite" / "package.json"
        return json.loads(manifest.read_text())["version"] == _pinned_version()
    except (OSError, ValueError, KeyError):
        return False


def ensure_azurite_installed() -> Path:
    """Return the path of the ``azurite-blob`` executable, installing it if needed.

    Runs ``npm ci --no-audit --no-fund`` in :data:`AZURITE_DIR` when the pinned
    Azurite is not installed there. Concurrent callers (e.g. pytest-xdist
    workers) serialize on an ``flock`` of ``AZURITE_DIR/.install.lock``.

    Raises:
        AzuriteUnavailable: node/npm are missing or too old, or the install failed.
    """
    node = _node()
    _check_node_version(node)
    if _installed():
        return _executable()

    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteUnavailable(f"`npm` was not found on PATH. {_fix_hint()}")

    with open(AZURITE_DIR / ".install.lock", "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed():  # another process installed it while we waited
                return _executable()
            env = dict(os.environ, npm_config_update_notifier="false")
            cmd = [npm, "ci", "--no-audit", "--no-fund"]
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=AZURITE_DIR,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=NPM_CI_TIMEOUT,
                )
            except subprocess.TimeoutExpired as exc:
                stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
                raise AzuriteUnavailable(
                    f"`{' '.join(cmd[1:])}` in {AZURITE_DIR} did not finish within "
                    f"{NPM_CI_TIMEOUT:.0f} s.\n--- npm stderr (tail) ---\n"
                    f"{tail(stderr or '')}\n{_fix_hint()}"
                ) from exc
            except OSError as exc:
                raise AzuriteUnavailable(f"Could not run npm ({npm}): {exc}. {_fix_hint()}") from exc
            if proc.returncode != 0:
                raise AzuriteUnavailable(
                    f"`npm ci` in {AZURITE_DIR} failed with exit code {proc.returncode}."
                    f"\n--- npm stderr (tail) ---\n{tail(proc.stderr or proc.stdout)}\n"
                    f"{_fix_hint()}"
                )
            if not _installed():
                raise AzuriteUnavailable(
                    f"`npm ci` in {AZURITE_DIR} succeeded but {_executable()} (azurite "
                    f"{_pinned_version()}) is missing.\n--- npm output (tail) ---\n"
                    f"{tail(proc.stdout + proc.stderr)}\n{_fix_hint()}"
                )
            return _executable()
        finally:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)


class Azurite(ManagedProcess):
    """One Azurite blob service on ``127.0.0.1:port`` storing data in ``location``.

    ``port=None`` picks a free port now (so :attr:`connection_string` is usable
    before :meth:`start`); if that port is taken by the time Azurite binds it,
    the first :meth:`start` picks another one. :meth:`restart` always reuses
    the port. Azurite's console output goes to ``location/azurite.log``.
    """

    name = "Azurite"
    start_timeout = 30.0
    stop_grace = 5.0  # SIGTERM: Azurite saves its data first
    probe_interval = 0.05
    start_error = AzuriteUnavailable

    def __init__(self, location: Path, *, port: int | None = None) -> None:
        self.location = Path(location)
        super().__init__(self.location / LOG_FILE_NAME, cwd=self.location, port=port)
        self._executable: Path | None = None

    # -- addresses ---------------------------------------------------------------
    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.blob_endpoint};"
        )

    def describe(self) -> str:
        return f"Azurite on {HOST}:{self.port} (location {self.location})"

    # -- the managed process -------------------------------------------------------
    def prepare(self) -> None:
        self._executable = ensure_azurite_installed()
        self.location.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        assert self._executable is not None
        return [
            _node(),
            str(self._executable),
            "--blobHost", HOST,
            "--blobPort", str(self.port),
            "--location", str(self.location),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("AZURITE_ACCOUNTS", None)  # keep exactly the default dev account
        return env

    def probe(self) -> str | None:
        """Ready once Azurite says it listens and answers a real request.

        A failed start raises AzuriteUnavailable (so does a missing node/npm or a failed install).
        """
        # Probe only once Azurite says it listens, so that whatever else may hold the port is
        # never mistaken for it.
        if _LISTENING not in self.log_since_start():
            return f"no {_LISTENING!r} in its log yet"
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5):
                pass
            with self.blob_service_client(retry_total=0, connection_timeout=1, read_timeout=2) as client:
                client.get_service_properties()
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            return f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None

    def wait_persisted(self, timeout: float = _AUTOSAVE_INTERVAL + 1) -> None:
        """Wait until Azurite has autosaved its metadata to disk (at most ~5 s).

        Returns as soon as every metadata database has been rewritten after
        this call, or after ``timeout`` (by then any change made before the
        call has been saved: Azurite autosaves every 5 s, when dirty).
        """
        paths = [self.location / name for name in _DB_FILES]

        def mtimes() -> list[int]:
            return [p.stat().st_mtime_ns if p.exists() else 0 for p in paths]

        before = mtimes()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(now != then for now, then in zip(mtimes(), before, strict=False)):
                return
            time.sleep(0.1)

    # -- clients -------------------------------------------------------------------
    def blob_service_client(self, **kwargs: Any) -> BlobServiceClient:
        """A sync ``BlobServiceClient`` for the dev account; kwargs go to the client
        (e.g. ``retry_total=0, connection_timeout=2``)."""
        return BlobServiceClient.from_connection_string(self.connection_string, **kwargs)

    def create_container(self, name: str) -> None:
        """Create a container; do nothing if it already exists."""
        with (
            self.blob_service_client(retry_total=1, connection_timeout=5) as client,
            contextlib.suppress(ResourceExistsError),
        ):
            client.create_container(name)

    def container_sas_url(
        self,
        container: str,
        *,
        read: bool = True,
        list: bool = True,
        write: bool = False,
        expiry_minutes: int = 60,
    ) -> str:
        """``http://127.0.0.1:P/devstoreaccount1/<container>?<sas>``.

        A negative ``expiry_minutes`` yields an already expired SAS.
        """
        now = dt.datetime.now(dt.UTC)
        sas = generate_container_sas(
            account_name=ACCOUNT_NAME,
            container_name=container,
            account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions(read=read, list=list, write=write),
            expiry=now + dt.timedelta(minutes=expiry_minutes),
        )
        return f"{self.blob_endpoint}/{container}?{sas}"

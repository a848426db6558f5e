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

import atexit
import datetime as dt
import json
import os
import shutil
import signal
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

from tests.processes import (
    HOST,
    free_port,
    signal_group,
    spawn_logged,
    stop_group,
    tail,
)

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

AZURITE_DIR: Path = Path(__file__).resolve().parent / "azurite"

# The fixed development account every Azurite instance serves (public, documented).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
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
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        major = int(out.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise AzuriteUnavailable(
            f"Could not determine the node version with `{node} --version`: {exc}. "
            f"{_fix_hint()}"
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


_RUNNING: set[Azurite] = set()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - safety net only
    for azurite in list(_RUNNING):
        azurite.kill()


class Azurite:
    """One Azurite blob service on ``127.0.0.1:port`` storing data in ``location``.

    ``port=None`` picks a free port now (so :attr:`connection_string` is usable
    before :meth:`start`); if that port is taken by the time Azurite binds it,
    the first :meth:`start` picks another one. :meth:`restart` always reuses
    the port. Azurite's console output goes to ``location/azurite.log``.
    """

    def __init__(self, location: Path, *, port: int | None = None) -> None:
        self.location = Path(location)
        self._auto_port = port is None
        self.port: int = free_port() if port is None else int(port)
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

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

    @property
    def log_path(self) -> Path:
        return self.location / LOG_FILE_NAME

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Azurite {self.blob_endpoint} {state} location={self.location}>"

    # -- lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = 30) -> Azurite:
        """Start Azurite and wait until it serves requests. No-op if running."""
        if self.running:
            return self
        self._reap()
        executable = ensure_azurite_installed()
        node = _node()
        self.location.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        # A port picked by free_port() can be taken before Azurite binds it:
        # pick another one, but only before the first successful start.
        attempts = 3 if self._auto_port and not self._started_once else 1
        for attempt in range(attempts):
            log_offset = self._spawn(node, executable)
            error = self._wait_ready(deadline, log_offset)
            if error is None:
                self._started_once = True
                return self
            self.kill()
            output = self._log_since(log_offset)
            if "EADDRINUSE" in output and attempt + 1 < attempts:
                self.port = free_port()
                continue
            raise AzuriteUnavailable(
                f"Azurite did not start on {HOST}:{self.port} ({error}).\n"
                f"--- {self.log_path} (tail) ---\n{tail(output)}"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, node: str, executable: Path) -> int:
        cmd = [
            node,
            str(executable),
            "--blobHost", HOST,
            "--blobPort", str(self.port),
            "--location", str(self.location),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ]  # fmt: skip
        env = dict(os.environ)
        env.pop("AZURITE_ACCOUNTS", None)  # keep exactly the default dev account
        self._proc, offset = spawn_logged(cmd, log_path=self.log_path, cwd=self.location, env=env)
        _RUNNING.add(self)
        return offset

    def _wait_ready(self, deadline: float, log_offset: int) -> str | None:
        """Return None once Azurite answers a real request, else why not."""
        with self.blob_service_client(
            retry_total=0, connection_timeout=1, read_timeout=2
        ) as client:
            return self._poll_ready(client, deadline, log_offset)

    def _poll_ready(
        self, client: BlobServiceClient, deadline: float, log_offset: int
    ) -> str | None:
        assert self._proc is not None
        last_error = f"no {_LISTENING!r} in its log yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                return f"process exited with code {code}"
            if time.monotonic() >= deadline:
                return f"not ready in time; last error: {last_error}"
            # Probe only once Azurite says it listens, so that whatever else
            # may hold the port is never mistaken for it.
            if _LISTENING not in self._log_since(log_offset):
                time.sleep(0.05)
                continue
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    pass
                client.get_service_properties()
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                time.sleep(0.1)
                continue
            if self._proc.poll() is None:
                return None

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _signal(self, sig: int) -> None:
        assert self._proc is not None
        signal_group(self._proc, sig)

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            signal_group(self._proc, signal.SIGKILL)  # the leader is gone; so must its group be
            self._proc = None
            _RUNNING.discard(self)

    def stop(self) -> None:
        """SIGTERM (Azurite saves its data), SIGKILL after 5 s. Idempotent."""
        if self._proc is None:
            return
        stop_group(self._proc, grace=5)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the process group now, like a crash. Idempotent.

        Writes from the last ~5 s may be lost; see :meth:`wait_persisted`.
        """
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        self._proc.wait()
        self._reap()

    def restart(self, timeout: float = 30) -> None:
        """Stop (if running) and start again on the same port and location."""
        self.stop()
        self._auto_port = False
        self.start(timeout=timeout)

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
            if all(now != then for now, then in zip(mtimes(), before)):
                return
            time.sleep(0.1)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- clients -------------------------------------------------------------------
    def blob_service_client(self, **kwargs: Any) -> BlobServiceClient:
        """A sync ``BlobServiceClient`` for the dev account; kwargs go to the client
        (e.g. ``retry_total=0, connection_timeout=2``)."""
        return BlobServiceClient.from_connection_string(self.connection_string, **kwargs)

    def create_container(self, name: str) -> None:
        """Create a container; do nothing if it already exists."""
        with self.blob_service_client(retry_total=1, connection_timeout=5) as client:
            try:
                client.create_container(name)
            except ResourceExistsError:
                pass

    def container_sas_url(
        self,
        container: str,
        *,
        read: bool = True,
        list: bool = True,  # noqa: A002 - name fixed by the harness API
        write: bool = False,
        expiry_minutes: int = 60,
    ) -> str:
        """``http://127.0.0.1:P/devstoreaccount1/<container>?<sas>``.

        A negative ``expiry_minutes`` yields an already expired SAS.
        """
        now = dt.datetime.now(dt.timezone.utc)
        sas = generate_container_sas(
            account_name=ACCOUNT_NAME,
            container_name=container,
            account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions(read=read, list=list, write=write),
            expiry=now + dt.timedelta(minutes=expiry_minutes),
        )
        return f"{self.blob_endpoint}/{container}?{sas}"

"""A real `prefect server start` on 127.0.0.1 for integration tests, plus the workers the tests start.

Usage (the `prefect_server` session fixture in tests/conftest.py does the first and last step):

    server = PrefectServer(tmp_path).start()       # ~5-15 s on 2 cores
    server.cli("work-pool", "create", "--type", "process", "pool-a")
    worker = server.start_worker("pool-a", cwd=repo_root, ready_timeout=90)   # wait for its registration
    with server.client() as client:                 # a SyncPrefectClient bound to this server
        client.read_flow_runs()
    with server.settings():                         # Block.save/load, Automation.create, flows run
        ...                                         # in this process all talk to this server
    server.stop()                                   # workers first, then the server; idempotent

Layout under `home`:
    home/                 PREFECT_HOME of the server (its SQLite database lives here)
    home/server.log       the server's output (tail shown when it does not become healthy)
    home/client/          PREFECT_HOME of every CLI call and worker (never the server's)
    home/worker-<pool>-<n>.log   each worker's output

Server settings chosen as defaults (`DEFAULT_SERVER_ENV`; `extra_env` overrides or adds):
    PREFECT_SERVER_ANALYTICS_ENABLED=false                 no telemetry calls (there is no network)
    PREFECT_SERVER_UI_ENABLED=false                        no UI build at start (saves seconds); the
                                                           API, and PREFECT_UI_URL in clients, still work.
                                                           `PrefectServer(home, ui=True)` serves the UI
                                                           at `ui_url` instead (`ui_server_env`)
    PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS=3      a Scheduled run is marked Late 3 s after its time
    PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS=1       ... checked every second
    PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS=5       deployment schedules become runs within ~5 s
    PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY=PT1S       proactive automation triggers evaluated every 1 s
                                                           (default 5 s); their `within` is still >= 10 s
    PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS=5         worker/work-pool status updated every 5 s
    PREFECT_LOGGING_SERVER_LEVEL=INFO                      automation decisions appear in server.log

Client settings (`env()`, used by `cli()` and `start_worker()`):
    PREFECT_API_URL=<api_url>, PREFECT_HOME=home/client, PREFECT_SERVER_ANALYTICS_ENABLED=false,
    NO_PROXY/no_proxy including 127.0.0.1 and localhost, PREFECT_API_KEY removed,
    and for workers PREFECT_WORKER_QUERY_SECONDS=1, PREFECT_WORKER_PREFETCH_SECONDS=5 (runs are
    picked up within ~1 s instead of ~10 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.harness.process import HOST, ManagedProcess

DEFAULT_SERVER_ENV: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "3",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY": "PT1S",  # a timedelta: "1" is rejected
    "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "5",
    "PREFECT_LOGGING_SERVER_LEVEL": "INFO",
}


def ui_server_env(api_url: str) -> dict[str, str]:
    """Server settings of `ui=True`: the dashboard served, its browser code calling `api_url`."""
    return {
        "PREFECT_SERVER_UI_ENABLED": "true",
        "PREFECT_UI_API_URL": api_url,  # what the UI's JavaScript calls (default: derived, may not be 127.0.0.1)
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",  # no upgrade banners (and no requests for them)
    }


DEFAULT_WORKER_ENV: dict[str, str] = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
}

# Variables of the calling environment that must never leak into the server or its clients.
_DROPPED = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_PROFILE",
    "PREFECT_PROFILES_PATH",
    "PREFECT_UI_URL",
    "PREFECT_UI_API_URL",
)


def _drain_prefect_workers() -> None:
    """Send what Prefect's event and log workers hold, then stop them (new ones start on demand)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (EventsWorker, APILogWorker):
        worker.drain_all(timeout=30, at_exit=False)


def _no_proxy(env: dict[str, str]) -> None:
    for key in ("NO_PROXY", "no_proxy"):
        parts = [p for p in env.get(key, "").split(",") if p]
        for host in (HOST, "localhost"):
            if host not in parts:
                parts.append(host)
        env[key] = ",".join(parts)


class PrefectServer(ManagedProcess):
    """One `prefect server start --host 127.0.0.1 --port P` with its own PREFECT_HOME.

    Args:
        home: Folder for the server's PREFECT_HOME, logs and the clients' PREFECT_HOME.
        port: Port to listen on; None picks a free one (and another one if it is taken at start).
        extra_env: Server environment added to (or overriding) `DEFAULT_SERVER_ENV`.
        ui: Serve the dashboard too (at `ui_url`; ~5-10 s more at start), with PREFECT_UI_API_URL
            pointing at this server.
    """

    name = "prefect server"
    start_timeout = 90.0  # ~5-15 s on 2 cores, more on a busy machine
    stop_grace = 15.0

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        ui: bool = False,
    ) -> None:
        self.home = Path(home)
        self.ui = ui
        super().__init__(self.home / "server.log", cwd=self.home, port=port)
        self.server_env: dict[str, str] = {**DEFAULT_SERVER_ENV, **(extra_env or {})}
        self._workers: list[PrefectWorker] = []
        self._workers_started = 0

    # -- addresses -------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        """The dashboard's address (served only with `ui=True`)."""
        return f"http://{HOST}:{self.port}"

    @property
    def client_home(self) -> Path:
        return self.home / "client"

    # -- the managed process ---------------------------------------------------------
    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.client_home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [self.prefect_executable, "server", "start", "--host", HOST, "--port", str(self.port)]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        env.update(self.server_env)
        if self.ui:  # after a port change too: the UI must call this very server
            env.update(ui_server_env(self.api_url))
        env["PREFECT_HOME"] = str(self.home)
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        _no_proxy(env)
        return env

    def probe(self) -> str | None:
        """Ready once GET /api/health answers `true` (a failed start's message has server.log's tail)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.api_url}/health", timeout=2) as response:
                if response.status == 200 and json.loads(response.read() or b"null") is True:
                    return None
                return f"HTTP {response.status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        """Stop the workers this object started, then the server. Idempotent."""
        for worker in self._workers:
            worker.stop()
        self._workers.clear()
        super().stop()

    # -- clients -------------------------------------------------------------------
    @property
    def prefect_executable(self) -> str:
        """The `prefect` script of the running interpreter's environment."""
        return str(Path(sys.executable).parent / "prefect")

    def env(self, **overrides: str) -> dict[str, str]:
        """os.environ bound to this server: PREFECT_API_URL, a client PREFECT_HOME, no proxy for 127.0.0.1."""
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        env["PREFECT_API_URL"] = self.api_url
        env["PREFECT_HOME"] = str(self.client_home)
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        _no_proxy(env)
        env.update(overrides)
        return env

    def cli(
        self, *args: str, timeout: float = 120, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `<venv>/bin/prefect <args>` against this server; output captured as text.

        Raises:
            RuntimeError: `check` is true and the command exited non-zero (message has its output).
        """
        cmd = [self.prefect_executable, *args]
        proc = subprocess.run(
            cmd,
            env=self.env(),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"`prefect {' '.join(args)}` exited with {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
            )
        return proc

    def create_work_pool(self, name: str, *, type: str = "process") -> None:
        """Create a work pool (`prefect work-pool create --type <type> <name>`) unless it exists."""
        found = self.cli("work-pool", "inspect", name, check=False)
        if found.returncode != 0:
            self.cli("work-pool", "create", "--type", type, name)

    def start_worker(
        self,
        pool: str,
        *,
        cwd: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        ready_timeout: float | None = None,
    ) -> PrefectWorker:
        """Start `prefect worker start --pool <pool>` (output to home/worker-<pool>-<n>.log).

        The worker polls every second (DEFAULT_WORKER_ENV); `extra_env` adds to its environment,
        which the flow-run processes it starts inherit. stop() ends it. With `ready_timeout`, wait
        until the worker has registered with the server (its first heartbeat).

        Raises:
            RuntimeError: with `ready_timeout`, the worker exited or did not register in time
                (the message has the tail of its log).
        """
        log_path = self.home / f"worker-{pool}-{self._workers_started}.log"
        self._workers_started += 1
        worker = PrefectWorker(
            self, pool, log_path=log_path, cwd=cwd, extra_env=extra_env, wait_registered=ready_timeout is not None
        )
        self._workers.append(worker)
        worker.start(timeout=ready_timeout or 0)
        return worker

    def stop_worker(self, worker: PrefectWorker) -> None:
        """Stop one worker started by start_worker (SIGTERM, SIGKILL after 10 s). Idempotent."""
        worker.stop()
        if worker in self._workers:
            self._workers.remove(worker)

    def worker_names(self, pool: str) -> set[str]:
        """The names of the workers registered for `pool` (none if the pool does not exist)."""
        from prefect.exceptions import PrefectHTTPStatusError

        with self.client() as client:
            try:
                return {w.name for w in client.read_workers_for_work_pool(work_pool_name=pool)}
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code == 404:  # the pool does not exist yet: no worker
                    return set()
                raise

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """Bind Prefect in this process to this server (PREFECT_API_URL) for the block.

        Prefect's event and log workers are process-wide singletons bound to the API URL current
        when they start. They are drained and dropped on the way in and out, so events and logs
        go to the API they belong to (this server inside the block, the test harness outside it),
        not to whichever API happened to be current first.
        """
        from prefect.settings import PREFECT_API_URL, temporary_settings

        _drain_prefect_workers()
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            try:
                yield
            finally:
                _drain_prefect_workers()

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A `prefect.client.orchestration.SyncPrefectClient` bound to this server."""
        from prefect.client.orchestration import get_client

        with self.settings(), get_client(sync_client=True) as client:
            yield client


class PrefectWorker(ManagedProcess):
    """`prefect worker start --pool <pool>` bound to a `PrefectServer` (made by its start_worker).

    With `wait_registered`, it is ready once the server lists a worker for the pool that was not
    there before it started; otherwise as soon as it runs.
    """

    name = "prefect worker"
    listens = False
    probe_interval = 0.5  # each probe asks the server

    def __init__(
        self,
        server: PrefectServer,
        pool: str,
        *,
        log_path: Path,
        cwd: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        wait_registered: bool = False,
    ) -> None:
        super().__init__(log_path, cwd=cwd)
        self.server = server
        self.pool = pool
        self.extra_env = dict(extra_env or {})
        self.wait_registered = wait_registered
        self._before: set[str] = set()

    def describe(self) -> str:
        return f"worker for pool {self.pool!r}"

    def command(self) -> list[str]:
        return [self.server.prefect_executable, "worker", "start", "--pool", self.pool]

    def environment(self) -> dict[str, str]:
        env = self.server.env(**DEFAULT_WORKER_ENV)
        env.update(self.extra_env)
        return env

    def prepare(self) -> None:
        if self.wait_registered:
            self._before = self.server.worker_names(self.pool)

    def probe(self) -> str | None:
        if not self.wait_registered or self.server.worker_names(self.pool) - self._before:
            return None
        return "not registered with the server yet"

"""The life cycle every test component shares, and the one managed child process.

`Service` is the small interface fixtures rely on: `start()` (returns the service, no-op when it
runs), `stop()` (idempotent), `running`, and `with service:`. The FRED-compatible server and the
SMTP sink implement it with threads in this process.

`ManagedProcess` is a `Service` that is a child process (the Prefect server, each Prefect worker,
Azurite). A subclass says what to run (`command`, `environment`) and when it is ready (`probe`);
the base class does the rest the same way for all of them:

- spawn in its own process group, so stopping it stops everything it started, with stdout and
  stderr appended to `log_path` (one header line per start);
- wait until `probe()` says ready, the process exits, or the timeout passes; on a port another
  process took meanwhile, pick a free one and try again (before the first successful start only);
- on failure raise `start_error` with the tail of this start's output;
- `stop()`: SIGTERM to the group, SIGKILL after `stop_grace` seconds, idempotent; `kill()`: SIGKILL
  now, like a crash; `restart()`: stop and start on the same port;
- an atexit safety net stops whatever a crashed test session left running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import ClassVar, Self

__all__ = ["HOST", "ManagedProcess", "Service", "free_port", "tail", "tail_file"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def tail(text: str, lines: int = 40) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.strip().splitlines()[-lines:]) or "<no output>"


def tail_file(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of the file at `path`."""
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return "<no log>"


class Service:
    """Start, stop, running, and use as a context manager (`with service:` starts and stops it)."""

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        """Start and wait until ready; return self. No-op when running."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop; idempotent, and safe before start()."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_RUNNING: set[ManagedProcess] = set()


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - safety net only
    for process in list(_RUNNING):
        process.stop()


class ManagedProcess(Service):
    """A child process in its own process group, logged to a file, ready when `probe()` says so.

    Subclasses implement `command()` and usually `environment()`, `probe()` and `prepare()`.

    Args:
        log_path: File the process's output is appended to.
        cwd: Working directory of the process (None: the caller's).
        port: Port it listens on, for components that listen (`listens`); None picks a free one,
            and another one if it is taken at the first start.
    """

    #: What the error messages call it.
    name: ClassVar[str] = "process"
    #: Seconds start() waits for readiness unless told otherwise.
    start_timeout: ClassVar[float] = 60.0
    #: Seconds between SIGTERM and SIGKILL in stop().
    stop_grace: ClassVar[float] = 10.0
    #: Seconds between two probes while starting.
    probe_interval: ClassVar[float] = 0.25
    #: Whether the process listens on `port` (a free one is picked when none is given).
    listens: ClassVar[bool] = True
    #: A process that does its job and exits (a one-shot command): start() returns once it is
    #: spawned, and wait() collects its exit code.
    runs_to_completion: ClassVar[bool] = False
    #: The exception start() raises when the process does not become ready.
    start_error: ClassVar[type[Exception]] = RuntimeError

    def __init__(self, log_path: Path, *, cwd: Path | None = None, port: int | None = None) -> None:
        self.log_path = Path(log_path)
        self.cwd = cwd
        self._auto_port = port is None and self.listens
        self.port: int | None = free_port() if self._auto_port else port
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._started_once = False
        self.start_seconds: float | None = None

    # -- what a subclass says ------------------------------------------------------
    def command(self) -> list[str]:
        """The command line to run."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The process's environment (default: this process's)."""
        return dict(os.environ)

    def prepare(self) -> None:
        """Called before each start (create folders, install, remember state to compare with)."""

    def probe(self) -> str | None:
        """None when the process is ready, else why not yet (shown if it never gets ready)."""
        return None

    def describe(self) -> str:
        """The process in error messages."""
        return f"{self.name} on {HOST}:{self.port}" if self.listens else self.name

    # -- state ---------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the group leader while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.describe()} {'running' if self.running else 'stopped'} log={self.log_path}>"
        )

    def log_since_start(self) -> str:
        """Everything the process wrote since its last start (with the start's header line)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """The last `lines` lines of the whole log, for assertion messages."""
        return tail_file(self.log_path, lines)

    # -- life cycle ------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> Self:
        """Start the process and wait until `probe()` says ready. No-op if it is running.

        Args:
            timeout: Seconds to wait for readiness (None: the class's `start_timeout`).

        Raises:
            start_error: the process exited, or was not ready within `timeout`; the message
                carries the tail of what it wrote.
        """
        if self.running:
            return self
        self._reap()
        self.prepare()
        timeout = self.start_timeout if timeout is None else timeout
        began = time.monotonic()
        deadline = began + timeout
        # A port picked by free_port() can be taken before the process binds it: pick another
        # one, but only before the first successful start (a restart keeps its address).
        attempts = 3 if self._auto_port and not self._started_once else 1
        for attempt in range(attempts):
            self._spawn()
            error = self._wait_ready(deadline, timeout)
            if error is None:
                self._started_once = True
                self.start_seconds = time.monotonic() - began
                return self
            output = self.log_since_start()
            self.kill()
            if attempt + 1 < attempts and _address_in_use(output):
                self.port = free_port()
                continue
            raise self.start_error(
                f"{self.describe()} did not become ready ({error}).\n--- {self.log_path} (tail) ---\n{tail(output)}"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after `stop_grace` seconds. Idempotent."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait(timeout=10)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the process group now, like a crash. Idempotent."""
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        self._proc.wait(timeout=10)
        self._reap()

    def wait(self, timeout: float) -> int:
        """Wait for a process that runs to completion; its exit code.

        Raises:
            subprocess.TimeoutExpired: it still runs after `timeout` seconds (it is left running).
        """
        if self._proc is None:
            raise RuntimeError(f"{self.describe()} was not started")
        return self._proc.wait(timeout=timeout)

    def restart(self, timeout: float | None = None) -> Self:
        """Stop (if running) and start again with the same port and files."""
        self.stop()
        return self.start(timeout=timeout)

    # -- internals -------------------------------------------------------------------
    def _spawn(self) -> None:
        cmd = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._offset = log.tell()
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.cwd,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() and kill() reach all of it
            )
        _RUNNING.add(self)

    def _wait_ready(self, deadline: float, timeout: float) -> str | None:
        """None once `probe()` says ready while the process runs, else why not."""
        assert self._proc is not None
        if self.runs_to_completion:
            return None
        while True:
            code = self._proc.poll()
            if code is not None:
                return f"process exited with code {code}"
            reason = self.probe()
            if reason is None:
                if self._proc.poll() is None:
                    return None
                continue  # it exited meanwhile: report its exit code
            if time.monotonic() >= deadline:
                return f"not ready within {timeout:.0f} s; last probe: {reason}"
            time.sleep(self.probe_interval)

    def _signal(self, sig: int) -> None:
        """Send `sig` to the process group (its leader's pid); ignore a group that is gone."""
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _reap(self) -> None:
        """Forget a process that has exited, after killing whatever of its group outlived it."""
        if self._proc is not None and self._proc.poll() is not None:
            self._signal(signal.SIGKILL)
            self._proc = None
            _RUNNING.discard(self)


def _address_in_use(output: str) -> bool:
    return "EADDRINUSE" in output or "address already in use" in output.lower()

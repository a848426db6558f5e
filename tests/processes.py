"""Child processes of the test harnesses (Prefect server and worker, Azurite).

Each runs in its own process group, so stopping it stops everything it started, with its output
appended to a log file whose tail goes into error messages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def spawn_logged(
    cmd: Sequence[str], *, log_path: Path, cwd: Path | None, env: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `cmd` in its own process group, stdout and stderr appended to `log_path`.

    Returns:
        The process, and the log's size before this start (read the new output from there).
    """
    with open(log_path, "ab") as log:
        offset = log.tell()
        log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop_group() gets all of it
        )
    return proc, offset


def signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    """Send `sig` to the process group of `proc` (its leader's pid); ignore a group that is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_group(proc: subprocess.Popen[Any], *, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds, then reap leftovers. Idempotent."""
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
    signal_group(proc, signal.SIGKILL)  # anything of the group that outlived its leader


def tail(text: str, lines: int = 40) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.strip().splitlines()[-lines:]) or "<no output>"


def tail_file(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of the file at `path`."""
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return "<no log>"

"""Tests of tests/harness/process.py: the managed child process every real component is.

The child is a small Python HTTP server (started with `python -c`), so these tests need nothing
but the interpreter: readiness by probe, the log tail in a failed start's message, a port taken
meanwhile, stop/kill/restart and the process group.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness.process import HOST, ManagedProcess, free_port

# Serves GET / with "ok", optionally after a delay; prints a marker; `--child` also starts a
# grandchild that sleeps, to show that stop() reaches the whole process group.
SERVER = """
import http.server, os, subprocess, sys, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
if "--child" in sys.argv:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(sys.argv[-1], "w").write(str(child.pid))
if "--fail" in sys.argv:
    print("fatal: configuration is broken", flush=True)
    sys.exit(3)
time.sleep(delay)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print(f"serving on {port}", flush=True)
server.serve_forever()
"""


class TinyServer(ManagedProcess):
    name = "tiny server"
    stop_grace = 2.0
    probe_interval = 0.05

    def __init__(
        self, folder: Path, *, port: int | None = None, delay: float = 0.0, extra: tuple[str, ...] = ()
    ) -> None:
        super().__init__(folder / "tiny.log", cwd=folder, port=port)
        self.delay = delay
        self.extra = extra
        self.probes = 0

    def command(self) -> list[str]:
        return [sys.executable, "-u", "-c", SERVER, str(self.port), str(self.delay), *self.extra]

    def probe(self) -> str | None:
        self.probes += 1
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/", timeout=1) as response:
                return None if response.read() == b"ok" else "unexpected answer"
        except (urllib.error.URLError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"


def answers(port: int | None) -> bool:
    try:
        with socket.create_connection((HOST, port or 0), timeout=1):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_start_waits_for_the_probe_and_logs_the_output(tmp_path: Path) -> None:
    server = TinyServer(tmp_path, delay=0.5)
    with server:
        assert server.running
        assert answers(server.port)
        assert server.probes > 1  # it really waited for the delayed server
        assert server.start() is server  # no-op while running
    assert not server.running
    log = (tmp_path / "tiny.log").read_text()
    assert f"serving on {server.port}" in log
    assert log.startswith("--- ")  # the header line of the start


def test_a_failed_start_raises_with_the_tail_of_its_output(tmp_path: Path) -> None:
    server = TinyServer(tmp_path, extra=("--fail",))
    with pytest.raises(RuntimeError) as raised:
        server.start(timeout=10)
    message = str(raised.value)
    assert f"tiny server on {HOST}:{server.port} did not become ready (process exited with code 3)" in message
    assert "fatal: configuration is broken" in message
    assert not server.running


def test_a_start_that_is_never_ready_gives_up_at_the_timeout(tmp_path: Path) -> None:
    server = TinyServer(tmp_path, delay=30)
    with pytest.raises(RuntimeError, match=r"not ready within 1 s; last probe: URLError"):
        server.start(timeout=1)
    assert not server.running


def test_a_port_taken_before_the_first_start_is_replaced_by_a_free_one(tmp_path: Path) -> None:
    server = TinyServer(tmp_path)
    with socket.socket() as squatter:
        squatter.bind((HOST, server.port))
        squatter.listen()
        taken = server.port
        with server:
            assert server.port != taken
            assert answers(server.port)


def test_a_given_port_that_is_taken_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = TinyServer(tmp_path, port=port)
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start(timeout=10)
    assert server.port == port


def test_kill_is_immediate_and_restart_keeps_the_port(tmp_path: Path) -> None:
    server = TinyServer(tmp_path).start()
    port = server.port
    server.kill()
    assert not server.running and not answers(port)
    server.kill()  # idempotent
    server.restart()
    assert server.port == port and answers(port)
    server.stop()
    server.stop()  # idempotent
    assert not server.running


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    server = TinyServer(tmp_path, extra=("--child", str(pid_file))).start()
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)
    server.stop()
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_stop_sends_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    class Stubborn(TinyServer):
        def command(self) -> list[str]:
            code = (
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ign' + 'oring', flush=True); time.sleep(600)"
            )
            return [sys.executable, "-u", "-c", code]

        def probe(self) -> str | None:
            # "ignoring" is not in the log's header line (the command), only in the output.
            return None if "ignoring" in self.log_since_start() else "SIGTERM not ignored yet"

    server = Stubborn(tmp_path).start()
    pid = server.pid
    assert pid is not None
    started = time.monotonic()
    server.stop()
    assert not alive(pid)
    assert time.monotonic() - started >= Stubborn.stop_grace  # SIGTERM first, SIGKILL only after the grace


def test_free_port_is_bindable() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, free_port()))


def test_log_tail_shows_the_last_lines(tmp_path: Path) -> None:
    server = TinyServer(tmp_path)
    assert server.log_tail() == "<no log>"
    with server:
        pass
    assert server.log_tail(1) == f"serving on {server.port}"

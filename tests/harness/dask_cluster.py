"""A real Dask cluster on 127.0.0.1 for the tests and the scaling benchmark: `dask scheduler` and `dask worker`s.

Each is a `ManagedProcess` (tests/harness/process.py): its own process group and log, ready when it
says so, stopped with SIGTERM then SIGKILL, and `kill()` ends it at once like a crashed machine.

    cluster = DaskCluster(tmp_path, workers=2, env=prefect_server.env(PYTHONPATH=repo)).start()
    cluster.address                  # tcp://127.0.0.1:<port>, the training flow's dask_address
    cluster.worker_pids()            # {worker name: pid}; with --no-nanny the pid runs the tasks
    cluster.workers[0].kill()        # a worker dies (its running task is rescheduled by the scheduler)
    cluster.stop()

Workers run with one thread (one model group at a time each) and without a nanny (the worker's pid is
the process that runs the tasks, and killing it kills the worker, not a child the nanny restarts).
Their environment is what the flow's tasks need there: the project importable (PYTHONPATH) and
PREFECT_API_URL of the Prefect server the flow runs against.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from tests.harness.process import HOST, ManagedProcess, Service

__all__ = ["DaskCluster", "DaskScheduler", "DaskWorker"]


def _dask_executable() -> str:
    return str(Path(sys.executable).parent / "dask")


class DaskScheduler(ManagedProcess):
    """`dask scheduler` on 127.0.0.1, without its dashboard; ready once it accepts connections."""

    name = "dask scheduler"
    start_timeout = 60.0

    def __init__(self, log_path: Path, *, port: int | None = None, env: Mapping[str, str] | None = None) -> None:
        super().__init__(log_path, port=port)
        self._env = dict(env) if env is not None else None

    @property
    def address(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [_dask_executable(), "scheduler", "--host", HOST, "--port", str(self.port), "--no-dashboard"]

    def environment(self) -> dict[str, str]:
        return dict(self._env) if self._env is not None else super().environment()

    def probe(self) -> str | None:
        try:
            with socket.create_connection((HOST, self.port or 0), timeout=1):
                pass
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if "Scheduler at:" in self.log_since_start() else "no 'Scheduler at:' line yet"


class DaskWorker(ManagedProcess):
    """`dask worker <scheduler> --nthreads 1 --no-nanny --name <name>`; ready once registered with the scheduler."""

    name = "dask worker"
    start_timeout = 60.0

    def __init__(
        self, scheduler: DaskScheduler, worker_name: str, *, log_path: Path, env: Mapping[str, str], cwd: Path | None
    ) -> None:
        super().__init__(log_path, cwd=cwd)
        self.scheduler = scheduler
        self.worker_name = worker_name
        self._env = dict(env)

    @property
    def address(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    def describe(self) -> str:
        return f"dask worker {self.worker_name} on {HOST}:{self.port}"

    def command(self) -> list[str]:
        return [
            _dask_executable(),
            "worker",
            self.scheduler.address,
            "--host",
            HOST,
            "--worker-port",
            str(self.port),
            "--nthreads",
            "1",
            "--no-nanny",
            "--no-dashboard",
            "--name",
            self.worker_name,
            "--death-timeout",
            "60",
        ]

    def environment(self) -> dict[str, str]:
        return dict(self._env)

    def probe(self) -> str | None:
        return None if "Registered to:" in self.log_since_start() else "not registered with the scheduler yet"


class DaskCluster(Service):
    """A scheduler and `workers` workers on 127.0.0.1, logs under `home`.

    Args:
        home: Folder of the logs (scheduler.log, worker-<name>.log).
        workers: How many workers.
        env: The workers' environment (PYTHONPATH with the repository, PREFECT_API_URL, ...).
        cwd: The workers' working directory.
    """

    def __init__(self, home: Path, *, workers: int = 2, env: Mapping[str, str], cwd: Path | None = None) -> None:
        self.home = Path(home)
        self.scheduler = DaskScheduler(self.home / "scheduler.log", env=env)
        self.workers = [
            DaskWorker(self.scheduler, f"worker-{i}", log_path=self.home / f"worker-{i}.log", env=env, cwd=cwd)
            for i in range(1, workers + 1)
        ]

    @property
    def address(self) -> str:
        """The scheduler's address, what `dask_address` takes."""
        return self.scheduler.address

    @property
    def running(self) -> bool:
        return self.scheduler.running and all(w.running for w in self.workers)

    def start(self) -> Self:
        """Start the scheduler, then every worker that does not run (a killed one again)."""
        self.scheduler.start()
        for worker in self.workers:
            worker.start()
        return self

    def stop(self) -> None:
        """Workers first, then the scheduler. Idempotent."""
        for worker in self.workers:
            worker.stop()
        self.scheduler.stop()

    def worker_pids(self) -> dict[str, int]:
        """{worker name: pid} of the workers that run."""
        return {w.worker_name: w.pid for w in self.workers if w.pid is not None}

"""Child processes: one per measurement, in its own process group, with its own log, result and peak RSS.

The parent side: the benchmark's Prefect server (the project's test harness, `tests.harness.prefect_server`),
each child's environment, starting, awaiting and stopping the children. The child side is this
module run as ``python -m bench.processes ROLE SPEC.json``: it imports only the standard library,
then the measurement named in the spec (``module:function``), which imports its libraries after
starting its own clock; it adds its peak RSS (its VmHWM at its end, `bench.results.peak_rss_mb`)
unless the measurement reported one (a measurement of several processes), and its interpreter
(`python`: which environment it ran in), and writes its result JSON.

A measurement is a function ``measure(spec) -> dict`` in a module of bench/; adding one is a module
and a `Measurement` in bench/run.py, nothing here.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.results import peak_rss_mb, to_json
from tests.harness.process import ManagedProcess

if TYPE_CHECKING:  # pragma: no cover
    from tests.harness.prefect_server import PrefectServer

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 10.0

# The harness's server defaults, minus what would run beside the measured flows: schedules and
# late-run marking serve deployments, which the benchmark does not use.
_SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
}
# Never passed to a child (PrefectServer.env() already drops a developer's Prefect server and profile).
_SCRUBBED_ENV = ("AZURE_STORAGE_CONNECTION_STRING",)

Measure = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Measurement:
    """One child of a run.

    Attributes:
        role: Names its log, spec and result files, and its key in the report's JSON.
        measure: ``measure(spec) -> result``, a module-level function of bench/ run in the child.
        prefect_api: Whether the child gets the benchmark's Prefect server as `PREFECT_API_URL`.
        phase: Children of a later phase start only when every child of the earlier ones is done
            (they use what those left, e.g. a trained model); within a phase `--parallel` applies.
        environment: The venv the child runs in (`bench.environments.RECIPES`: a design's deployed
            packages), or None for this interpreter's.
    """

    role: str
    measure: Measure
    prefect_api: bool = False
    phase: int = 1
    environment: str | None = None


class Child(ManagedProcess):
    """One measurement's child: `python -m bench.processes ROLE SPEC`, run to completion."""

    listens = False
    runs_to_completion = True
    stop_grace = STOP_GRACE_SECONDS

    def __init__(
        self,
        role: str,
        spec_path: Path,
        result_path: Path,
        *,
        log_path: Path,
        env: Mapping[str, str],
        python: str = sys.executable,
    ) -> None:
        super().__init__(log_path, cwd=REPO_ROOT)
        self.name = f"the {role} child"
        self.role, self.spec_path, self.result_path, self._env = role, spec_path, result_path, dict(env)
        self.python = python
        self.started = time.monotonic()

    def command(self) -> list[str]:
        return [self.python, "-m", "bench.processes", self.role, str(self.spec_path)]

    def environment(self) -> dict[str, str]:
        return dict(self._env)


@contextmanager
def prefect_server(workdir: Path, *, timeout: float) -> Iterator[PrefectServer]:
    """A `prefect server start` on 127.0.0.1 (tests/harness/prefect_server.py) while the block runs.

    Its own home under `workdir`, no UI, no scheduler and no late-run service. Started before the
    first child and waited for, so its start-up is in no measured number; the project child talks to
    it as a deployed flow talks to its server, and does not load Prefect's server code (an ephemeral
    API in the flow's process would, adding about 80 MB to its RSS).

    Raises:
        BenchError: it did not answer /api/health within `timeout` seconds (with its log's end).
    """
    from tests.harness.prefect_server import PrefectServer

    server = PrefectServer(workdir / "prefect-server", extra_env=_SERVER_ENV)
    try:
        server.start(timeout=timeout)
    except RuntimeError as exc:
        raise BenchError(f"the Prefect server for the project's flows did not start: {exc}") from None
    try:
        yield server
    finally:
        server.stop()


def child_env(
    server: PrefectServer, *, fred_url: str, api_key: str, prefect_home: Path, prefect_api: bool
) -> dict[str, str]:
    """Environment of a child: the local FRED server, an isolated Prefect home, the benchmark's
    Prefect server if `prefect_api`, nothing of a developer's accounts."""
    env = server.env(
        FRED_API_KEY=api_key,
        FRED_API_URL=fred_url,
        PREFECT_HOME=str(prefect_home),
        TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    for name in _SCRUBBED_ENV:
        env.pop(name, None)
    if not prefect_api:
        env.pop("PREFECT_API_URL", None)
    return env


def start_child(
    measurement: Measurement,
    spec: Mapping[str, Any],
    *,
    workdir: Path,
    env: Mapping[str, str],
    python: str = sys.executable,
) -> Child:
    """Start ``python -m bench.processes ROLE SPEC`` in its own process group, logging to `workdir`."""
    role, measure = measurement.role, measurement.measure
    result_path = workdir / f"{role}-result.json"
    spec_path = workdir / f"{role}-spec.json"
    spec_path.write_text(
        json.dumps(
            {**spec, "measure": f"{measure.__module__}:{measure.__qualname__}", "result_path": str(result_path)},
            indent=2,
        )
    )
    child = Child(role, spec_path, result_path, log_path=workdir / f"{role}.log", env=env, python=python)
    return child.start()


def finish_child(child: Child, *, timeout: float) -> dict[str, Any]:
    """Wait for a child (at most `timeout` s from its start), end its group, return its result.

    Raises:
        BenchError: the child failed or timed out (with the end of its log).
    """
    try:
        code = child.wait(timeout=max(0.0, timeout - (time.monotonic() - child.started)))
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"the {child.role} child ran longer than {timeout:.0f} s and was stopped; end of its log:\n"
            f"{child.log_tail(40)}"
        ) from None
    finally:
        child.stop()  # and anything it left behind
    if code != 0:
        raise BenchError(
            f"the {child.role} child failed (exit code {code}); end of its log "
            f"({child.log_path}):\n{child.log_tail(40)}"
        )
    result: dict[str, Any] = json.loads(child.result_path.read_text())
    return result


def run_children(
    measurements: Sequence[Measurement],
    spec: Mapping[str, Any],
    *,
    workdir: Path,
    env_for: Callable[[Measurement, Path], Mapping[str, str]],
    timeout: float,
    parallel: bool,
    say: Callable[[str], None],
    interpreters: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run each measurement in its own child, one after the other (or a phase at once if `parallel`).

    Every child gets `spec` plus its own folder ``workdir/<role>`` (`workdir` in its spec), the
    folder of all the children (`children_root`, where a later phase finds an earlier one's files)
    and the environment `env_for(measurement, folder)`; it runs in `interpreters[measurement.environment]`
    (this interpreter when the measurement names none). Whatever happens (a failure, a timeout, Ctrl-C),
    every child's process group is ended before this returns or raises.

    Returns:
        role -> the child's result, in the order run.

    Raises:
        BenchError: a child failed or timed out.
    """
    results: dict[str, dict[str, Any]] = {}
    children: list[Child] = []
    try:
        for phase in sorted({m.phase for m in measurements}):
            started: list[Child] = []
            for measurement in (m for m in measurements if m.phase == phase):
                folder = workdir / measurement.role
                folder.mkdir()
                where = f" in the {measurement.environment!r} environment" if measurement.environment else ""
                say(
                    f"{measurement.role}: running in a child process{where} "
                    f"(log: {folder / (measurement.role + '.log')})"
                )
                child = start_child(
                    measurement,
                    {**spec, "workdir": str(folder), "children_root": str(workdir)},
                    workdir=folder,
                    env=env_for(measurement, folder),
                    python=_interpreter(measurement, interpreters or {}),
                )
                children.append(child)
                started.append(child)
                if not parallel:
                    results[child.role] = finish_child(child, timeout=timeout)
                    say(f"{child.role}: done in {time.monotonic() - child.started:.0f} s")
            if parallel:
                for child in started:
                    results[child.role] = finish_child(child, timeout=timeout)
                    say(f"{child.role}: done in {time.monotonic() - child.started:.0f} s")
    finally:
        for child in children:
            child.stop()
    return results


def _interpreter(measurement: Measurement, interpreters: Mapping[str, str]) -> str:
    if measurement.environment is None:
        return sys.executable
    if measurement.environment not in interpreters:
        raise BenchError(f"the {measurement.role} child needs the {measurement.environment!r} environment, not made")
    return interpreters[measurement.environment]


def child_main(argv: Sequence[str]) -> int:
    """Inside a child: run the measurement its spec names, add its peak RSS, write its result JSON."""
    if len(argv) != 2:
        print("usage: python -m bench.processes ROLE SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    module, _, name = spec["measure"].partition(":")
    measure: Measure = getattr(importlib.import_module(module), name)
    result = measure(spec)
    result.setdefault("peak_rss_mb", peak_rss_mb())  # a measurement of several processes sets its own
    result["python"] = sys.executable  # which environment it ran in
    Path(spec["result_path"]).write_text(to_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))

"""The scaling benchmark of issue 14: N model groups trained in one process, then on a 2-worker Dask cluster.

    python -m bench.scaling [--groups 10] [--series-per-group 4] [--epochs 3] [--setting NAME=VALUE]
                            [--out bench/results]

Every mode calls the public `train_model` flow on the demo source (no FRED key: the demo source
invents values for the made-up series ids DEMO01_1, DEMO01_2, ...), each in its own child process
(bench/processes.py), all against one real local Prefect server (the one bench/run.py starts):

1. `threads`: no `dask_address`, so Prefect's default task runner, a `ThreadPoolTaskRunner` of the
   flow's process with no thread limit: every group is submitted at once and the groups train
   concurrently in threads of that one process (TensorFlow releases the GIL in its kernels).
2. `one-at-a-time`: the same groups, one `train_model` run per group, one after the other, in one
   process: the plain sequential cost, and the clean time of one group. (Limiting the default
   runner to one thread is no way to get it: a group's task submits its fetch tasks to the same
   runner and would wait for the thread it holds itself; read from the code, not tried.)
3. `dask`: `dask_address` of a real cluster started here with the test harness
   (tests/harness/dask_cluster.py): a `dask scheduler` and two `dask worker`s on 127.0.0.1, one
   thread each, no nanny. Before the run the workers import TensorFlow and Keras (a running
   cluster has them loaded), so that no mode's clock includes that import. The flow's own process
   only submits and publishes here: it never loads TensorFlow.

Reported: each mode's wall time (the `train_model` call(s), after the child's imports), the speed-up
of the Dask cluster over each in-process mode, the peak RSS of each flow process (its VmHWM) and of
each Dask worker (the kernel's VmHWM of the worker's pid, read after the run), the `train-group`
task runs' durations (Prefect API) and the FRED requests a group would make. The demo source makes
no HTTP request: the count is what the FRED source needs, one request per series per fetch
(tasks/adapters/fred.py), each taking a slot of the global rate limit.

Prints a table and writes the same numbers as JSON to `--out/scaling-<UTC time>.json` (git-ignored).
docs/scaling.md has a measured run and the projection made from it.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config import build_settings, non_default_settings
from bench.errors import BenchError
from bench.processes import REPO_ROOT, Measurement, prefect_server, run_children
from bench.report import load_average, machine_info, run_main
from bench.results import number, peak_rss_of_pid

if TYPE_CHECKING:  # pragma: no cover
    from tasks.core.settings import Settings

RESULT_FORMAT = "market-forecast-bench-scaling/1"
AS_OF = date(2025, 6, 30)
DEFAULT_GROUPS = 10
DEFAULT_SERIES_PER_GROUP = 4
DASK_WORKERS = 2
CHILD_TIMEOUT_SECONDS = 1200.0
PREFECT_SERVER_TIMEOUT_SECONDS = 300.0
# Modest settings, so that three modes of ten groups take a few minutes on 2 cores (the project's
# defaults are 20 epochs of LSTM(64) from 2020, a backtest origin every session).
MODEST_SETTINGS = (
    'history_start="2023-01-01"',
    "epochs=3",
    "lstm_units=16",
    "backtest.origin_step=5",
)
# The training flow's own task runs, outside the groups (the rest of its wall time).
FLOW_TASKS = (
    "resolve-storage",
    "read-champion-card",
    "claim-run-folder",
    "resolve-data-source",
    "check-champion-unchanged",
    "promote-champion",
    "render-charts",
    "publish-run",
    "post-run-artifacts",
    "remove-incomplete-folders",
)
# The FRED source's environment is never passed on: every mode runs on the demo source.
_FRED_ENV = ("FRED_API_KEY", "FRED_API_URL")


# ---------------------------------------------------------------- the children


def measure_threads(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Child: every group in one `train_model` run on Prefect's default task runner (threads of this process)."""
    return _train(spec, dask_address=None, one_at_a_time=False)


def measure_one_at_a_time(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Child: one `train_model` run per group, one after the other, in this process."""
    return _train(spec, dask_address=None, one_at_a_time=True)


def measure_dask(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Child: every group in one `train_model` run on the Dask cluster at spec["dask_address"]."""
    return _train(spec, dask_address=spec["dask_address"], one_at_a_time=False)


def _train(spec: Mapping[str, Any], *, dask_address: str | None, one_at_a_time: bool) -> dict[str, Any]:
    started = time.perf_counter()
    if dask_address is None:
        # The flow imports TensorFlow lazily: import it before the clock starts. On a cluster the
        # flow's process never trains, so it never loads TensorFlow (its RSS says what it needs).
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

    from bench.project import read_task_runs
    from bench.results import peak_rss_mb
    from flows.train_model import train_model
    from tasks.core.settings import Settings

    import_seconds = time.perf_counter() - started
    rss_after_imports = peak_rss_mb()
    settings = Settings.model_validate(spec["settings"])
    as_of = date.fromisoformat(spec["as_of"])
    output_dir = Path(spec["workdir"]) / "output"
    runs = [settings] if not one_at_a_time else [_only_group(settings, name) for name in settings.model_groups]

    group_seconds: dict[str, float] = {}
    group_phase_seconds = 0.0
    flow_task_seconds: dict[str, float] = {}
    ran_in: dict[str, str] = {}
    t0 = time.perf_counter()
    for run_settings in runs:
        state = train_model(
            as_of=as_of,
            settings=run_settings,
            output_dir=str(output_dir),
            dask_address=dask_address,
            return_state=True,
        )
        summary = state.result()
        if summary.get("data_source") != "demo":
            raise RuntimeError(f"the training flow used {summary.get('data_source')!r} data, not the demo source")
        for name, group in summary["groups"].items():
            ran_in[name] = group["ran_in"]
        task_runs = read_task_runs(state.state_details.flow_run_id)
        for row in task_runs:
            if row["name"] in FLOW_TASKS:
                flow_task_seconds[row["name"]] = flow_task_seconds.get(row["name"], 0.0) + row["seconds"]
        groups = [row for row in task_runs if row["name"].startswith("train-group-")]
        for row in groups:
            group_seconds[row["name"].removeprefix("train-group-")] = row["seconds"]
        # From the first group's start to the last group's end: the rest of the wall time is the
        # flow's own work (storage, champions, submitting, publishing) and its API round trips.
        group_phase_seconds += max(row["end"] for row in groups) - min(row["start"] for row in groups)
    wall_seconds = time.perf_counter() - t0
    return {
        "flow_runs": len(runs),
        "wall_seconds": wall_seconds,
        "import_seconds": import_seconds,
        "rss_after_imports_mb": rss_after_imports,
        "group_seconds": group_seconds,
        "group_phase_seconds": group_phase_seconds,
        "flow_task_seconds": flow_task_seconds,
        "ran_in": ran_in,
    }


def _only_group(settings: Settings, name: str) -> Settings:
    """The settings with one of their groups only (series = that group's)."""
    data = settings.model_dump(mode="json")
    data["groups"] = {name: data["groups"][name]}
    data["series"] = None
    return type(settings).model_validate(data)


MEASUREMENTS = (
    Measurement("threads", measure_threads, prefect_api=True),
    Measurement("one-at-a-time", measure_one_at_a_time, prefect_api=True),
    Measurement("dask", measure_dask, prefect_api=True),
)


# ---------------------------------------------------------------- the parent


def demo_groups(groups: int, series_per_group: int) -> dict[str, list[str]]:
    """`groups` groups g01, g02, ... of made-up series ids DEMO01_1, DEMO01_2, ... (the demo source invents them)."""
    return {f"g{g:02d}": [f"DEMO{g:02d}_{s}" for s in range(1, series_per_group + 1)] for g in range(1, groups + 1)}


def import_training_libraries() -> str:
    """Run on each Dask worker before the measured run: the imports a long-running worker has done."""
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import flows.train_model  # noqa: F401

    return "ok"


def run_scaling(args: argparse.Namespace) -> dict[str, Any]:
    """Start the Prefect server and the Dask cluster, run the three modes, build the report.

    Raises:
        BenchError: bad settings, a server or the cluster did not start, or a child failed.
    """
    from tests.harness.dask_cluster import DaskCluster

    groups = demo_groups(args.groups, args.series_per_group)
    overrides = ["series=null", f"groups={json.dumps(groups)}", *MODEST_SETTINGS]
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    settings = build_settings(series=None, epochs=None, history_start=None, overrides=[*overrides, *args.setting])
    machine = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="market-forecast-scaling-"))
    spec: dict[str, Any] = {"settings": settings.model_dump(mode="json"), "as_of": AS_OF.isoformat()}
    try:
        with prefect_server(workdir, timeout=PREFECT_SERVER_TIMEOUT_SECONDS) as prefect:
            _say(f"Prefect server ready at {prefect.api_url} in {prefect.start_seconds:.0f} s")
            worker_env = prefect.env(PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
            for name in _FRED_ENV:
                worker_env.pop(name, None)
            cluster = DaskCluster(workdir / "dask-cluster", workers=DASK_WORKERS, env=worker_env, cwd=REPO_ROOT)
            try:
                t0 = time.monotonic()
                try:
                    cluster.start()
                except RuntimeError as exc:
                    raise BenchError(f"the Dask cluster did not start: {exc}") from None
                warm = _warm_workers(cluster.address)
                _say(
                    f"Dask cluster at {cluster.address}: {DASK_WORKERS} workers, started and warmed "
                    f"in {time.monotonic() - t0:.0f} s ({warm})"
                )
                spec["dask_address"] = cluster.address
                results = run_children(
                    MEASUREMENTS,
                    spec,
                    workdir=workdir,
                    env_for=lambda m, home: _child_env(prefect.env(PREFECT_HOME=str(home / "prefect-home"))),
                    timeout=args.timeout,
                    parallel=False,
                    say=_say,
                )
                workers = {
                    name: {"pid": pid, "peak_rss_mb": peak_rss_of_pid(pid)}
                    for name, pid in cluster.worker_pids().items()
                }
            finally:
                cluster.stop()
    finally:
        if args.keep_work:
            _say(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["load_after"] = load_average()
    config = {
        "groups": len(groups),
        "series_per_group": args.series_per_group,
        "model_groups": groups,
        "as_of": AS_OF.isoformat(),
        "data_source": "demo",
        "dask_workers": DASK_WORKERS,
        "dask_threads_per_worker": 1,
        "settings": settings.model_dump(mode="json"),
        "non_default_settings": {
            k: v for k, v in non_default_settings(settings).items() if k != "series" and not k.startswith("groups.")
        },
        "command": " ".join(["python -m bench.scaling", *args.argv]),
    }
    return build_scaling_report(results, workers=workers, config=config, machine=machine)


def _warm_workers(address: str) -> str:
    from distributed import Client

    with Client(address, timeout=60) as client:  # type: ignore[no-untyped-call]
        answers = client.run(import_training_libraries)
    return f"training libraries imported on {len(answers)} worker(s)"


def _child_env(env: dict[str, str]) -> dict[str, str]:
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in _FRED_ENV:
        env.pop(name, None)
    return env


def build_scaling_report(
    results: Mapping[str, Mapping[str, Any]],
    *,
    workers: Mapping[str, Mapping[str, Any]],
    config: Mapping[str, Any],
    machine: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON document: each mode's wall time and peak RSS, the speed-ups, each worker, what a group costs."""
    walls = {role: number(result.get("wall_seconds")) for role, result in results.items()}
    alone = list(results.get("one-at-a-time", {}).get("group_seconds", {}).values())
    series_per_group = int(config["series_per_group"])
    # Which worker trained which group ('pid <pid> on <host>').
    groups_by_pid: dict[int, list[str]] = {}
    for group, where in sorted(results.get("dask", {}).get("ran_in", {}).items()):
        groups_by_pid.setdefault(int(str(where).split()[1]), []).append(group)
    return {
        "format": RESULT_FORMAT,
        "created_utc": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "config": dict(config),
        "machine": dict(machine),
        "modes": {
            role: {
                "wall_seconds": walls[role],
                "flow_runs": result.get("flow_runs"),
                "flow_process_peak_rss_mb": number(result.get("peak_rss_mb")),
                "flow_process_rss_after_imports_mb": number(result.get("rss_after_imports_mb")),
                "group_phase_seconds": number(result.get("group_phase_seconds")),
                "group_seconds": dict(result.get("group_seconds", {})),
            }
            for role, result in results.items()
        },
        "speedup": {
            "threads_over_dask": walls["threads"] / walls["dask"],
            "one_at_a_time_over_dask": walls["one-at-a-time"] / walls["dask"],
        },
        "dask_workers": {
            name: {
                **dict(worker),
                "groups": groups_by_pid.get(int(worker["pid"]), []),
            }
            for name, worker in workers.items()
        },
        "per_group": {
            "seconds_one_at_a_time_median": statistics.median(alone) if alone else None,
            "seconds_one_at_a_time_mean": statistics.fmean(alone) if alone else None,
            "wall_seconds_per_group": {role: wall / int(config["groups"]) for role, wall in walls.items()},
            "fred_requests_per_training_run": series_per_group,
            "fred_requests_per_daily_run": series_per_group,
            "fred_requests_note": (
                "counted, not measured: the demo source makes no HTTP request; the FRED source makes one "
                "observations request per series per fetch, and a group fetches once per training run and once "
                "per daily run"
            ),
        },
        **{role: dict(result) for role, result in results.items()},
    }


def format_scaling_report(report: Mapping[str, Any]) -> str:
    """The printed table."""
    config, machine, modes = report["config"], report["machine"], report["modes"]
    per_group, speedup = report["per_group"], report["speedup"]
    settings = config["settings"]
    lines = [
        f"Scaling: {config['groups']} model groups of {config['series_per_group']} demo series, the train_model flow, "
        "a real local Prefect server",
        f"settings  history from {settings['history_start']} to as_of {config['as_of']}, {settings['epochs']} epochs, "
        f"LSTM({settings['lstm_units']}), backtest origin every {settings['backtest']['origin_step']} sessions; "
        f"non-default: {config['non_default_settings']}",
        f"machine   {machine['cpu_count']} CPUs (load {machine.get('load_before', 'n/a')} before, "
        f"{machine.get('load_after', 'n/a')} after), Python {machine['python']}, "
        f"TensorFlow {machine.get('tensorflow')}, Prefect {machine.get('prefect')},",
        f"          code HEAD {machine.get('git_commit')}, sources sha256 {machine.get('code_sha256')}",
        "",
    ]
    row = "{:<52} {:>9} {:>10} {:>14} {:>13}"
    lines.append(row.format("mode", "wall s", "s / group", "group phase s", "flow RSS MB"))
    labels = {
        "threads": "default runner: groups in threads of 1 process",
        "one-at-a-time": "one flow run per group, one after the other",
        "dask": f"Dask: {config['dask_workers']} workers x 1 thread (flow process)",
    }
    for role, mode in modes.items():
        lines.append(
            row.format(
                labels.get(role, role),
                _num(mode["wall_seconds"], 1),
                _num(per_group["wall_seconds_per_group"][role], 1),
                _num(mode["group_phase_seconds"], 1),
                _num(mode["flow_process_peak_rss_mb"], 0),
            )
        )
    for name, worker in report["dask_workers"].items():
        lines.append(
            row.format(f"  Dask {name} (pid {worker['pid']}), peak RSS", "", "", "", _num(worker["peak_rss_mb"], 0))
            + f"   groups: {', '.join(worker['groups']) or 'none'}"
        )
    lines += [
        "(group phase: first train-group task run's start to the last one's end, summed over flow runs; the rest of "
        "the wall time is the flow's own work and its Prefect API round trips)",
        "",
        f"speed-up of the Dask cluster: {_num(speedup['threads_over_dask'], 2)}x over the default runner, "
        f"{_num(speedup['one_at_a_time_over_dask'], 2)}x over one group at a time",
        "one group alone (train-group task run, Prefect API): "
        f"median {_num(per_group['seconds_one_at_a_time_median'], 1)} s, "
        f"mean {_num(per_group['seconds_one_at_a_time_mean'], 1)} s",
        f"FRED requests per group: {per_group['fred_requests_per_training_run']} per training run, "
        f"{per_group['fred_requests_per_daily_run']} per daily run ({per_group['fred_requests_note']})",
    ]
    for role in modes:
        seconds = report[role].get("group_seconds") or {}
        if seconds:
            shown = ", ".join(f"{g} {_num(s, 1)}" for g, s in sorted(seconds.items()))
            lines.append(f"train-group seconds, {role}: {shown}")
    for role in modes:
        seconds = report[role].get("flow_task_seconds") or {}
        if seconds:
            shown = ", ".join(f"{name} {_num(s, 1)}" for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]))
            lines.append(f"the flow's own task runs, seconds, {role}: {shown}")
    return "\n".join(lines)


def _num(value: object, digits: int) -> str:
    n = number(value)
    return f"{n:,.{digits}f}" if math.isfinite(n) else "n/a"


def _say(message: str) -> None:
    print(f"[bench.scaling] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options of the scaling benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling",
        description=(
            "Train N model groups in one process (concurrently in threads, then one at a time) and on a "
            "2-worker Dask cluster (see docs/scaling.md)."
        ),
    )
    parser.add_argument("--groups", type=int, default=DEFAULT_GROUPS, help=f"model groups (default: {DEFAULT_GROUPS})")
    parser.add_argument(
        "--series-per-group",
        type=int,
        default=DEFAULT_SERIES_PER_GROUP,
        help=f"demo series per group (default: {DEFAULT_SERIES_PER_GROUP})",
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: 3)")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override one project setting (dotted names, JSON values); applied after {', '.join(MODEST_SETTINGS)}",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench" / "results", help="folder of the JSON (default: bench/results)"
    )
    parser.add_argument(
        "--timeout", type=float, default=CHILD_TIMEOUT_SECONDS, help="seconds each mode may run (default: 1200)"
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary folder (logs, outputs)")
    args = parser.parse_args(argv)
    if args.groups < 1 or args.series_per_group < 1:
        parser.error("--groups and --series-per-group must be at least 1")
    args.argv = list(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2 on a benchmark error, 130 when interrupted)."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_main(
        lambda: run_scaling(args),
        format_scaling_report,
        out=args.out,
        prefix="scaling",
        stopped="children, cluster and server stopped",
    )


if __name__ == "__main__":
    # Run as bench.scaling, not __main__: the children and the Dask workers find the functions by module name.
    from bench.scaling import main as scaling_main

    sys.exit(scaling_main())

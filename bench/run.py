"""The benchmark of issue 6 from the command line: the project's pipeline against the seed design.

    python -m bench.run --data ../shared/data/fred [--out bench/results] [--epochs 20] [--series SP500 VIXCLS]

This module only wires the concerns (bench/README.md says what each measures):

1. `config`: the project's Settings from the options.
2. `data`: serve the CSV folder through the local FRED-compatible server, fetch it once, align it.
3. `processes`: start the Prefect server, then run each `Measurement` in its own child process:
   `seed` (the seed design, `bench/seed.py`), then `project` (the flows, `bench/project.py`), then
   each design's daily run alone in a fresh process (`bench/daily.py`); each design's children in a
   venv of the packages it is deployed with (`bench/environments.py`, made once per lock change).
4. `targets` and `report`: ratios, PASS/MISS, the printed table and the JSON in `--out`.

Timings are wall-clock on a possibly shared machine: compare the ratios of one run, not absolute
seconds across runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bench.config import build_settings, non_default_settings
from bench.daily import (
    FLOOR_ROLE,
    FLOW_RUNS_ROLE,
    create_daily_flow_runs,
    measure_prefect_floor,
    measure_project_daily,
    measure_project_daily_engine,
    measure_seed_daily,
)
from bench.data import align_levels, check_series, fetch_series, serve_folder, summarize, write_levels_csv
from bench.environments import ensure_environments
from bench.peers import measure_peers
from bench.processes import REPO_ROOT, Measurement, child_env, prefect_server, run_children
from bench.project import measure_project
from bench.report import build_report, format_report, load_average, machine_info, run_main
from bench.seed import measure_seed

LOOKBACK_SESSIONS = 365
CHILD_TIMEOUT_SECONDS = 600.0
PREFECT_SERVER_TIMEOUT_SECONDS = 300.0

# One child each, run in this order; each result is the report's JSON key of its role.
MEASUREMENTS = (
    # Each design in the packages it is deployed with (bench/environments.py), not in this venv.
    Measurement("seed", measure_seed, environment="training"),
    Measurement("project", measure_project, prefect_api=True, environment="training"),
    # Issue 12: what a user would pick instead, on the project's own test origins.
    Measurement("peers", measure_peers),
    # Phases 2-3: each design's daily run on its own, in a fresh process, on the models phase 1 left;
    # the project's as a worker starts a flow run of its deployment (bench/daily.py).
    Measurement("seed-daily", measure_seed_daily, phase=2, environment="training"),
    Measurement(FLOW_RUNS_ROLE, create_daily_flow_runs, prefect_api=True, phase=2),
    Measurement("project-daily", measure_project_daily, prefect_api=True, phase=3, environment="daily"),
    Measurement("project-daily-engine", measure_project_daily_engine, prefect_api=True, phase=3, environment="daily"),
    Measurement(FLOOR_ROLE, measure_prefect_floor, prefect_api=True, phase=3, environment="daily"),
)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the data, run every measurement in its child, build the report. Cleans up whatever happens.

    Raises:
        BenchError: bad input, or a child failed.
    """
    folder = Path(args.data).expanduser().resolve()
    settings = build_settings(
        series=args.series, epochs=args.epochs, history_start=args.history_start, overrides=args.setting
    )
    # Horizons and forecast length are the project's settings (defaults: 1, 5, 10, 20, 30 and 30).
    horizons = list(settings.backtest.horizons)
    machine = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="market-forecast-bench-"))
    try:
        with serve_folder(folder) as fred:
            check_series(fred.series_ids(), settings.series, folder)
            _say(f"serving {len(fred.series_ids())} series from {folder} at {fred.url}")
            raw = fetch_series(fred, settings.series)
            data = summarize(raw)
            as_of = args.as_of or max(s.last for s in data.values())
            levels = align_levels(raw, settings=settings, as_of=as_of)
            levels_csv = workdir / "levels.csv"
            write_levels_csv(levels, levels_csv)
            _say(
                f"aligned {levels.shape[1]} series on {len(levels)} sessions {levels.index[0].date()} .. "
                f"{levels.index[-1].date()}"
            )
            spec = {
                "settings": settings.model_dump(mode="json"),
                "as_of": as_of.isoformat(),
                "fred_url": fred.url,
                "levels_csv": str(levels_csv),
                "horizons": horizons,
                "forecast_sessions": settings.forecast_horizon,
                "lookback_sessions": args.lookback,
            }
            interpreters = ensure_environments((m.environment for m in MEASUREMENTS if m.environment), say=_say)
            with prefect_server(workdir, timeout=min(args.timeout, PREFECT_SERVER_TIMEOUT_SECONDS)) as prefect:
                _say(
                    f"Prefect server for the project's flows ready at {prefect.api_url} in "
                    f"{prefect.start_seconds:.0f} s"
                )
                results = run_children(
                    MEASUREMENTS,
                    spec,
                    workdir=workdir,
                    env_for=lambda m, home: child_env(
                        prefect,
                        fred_url=fred.url,
                        api_key=fred.api_key,
                        prefect_home=home / "prefect-home",
                        prefect_api=m.prefect_api,
                    ),
                    timeout=args.timeout,
                    parallel=args.parallel,
                    say=_say,
                    interpreters=interpreters,
                )
        machine["load_after"] = load_average()
        config = {
            "data_folder": str(args.data),
            "data": {sid: data[sid].to_json() for sid in settings.series},
            "as_of": as_of.isoformat(),
            "sessions": len(levels),
            "first_session": levels.index[0].date().isoformat(),
            "horizons": horizons,
            "forecast_sessions": settings.forecast_horizon,
            "lookback_sessions": args.lookback,
            "parallel_children": bool(args.parallel),
            "environments": interpreters,
            "prefect_server_start_seconds": prefect.start_seconds,
            "settings": settings.model_dump(mode="json"),
            "non_default_settings": non_default_settings(settings),
            "command": " ".join(["python -m bench.run", *args.argv]),
        }
        return build_report(results, config=config, machine=machine)
    finally:
        if args.keep_work:
            _say(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _series_list(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=(
            "Benchmark the project's pipeline against the seed design on a folder of FRED CSVs (see bench/README.md)."
        ),
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="folder of FRED download CSVs, e.g. ../shared/data/fred"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "bench" / "results",
        help="folder for the JSON result (default: bench/results)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs of both designs (default: the project's, 20)"
    )
    parser.add_argument(
        "--series", nargs="+", default=None, help="series ids (space or comma separated; default: the project's four)"
    )
    parser.add_argument(
        "--history-start",
        type=date.fromisoformat,
        default=None,
        help="first date used (default: the project's, 2020-01-01)",
    )
    parser.add_argument(
        "--as-of", type=date.fromisoformat, default=None, help="reference date (default: the last date in the data)"
    )
    parser.add_argument(
        "--lookback",
        type=int,
        default=LOOKBACK_SESSIONS,
        help=f"sessions the daily runs predict (default: {LOOKBACK_SESSIONS})",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one project setting (dotted names, JSON values), e.g. --setting lstm_units=32; repeatable",
    )
    parser.add_argument(
        "--timeout", type=float, default=CHILD_TIMEOUT_SECONDS, help="seconds each child may run (default: 600)"
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help=(
            "run both children at once: faster, but they compete for the CPUs, so timings and ratios are not "
            "comparable (smoke tests only)"
        ),
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the temporary work folder (child logs, outputs) for inspection"
    )
    args = parser.parse_args(argv)
    args.series = _series_list(args.series)
    args.argv = list(argv or [])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2 on a benchmark error, 130 when interrupted)."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_main(
        lambda: run_benchmark(args),
        format_report,
        out=args.out,
        prefix="bench",
        stopped="children stopped, servers stopped",
    )


if __name__ == "__main__":
    sys.exit(main())

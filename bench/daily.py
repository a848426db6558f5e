"""Measures each design's daily run on its own, in a fresh process, as a worker (or cron) runs it.

After the seed and project children trained their models:

- phase 2, ``daily-flow-runs``: registers a deployment of `daily-forecast` on the benchmark's
  Prefect server (the flow's entrypoint, its code where it is, as the Docker image has it) and
  creates its flow runs, on the champion the project child published; nothing here is timed.
- phase 2, ``seed-daily``: the old design's daily script (`bench.seed_design.run_seed_daily`) on
  the model the seed child saved.
- phase 3, ``project-daily``: what a Prefect worker starts for a flow run, the deployment's command
  (Prefect's default, the one prefect.yaml's deployments use): ``prefect flow-run execute <id>``.
  That command is a supervisor: it reads the flow run and watches it (e.g. for a cancellation from
  the UI), and starts a second process, Prefect's workspace supervisor
  (``python -m prefect.runner._workspace_supervisor``), which runs the pull step and then replaces
  itself (exec, same process) with the engine (``python -m prefect.engine``), which loads the flow
  and runs it: three Python start-ups with Prefect's import, one after the other. Its peak RSS is
  the supervisor's plus the second process's (both live for the whole run).
- phase 3, ``project-daily-engine``: the engine alone, ``python -m prefect.engine <id>``, in one
  process (what a deployment whose ``command`` job variable names it would run), for comparison.
- phase 3, ``prefect-floor``: a flow run of an empty flow (`bench/empty_flow.py`), deployed the same
  way and started with the same worker's command: what any flow pays under that command before
  its own work, the floor under ``project-daily``'s figures.

Each reports the time from its process's start (read from the kernel: /proc/self/stat against
/proc/uptime, so the interpreter's own start-up counts too) to its run's end, Completed (the seed:
its script done; the project: the flow run's end time in the Prefect API), and to the end of the
command (the project's engine exits after Completed: it flushes its logs and events and joins its
heartbeat thread), its start-up (from the process's start to its run's start: for the seed the
interpreter and its imports, the imports alone in `module_import_seconds`; for the project the time
until the flow run started Running: imports, the supervisor, loading the flow) and its peak RSS.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from bench.results import peak_rss_mb, process_age_seconds

HEAVY_LIBRARIES = ("tensorflow", "keras", "jax", "torch", "sklearn")
FLOW_RUNS_ROLE = "daily-flow-runs"
DEPLOYMENT_NAME = "bench-daily"
ENTRYPOINT = "flows/daily_forecast.py:daily_forecast"
# One flow run of the daily flow per way of starting it (roles of phase 3), and one of the empty flow.
STARTERS = ("project-daily", "project-daily-engine")
FLOOR_ROLE = "prefect-floor"
FLOOR_DEPLOYMENT_NAME = "bench-empty"
FLOOR_ENTRYPOINT = "bench/empty_flow.py:empty_flow"


def _loaded_heavy() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY_LIBRARIES))


def create_daily_flow_runs(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A deployment of the daily flow and one flow run of it per starter, on the project child's store.

    And a deployment of the empty flow with one flow run (`FLOOR_ROLE`).
    """
    from prefect.client.orchestration import get_client

    from bench.empty_flow import empty_flow
    from bench.processes import REPO_ROOT
    from flows.daily_forecast import daily_forecast

    store = Path(spec["children_root"]) / "project" / "project-output"
    parameters = {
        "as_of": spec["as_of"],
        "force": True,
        "settings": spec["settings"],
        "lookback_sessions": spec["lookback_sessions"],
        "output_dir": str(store),
    }
    with get_client(sync_client=True) as client:

        def deploy(flow: Any, name: str, entrypoint: str) -> UUID:
            return client.create_deployment(
                flow_id=client.create_flow_from_name(flow.name),
                name=name,
                entrypoint=entrypoint,
                # As the Docker deployments' pull step: the code is where the worker starts.
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}],
                parameter_openapi_schema=flow.parameters.model_dump(mode="json"),
            )

        deployment_id = deploy(daily_forecast, DEPLOYMENT_NAME, ENTRYPOINT)
        runs = {
            role: str(client.create_flow_run_from_deployment(deployment_id, parameters=parameters).id)
            for role in STARTERS
        }
        floor_id = deploy(empty_flow, FLOOR_DEPLOYMENT_NAME, FLOOR_ENTRYPOINT)
        runs[FLOOR_ROLE] = str(client.create_flow_run_from_deployment(floor_id).id)
    return {"role": FLOW_RUNS_ROLE, "deployment_id": str(deployment_id), "flow_runs": runs}


def _flow_run_id(spec: Mapping[str, Any], role: str) -> str:
    folder = Path(spec["children_root"]) / FLOW_RUNS_ROLE
    created = json.loads((folder / f"{FLOW_RUNS_ROLE}-result.json").read_text())
    return str(created["flow_runs"][role])


def _finished_run(flow_run_id: str, *, process_started: float) -> dict[str, Any]:
    """The flow run's final state, its start-up (process start to Running) and the process start to Completed."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    state = flow_run.state
    if state is None or not state.is_completed():
        raise RuntimeError(f"the daily flow run ended {state.type.value if state else 'without a state'}")
    if flow_run.start_time is None or flow_run.end_time is None:
        raise RuntimeError("the daily flow run has no start or end time")
    startup = flow_run.start_time.timestamp() - process_started
    return {
        "flow_run_id": flow_run_id,
        "flow_run_state": state.type.value,
        "import_seconds": startup,
        "run_seconds": flow_run.end_time.timestamp() - flow_run.start_time.timestamp(),
        "completed_seconds": flow_run.end_time.timestamp() - process_started,
    }


def _process_started() -> float:
    """This process's start, wall clock (the flow run's times are the wall clock)."""
    return time.time() - process_age_seconds()


def measure_project_daily(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`prefect flow-run execute <id>`, the worker's command, in this fresh process."""
    return _execute_as_a_worker(spec, "project-daily")


def measure_prefect_floor(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The empty flow's run with the worker's command, in this fresh process: Prefect's own cost."""
    return _execute_as_a_worker(spec, FLOOR_ROLE)


def _execute_as_a_worker(spec: Mapping[str, Any], role: str) -> dict[str, Any]:
    started = _process_started()
    flow_run_id = _flow_run_id(spec, role)
    sys.argv = ["prefect", "flow-run", "execute", flow_run_id]
    from prefect.cli import app

    try:
        app()
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            raise RuntimeError(f"prefect flow-run execute exited with {exit_.code}") from None
    process_seconds = process_age_seconds()
    supervisor_mb = peak_rss_mb()
    engine_mb = peak_rss_mb(children=True)  # the engine, reaped by the supervisor
    return {
        "role": role,
        "command": "prefect flow-run execute",
        "process_seconds": process_seconds,
        "supervisor_peak_rss_mb": supervisor_mb,
        "engine_peak_rss_mb": engine_mb,
        "peak_rss_mb": supervisor_mb + engine_mb,
        "prefect_api": "server" if os.environ.get("PREFECT_API_URL") else "ephemeral",
        **_finished_run(flow_run_id, process_started=started),
    }


def measure_project_daily_engine(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`python -m prefect.engine <id>`, the flow engine alone, in this fresh process."""
    started = _process_started()
    flow_run_id = _flow_run_id(spec, "project-daily-engine")
    sys.argv = ["prefect.engine", flow_run_id]
    runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    process_seconds = process_age_seconds()
    return {
        "role": "project-daily-engine",
        "command": "python -m prefect.engine",
        "process_seconds": process_seconds,
        "heavy_libraries_loaded": _loaded_heavy(),
        **_finished_run(flow_run_id, process_started=started),
    }


def measure_seed_daily(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The old design's daily script in a fresh process, on the seed child's saved model."""
    started = time.perf_counter()
    import exchange_calendars  # noqa: F401 - the script's imports, charged to its import time
    import fredapi  # noqa: F401
    import keras  # noqa: F401

    from bench.seed import seed_daily
    from bench.seed_design import SEED_MODEL_FILE, SEED_SCALER_FILE

    import_seconds = time.perf_counter() - started
    rss_after_imports = peak_rss_mb()
    model_dir = Path(spec["children_root"]) / "seed" / "seed-model"
    t0 = time.perf_counter()
    daily = seed_daily(
        spec,
        model_path=model_dir / SEED_MODEL_FILE,
        scaler_path=model_dir / SEED_SCALER_FILE,
        out_dir=Path(spec["workdir"]) / "seed-daily",
    )
    run_seconds = time.perf_counter() - t0
    completed_seconds = process_age_seconds()  # the script has written its files: its run is done
    return {
        "role": "seed-daily",
        # Start-up as the project's: from the process's start (interpreter, imports) to its run's start.
        "import_seconds": completed_seconds - run_seconds,
        "module_import_seconds": import_seconds,
        "run_seconds": run_seconds,
        "completed_seconds": completed_seconds,
        "process_seconds": completed_seconds,  # nothing of the script runs after its run
        "rss_after_imports_mb": rss_after_imports,
        "heavy_libraries_loaded": _loaded_heavy(),
        "predicted_sessions": daily.predicted_sessions,
        "forecast_steps": daily.forecast_steps,
    }

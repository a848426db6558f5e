"""Measures the project in its own child process, through its public flows and the Prefect API.

1. The `train-model` flow, called as a user calls it, with `FRED_API_KEY` / `FRED_API_URL` pointing at
   the local FRED server and `PREFECT_API_URL` at the benchmark's Prefect server. Training time is
   the `train-lstm` and `fit-ensemble` task runs' durations as the Prefect API recorded them.
2. What it published: `backtest_metrics.csv` (MASE and coverage by series and horizon, the numbers
   users get) and `actuals.csv` (the levels it trained on, compared with the seed's input).
3. The N-session forecast, timed by calling the public core function `tasks.core.forecast.forecast_levels`
   on the champion loaded from the model store as the daily flow loads it (`load_champion`): one
   first call (tracing included), then the median of `WARM_FORECAST_CALLS` warm calls. The
   `forecast-sessions` task run cannot give this: it is one call, adds the calendar and the interval
   table, and its duration is read from state timestamps the API records with milliseconds of noise.
4. The `daily-forecast` flow (`force=True`, so any `as_of` works), wall time in the same process
   after training and every import; its task runs are read from the Prefect API too.

Nothing of the project is replaced or patched. If the champion gate keeps the new model out, the
benchmark promotes it through the model store's public functions, so the daily flow has a champion
to run, and says so (`promoted_by_bench`).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.results import peak_rss_mb, records

WARM_FORECAST_CALLS = 10
TASK_RUNS_WAIT_SECONDS = 10.0
BACKTEST_COLUMNS = [
    "series_id",
    "horizon",
    "n",
    "mae",
    "naive_mae",
    "rel_mae",
    "rel_mae_vs_drift",
    "mase",
    "dm_pvalue",
    "coverage_80",
    "coverage_95",
    "n_coverage",
    "pinball",
    "naive_pinball",
    "rel_pinball",
]
# The stages that fit the model: the network, then the ensemble's weights around it (issue 12).
TRAINING_TASKS = ("train-lstm", "fit-ensemble")


def measure_project(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The project child: training flow, forecast micro-benchmark on the champion, daily flow."""
    started = time.perf_counter()
    import keras  # noqa: F401 - the flows import TensorFlow lazily; import it before the clock starts
    import numpy as np
    import pandas as pd
    import tensorflow  # noqa: F401

    from bench.data import read_levels_csv
    from flows.daily_forecast import daily_forecast
    from flows.train_model import train_model
    from tasks.adapters.blob_store import resolve_storage
    from tasks.adapters.model_store import load_champion
    from tasks.core.settings import Settings

    import_seconds = time.perf_counter() - started
    rss_after_imports = peak_rss_mb()

    settings = Settings.model_validate(spec["settings"])
    as_of = date.fromisoformat(spec["as_of"])
    output_dir = Path(spec["workdir"]) / "project-output"
    rss_checkpoints = {"after_imports": rss_after_imports}
    notes: list[str] = []

    t0 = time.perf_counter()
    train_state = train_model(as_of=as_of, settings=settings, output_dir=str(output_dir), return_state=True)
    train_flow_seconds = time.perf_counter() - t0
    summary = train_state.result()
    rss_checkpoints["after_training_flow"] = peak_rss_mb()
    if summary.get("data_source") != "fred":
        raise RuntimeError(
            f"the training flow used {summary.get('data_source')!r} data, not the benchmark's FRED server"
        )
    train_stages = read_task_runs(train_state.state_details.flow_run_id)
    train_seconds = sum(task_run_seconds(train_stages, name) for name in TRAINING_TASKS)

    run_folder = output_dir / summary["run_folder"]
    backtest_path = run_folder / "backtest_metrics.csv"
    if not backtest_path.exists():
        raise RuntimeError(f"the training flow wrote no backtest_metrics.csv in {run_folder}")
    backtest = pd.read_csv(backtest_path)
    levels = read_published_levels(run_folder / "actuals.csv", settings.series)
    seed_levels = read_levels_csv(Path(spec["levels_csv"]))
    same_data = bool(
        levels.index.equals(seed_levels.index)
        and list(levels.columns) == list(seed_levels.columns)
        and np.allclose(levels.to_numpy(dtype="float64"), seed_levels.to_numpy(dtype="float64"), rtol=1e-12, atol=0)
    )

    storage = resolve_storage(None, str(output_dir))
    promoted_by_bench = not summary.get("promoted")
    if promoted_by_bench:
        promote_for_daily_run(storage, summary["model_version"], settings)
        notes.append(
            f"the champion gate kept the model out ({summary.get('reason')}); the benchmark promoted it to time "
            "the daily flow"
        )
    champion = load_champion(storage, settings, data_source="fred")
    first_ms, warm_ms, path = time_forecast(champion.ensemble, levels, horizon=spec["forecast_sessions"])
    rss_checkpoints["after_forecast_benchmark"] = peak_rss_mb()

    t0 = time.perf_counter()
    daily_state = daily_forecast(
        as_of=as_of,
        force=True,
        settings=settings,
        lookback_sessions=spec["lookback_sessions"],
        output_dir=str(output_dir),
        return_state=True,
    )
    daily_seconds = time.perf_counter() - t0
    daily_summary = daily_state.result()
    if not isinstance(daily_summary, dict):
        raise RuntimeError(f"the daily flow published nothing: {daily_state.message}")
    rss_checkpoints["after_daily_flow"] = peak_rss_mb()
    daily_stages = read_task_runs(daily_state.state_details.flow_run_id)

    return {
        "role": "project",
        "import_seconds": import_seconds,
        "rss_after_imports_mb": rss_after_imports,
        "peak_rss_checkpoints_mb": rss_checkpoints,
        "train_seconds": train_seconds,
        "train_seconds_source": " + ".join(TRAINING_TASKS) + " task runs (Prefect API)",
        "train_flow_seconds": train_flow_seconds,
        "prefect_api": "server" if os.environ.get("PREFECT_API_URL") else "ephemeral",
        "forecast_ms_first": first_ms,
        "forecast_ms_warm": float(np.median(warm_ms)),
        "forecast_ms_warm_min": float(np.min(warm_ms)),
        "forecast_ms_warm_calls": warm_ms,
        "daily_seconds": daily_seconds,
        "model_version": summary["model_version"],
        "promoted": bool(summary.get("promoted")),
        "gate_reason": summary.get("reason"),
        "promoted_by_bench": promoted_by_bench,
        "same_data_as_seed": same_data,
        "forecast_shape": list(path.shape),
        "forecast_finite": bool(np.isfinite(path).all()),
        "backtest": records(backtest, BACKTEST_COLUMNS),
        "stages": {"train_flow": train_stages, "daily_flow": daily_stages},
        "notes": notes,
    }


def read_task_runs(flow_run_id: Any, *, wait_seconds: float = TASK_RUNS_WAIT_SECONDS) -> list[dict[str, Any]]:
    """Task runs of a flow run from the Prefect API, in start order.

    Each: name, seconds, state, start and end (epoch seconds).

    Task run states reach the API as events, a moment after the flow returns: poll until every
    task run has ended and their number is stable, or `wait_seconds` have passed.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + wait_seconds
    previous = -1
    runs: list[Any] = []
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            ended = [r for r in runs if r.start_time is not None and r.end_time is not None]
            if (runs and len(ended) == len(runs) == previous) or time.monotonic() > deadline:
                break
            previous = len(ended) if len(ended) == len(runs) else -1
            time.sleep(0.5)
    rows = []
    for run in sorted(runs, key=lambda r: (r.start_time is None, r.start_time or 0)):
        seconds = (run.end_time - run.start_time).total_seconds() if run.start_time and run.end_time else math.nan
        # Prefect names task runs "<task name>-<3 hex>": the name is what identifies the stage.
        rows.append(
            {
                "name": re.sub(r"-[0-9a-f]{3}$", "", run.name),
                "seconds": seconds,
                "state": run.state_name,
                "start": run.start_time.timestamp() if run.start_time else math.nan,
                "end": run.end_time.timestamp() if run.end_time else math.nan,
            }
        )
    return rows


def task_run_seconds(task_runs: Sequence[Mapping[str, Any]], name: str) -> float:
    """Seconds of the first task run called `name`.

    Raises:
        RuntimeError: the flow recorded no such task run.
    """
    for run in task_runs:
        if run["name"] == name:
            return float(run["seconds"])
    raise RuntimeError(
        f"cannot time {name}: the flow recorded no such task run (it has {', '.join(r['name'] for r in task_runs)})"
    )


def read_published_levels(actuals_csv: Path, series: Sequence[str]) -> Any:
    """The levels a run published (its long `actuals.csv`) as a frame: date index, one column a series."""
    import pandas as pd

    actuals = pd.read_csv(actuals_csv, parse_dates=["date"])
    levels = actuals.pivot(index="date", columns="series_id", values="value")[list(series)]
    levels.index = pd.DatetimeIndex(levels.index, name="date").as_unit("ns")
    levels.columns.name = None
    return levels


def promote_for_daily_run(storage: Any, version: str, settings: Any) -> None:
    """Make `version` the champion although the gate kept it out, recording why in its model card."""
    from tasks.adapters.model_store import load_model_files, promote_champion, read_champion_pointer, save_model_version
    from tasks.core.contracts import GateDecision

    timeout = settings.storage.timeout_seconds
    files, card = load_model_files(storage, version, card_sha256=None, timeout=timeout)
    reason = "benchmark: promoted by bench.run to time the daily flow (the champion gate kept it out)"
    card = card.model_copy(update={"champion_gate": GateDecision(promoted=True, reason=reason)})
    card_sha = save_model_version(storage, card, files, timeout=timeout)
    current = read_champion_pointer(storage, timeout=timeout)
    promoted = datetime.now(UTC).replace(microsecond=0)
    replaces = current.version if current else None
    promote_champion(storage, card, card_sha, replaces=replaces, promoted_utc=promoted, timeout=timeout)


def time_forecast(ensemble: Any, levels: Any, *, horizon: int) -> tuple[float, list[float], Any]:
    """Time `forecast_levels` for `horizon` sessions from the end of `levels`.

    The ensemble forecasts: every member, the LSTM by NumPy.

    Returns:
        The first call's milliseconds, the warm calls' milliseconds, and the forecast path
        (horizon, n_series).
    """
    import numpy as np

    from tasks.core.forecast import forecast_levels

    t0 = time.perf_counter()
    path = forecast_levels(ensemble, levels, horizon=horizon)
    first_ms = 1000 * (time.perf_counter() - t0)
    warm_ms = []
    for _ in range(WARM_FORECAST_CALLS):
        t0 = time.perf_counter()
        forecast_levels(ensemble, levels, horizon=horizon)
        warm_ms.append(1000 * (time.perf_counter() - t0))
    return first_ms, warm_ms, np.asarray(path)

"""Measures each design's daily run on its own, in a fresh process, as a worker (or cron) runs it.

Phase 2 of a benchmark run: after the seed and project children trained their models, two more
children start from nothing:

- ``project-daily``: imports `flows.daily_forecast` and runs the `daily-forecast` flow on the
  champion the project child published (its local model store), against the benchmark's Prefect
  server (``PREFECT_API_URL``) and the local FRED server, as a process worker runs a deployment.
  It never imports TensorFlow (the result says which heavy libraries were loaded).
- ``seed-daily``: the old design's daily script (`bench.seed_design.run_seed_daily`) on the model
  the seed child saved.

Each reports the import time, the run time, the time from its process's start to the end of the
run (read from the kernel: /proc/self/stat against /proc/uptime, so the interpreter's own start-up
counts too) and its peak RSS.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from bench.results import peak_rss_mb, process_age_seconds

HEAVY_LIBRARIES = ("tensorflow", "keras", "jax", "torch", "sklearn")


def _loaded_heavy() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY_LIBRARIES))


def measure_project_daily(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The project's daily flow in a fresh process, on the project child's model store."""
    started = time.perf_counter()
    from flows.daily_forecast import daily_forecast
    from tasks.core.settings import Settings

    import_seconds = time.perf_counter() - started
    rss_after_imports = peak_rss_mb()
    store = Path(spec["children_root"]) / "project" / "project-output"
    t0 = time.perf_counter()
    state = daily_forecast(
        as_of=date.fromisoformat(spec["as_of"]),
        force=True,
        settings=Settings.model_validate(spec["settings"]),
        lookback_sessions=spec["lookback_sessions"],
        output_dir=str(store),
        return_state=True,
    )
    run_seconds = time.perf_counter() - t0
    if not state.is_completed():
        raise RuntimeError(f"the daily flow ended {state.type.value}: {state.message}")
    return {
        "role": "project-daily",
        "import_seconds": import_seconds,
        "run_seconds": run_seconds,
        "process_seconds": process_age_seconds(),
        "rss_after_imports_mb": rss_after_imports,
        "heavy_libraries_loaded": _loaded_heavy(),
        "prefect_api": "server" if os.environ.get("PREFECT_API_URL") else "ephemeral",
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
    return {
        "role": "seed-daily",
        "import_seconds": import_seconds,
        "run_seconds": time.perf_counter() - t0,
        "process_seconds": process_age_seconds(),
        "rss_after_imports_mb": rss_after_imports,
        "heavy_libraries_loaded": _loaded_heavy(),
        "predicted_sessions": daily.predicted_sessions,
        "forecast_steps": daily.forecast_steps,
    }

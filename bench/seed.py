"""Measures the seed design (bench/seed_design.py) in its own child process.

On the aligned levels the parent wrote: training and the N-session forecast (`run_seed_design`
times both itself), the walk-forward backtest (MASE by horizon), then the seed's daily run through
the local FRED server on the saved model (`run_seed_daily`). Imports are timed before anything
else; the peak RSS is read after imports and after each phase.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.results import peak_rss_mb, records

if TYPE_CHECKING:  # pragma: no cover
    from bench.seed_design import SeedDaily


def measure_seed(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The seed child: train + forecast, backtest, daily run. Returns its numbers (never the series)."""
    started = time.perf_counter()
    import exchange_calendars  # noqa: F401 - imported before the clock starts, like every library
    import fredapi  # noqa: F401
    import keras  # noqa: F401
    import numpy as np

    from bench.data import read_levels_csv
    from bench.seed_design import backtest_seed_design, run_seed_design, save_seed_model
    from tasks.core.calendar import sessions_after

    import_seconds = time.perf_counter() - started
    rss_after_imports = peak_rss_mb()

    settings = spec["settings"]
    workdir = Path(spec["workdir"])
    levels = read_levels_csv(Path(spec["levels_csv"]))
    result = run_seed_design(
        levels,
        forecast_dates=sessions_after(levels.index[-1].date(), spec["forecast_sessions"]),
        sequence_length=settings["sequence_length"],
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        test_fraction=settings["test_fraction"],
        seed=settings["seed"],
        units=settings["lstm_units"],
    )
    rss_checkpoints = {"after_imports": rss_after_imports, "after_training_and_forecast": peak_rss_mb()}
    backtest = backtest_seed_design(levels, result, horizons=spec["horizons"])
    rss_checkpoints["after_backtest"] = peak_rss_mb()

    model_path, scaler_path = save_seed_model(result, workdir / "seed-model")
    daily = seed_daily(spec, model_path=model_path, scaler_path=scaler_path, out_dir=workdir / "seed-daily")
    rss_checkpoints["after_daily"] = peak_rss_mb()
    return {
        "role": "seed",
        "import_seconds": import_seconds,
        "rss_after_imports_mb": rss_after_imports,
        "peak_rss_checkpoints_mb": rss_checkpoints,
        "train_seconds": float(result.train_seconds),
        "forecast_ms": float(result.forecast_ms),
        "daily_seconds": float(daily.seconds),
        "daily": {
            "is_session": daily.is_session,
            "predicted_sessions": daily.predicted_sessions,
            "forecast_steps": daily.forecast_steps,
        },
        "epochs_run": len(result.history),
        "backtest": records(backtest, ["series_id", "horizon", "n", "mae", "naive_mae", "rel_mae"]),
        "one_step_test": records(
            result.metrics.reset_index(), ["series_id", "mse", "mae", "r2", "naive_mae", "rel_mae"]
        ),
        "forecast_finite": bool(np.isfinite(result.forecast.to_numpy()).all()),
    }


def seed_daily(spec: Mapping[str, Any], *, model_path: Path, scaler_path: Path, out_dir: Path) -> SeedDaily:
    """The seed's daily script (`run_seed_daily`) on a saved model, with the benchmark's FRED server and spec."""
    from bench.seed_design import run_seed_daily

    settings = spec["settings"]
    return run_seed_daily(
        url=spec["fred_url"],
        api_key=os.environ["FRED_API_KEY"],
        series=settings["series"],
        as_of=date.fromisoformat(spec["as_of"]),
        lookback_sessions=spec["lookback_sessions"],
        sequence_length=settings["sequence_length"],
        horizon=spec["forecast_sessions"],
        model_path=model_path,
        scaler_path=scaler_path,
        out_dir=out_dir,
    )

"""The benchmark of issue 6: the project's pipeline against the seed design, side by side.

One command::

    python -m bench.run --data ../shared/data/fred [--out bench/results] [--epochs 20] [--series SP500 VIXCLS]

What it does, in one process tree:

1. Reads a folder of FRED download CSVs (``observation_date,<SERIES_ID>``) and serves it on loopback
   through ``tests.harness.fred_server.FredServer``, a FRED-compatible HTTP API, so the real fetch path
   (fredapi -> HTTP -> XML) runs.
2. Fetches the series once through that server and aligns them with the project's
   ``tasks.core.align.align_sessions`` (same settings); the aligned levels go to a temporary CSV, the seed
   design's input. Nothing derived from the data is written inside the repository.
3. Runs the seed design in a child process (``bench.seed_design``: train, backtest, 30-step forecast,
   then its "daily" run: calendar check, fetch, load model, predict the lookback, forecast, write CSVs).
4. Runs the project in another child process: the ``train-model`` flow, then a 30-session forecast
   micro-benchmark on the stored model, then the ``daily-forecast`` flow, all through the same server
   (``FRED_API_KEY`` / ``FRED_API_URL``), with an isolated Prefect home and a ``prefect server start``
   that the parent launched and waited for (``PREFECT_API_URL``), as deployed flows have.
5. Each child reports its own timings and its own peak RSS (``getrusage(RUSAGE_SELF)`` at its end);
   the parent prints a table whose headline is project / seed ratios, with PASS/MISS against the
   targets of issue 6, and writes the same as JSON to ``--out`` (metrics and timings only, never the
   series).

See bench/README.md for the meaning of every column. Timings are wall-clock on a possibly shared
machine: compare the ratios of one run, not absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT_FORMAT = "market-forecast-bench/1"
LOOKBACK_SESSIONS = 365
WARM_FORECAST_CALLS = 10
CHILD_TIMEOUT_SECONDS = 600.0
LOG_TAIL_LINES = 40

# Targets of issue 6 ("Targets" section).
MASE_H1_MAX = 1.00
VIX_SERIES = "VIXCLS"
VIX_HORIZONS = (20, 30)
VIX_MASE_MAX = 0.95  # strictly below
COVERAGE_TOLERANCE = 0.05
TRAIN_RATIO_MAX = 0.5
FORECAST_MS_MAX = 50.0
DAILY_SECONDS_MAX = 10.0
RSS_RATIO_MAX = 1.0

# Environment the children must not inherit: a developer's Prefect server, cloud or FRED account.
_SCRUBBED_ENV = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "AZURE_STORAGE_CONNECTION_STRING")


class BenchError(Exception):
    """A benchmark run cannot proceed; the message says what to fix."""


# ====================================================================== data folder


@dataclass(frozen=True)
class SeriesFile:
    """What one series' CSV holds (dates and counts only, never values)."""

    series_id: str
    path: Path
    first: date
    last: date
    rows: int
    missing: int


def scan_data_folder(folder: Path) -> dict[str, SeriesFile]:
    """Index the FRED download CSVs of `folder` by series id.

    Args:
        folder: Directory of ``observation_date,<SERIES_ID>`` CSV files.

    Returns:
        series id -> SeriesFile (first and last observed date, rows, missing values).

    Raises:
        BenchError: The folder is missing, holds no CSV, or a file is not a FRED CSV.
    """
    import pandas as pd

    if not folder.exists():
        raise BenchError(f"data folder {folder} does not exist: pass --data with a folder of FRED CSVs, e.g. ../shared/data/fred")
    if not folder.is_dir():
        raise BenchError(f"--data {folder} is a file, not a folder of FRED CSVs")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        raise BenchError(f"data folder {folder} holds no .csv files (expected FRED downloads like SP500.csv)")
    found: dict[str, SeriesFile] = {}
    for path in files:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise BenchError(f"{path} cannot be read as CSV: {exc}") from None
        if frame.shape[1] < 2 or frame.columns[0] not in ("observation_date", "DATE"):
            raise BenchError(f"{path} is not a FRED CSV: its header is {list(frame.columns)}, expected 'observation_date,<SERIES_ID>'")
        try:
            dates = pd.to_datetime(frame.iloc[:, 0], format="%Y-%m-%d")
        except ValueError as exc:
            raise BenchError(f"{path}: dates must be YYYY-MM-DD: {exc}") from None
        for column in frame.columns[1:]:
            sid = str(column).strip()
            present = ~frame[column].str.strip().isin(["", "."])
            if not present.any():
                raise BenchError(f"{path}: series {sid} has no observations")
            found[sid] = SeriesFile(
                series_id=sid,
                path=path,
                first=dates[present].min().date(),
                last=dates[present].max().date(),
                rows=len(frame),
                missing=int((~present).sum()),
            )
    return found


def check_series(available: Mapping[str, SeriesFile], wanted: Sequence[str], folder: Path) -> None:
    """Fail clearly when a wanted series has no CSV in the folder.

    Raises:
        BenchError: naming the missing series and those available.
    """
    missing = [s for s in wanted if s not in available]
    if missing:
        raise BenchError(
            f"data folder {folder} lacks series {', '.join(missing)}; it holds {', '.join(sorted(available)) or 'none'}. "
            "Add their FRED CSVs (observation_date,<SERIES_ID>) or choose others with --series."
        )


# ====================================================================== settings


def parse_setting(text: str) -> tuple[list[str], Any]:
    """Parse ``NAME=VALUE`` (NAME may be dotted, VALUE is JSON or else a string)."""
    if "=" not in text:
        raise BenchError(f"--setting {text!r} must look like NAME=VALUE, e.g. lstm_units=32 or fetch.requests_per_minute=600")
    name, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return [part for part in name.strip().split(".") if part], value


def build_settings(*, series: Sequence[str] | None, epochs: int | None, history_start: date | None, overrides: Sequence[str]) -> Any:
    """The project's Settings for the run: defaults, then the options, then ``--setting`` overrides.

    Raises:
        BenchError: a value the Settings model rejects (its message names the field).
    """
    from pydantic import ValidationError

    from tasks.core.settings import Settings

    data: dict[str, Any] = Settings().model_dump(mode="json")
    if series:
        data["series"] = list(series)
    if epochs is not None:
        data["epochs"] = epochs
    if history_start is not None:
        data["history_start"] = history_start.isoformat()
    for text in overrides:
        path, value = parse_setting(text)
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"invalid settings: {exc}") from None


def non_default_settings(settings: Any) -> dict[str, Any]:
    """Fields (dotted) whose value differs from the project's defaults."""
    from tasks.core.settings import Settings

    def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, Mapping):
                out.update(flatten(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    mine, default = flatten(settings.model_dump(mode="json")), flatten(Settings().model_dump(mode="json"))
    return {k: v for k, v in mine.items() if default.get(k) != v}


# ====================================================================== shared helpers


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def write_levels_csv(levels: Any, path: Path) -> None:
    """Aligned levels to a plain CSV (date index, one column per series, full float precision)."""
    levels.rename_axis("date").to_csv(path, date_format="%Y-%m-%d", float_format="%.17g")


def read_levels_csv(path: Path) -> Any:
    """Read what `write_levels_csv` wrote."""
    import pandas as pd

    frame = pd.read_csv(path, index_col="date", parse_dates=["date"])
    frame.index = pd.DatetimeIndex(frame.index, name="date").as_unit("ns")
    return frame.astype("float64")


def fetch_and_align(*, url: str, api_key: str, settings: Any, as_of: date) -> Any:
    """Fetch every configured series through the FRED-compatible API and align them as the flows do.

    Plain fredapi (the seed's client) fetches; the project's `align_sessions` aligns with the
    run's settings, so both designs see the same sessions and values.

    Raises:
        BenchError: the data cannot be aligned (stale, gaps, bad values), with the project's message.
    """
    from fredapi import Fred

    from tasks.core.align import align_sessions
    from tasks.core.errors import PipelineError

    fred = Fred(api_key=api_key)
    fred.root_url = url
    try:
        raw = {sid: fred.get_series(sid, observation_start=settings.history_start, observation_end=as_of) for sid in settings.series}
    except ValueError as exc:  # fredapi's form of FRED's <error message=...>
        raise BenchError(f"fetching through the local FRED server failed: {exc}") from None
    try:
        aligned = align_sessions(
            raw,
            start=settings.history_start,
            as_of=as_of,
            max_fill=settings.max_fill_sessions,
            max_stale=settings.max_stale_sessions,
        )
    except PipelineError as exc:
        raise BenchError(f"the data cannot be aligned for as_of {as_of}: {exc}") from None
    return aligned.levels


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def _num(value: Any) -> float:
    """A JSON number (or None) as float, NaN when missing."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _records(frame: Any, columns: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        record = {}
        for column in columns:
            value = row.get(column, math.nan)
            if column == "series_id":
                record[column] = str(value)
            elif column in ("horizon", "n", "n_coverage"):
                record[column] = int(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else None
            else:
                record[column] = _num(value)
        out.append(record)
    return out


# ====================================================================== child: seed design


def _xnys(start: date, end: date) -> Any:
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS", start=date(start.year - 1, 1, 1).isoformat(), end=date(end.year + 1, 12, 31).isoformat())


def _sessions_after(last: date, count: int) -> Any:
    import pandas as pd

    cal = _xnys(last, last + timedelta(days=int(count * 1.6) + 30))
    first = cal.date_to_session(pd.Timestamp(last + timedelta(days=1)), direction="next")
    return pd.DatetimeIndex(cal.sessions_window(first, count)).as_unit("ns")


def run_seed_daily(
    *,
    url: str,
    api_key: str,
    series: Sequence[str],
    as_of: date,
    lookback_sessions: int,
    sequence_length: int,
    horizon: int,
    model_path: Path,
    scaler_path: Path,
    out_dir: Path,
) -> dict[str, Any]:
    """The seed's daily run (its `daily_forecast.py` steps), timed from after imports.

    Steps, as the seed described them: check the NYSE calendar; refresh the FRED data of the last
    `lookback_sessions + sequence_length` sessions (plain fredapi, as the seed did); load the saved
    model and scaler (the scaler as JSON min/max instead of the seed's pickle); align on sessions
    (forward fill, drop incomplete rows); predict every lookback session with one `model.predict`;
    MSE/MAE/R2 per series; the 30-step forecast with one `model.predict` per step; write the four
    CSVs. Returns the seconds and what was produced (counts only).
    """
    import keras
    import numpy as np
    import pandas as pd
    from fredapi import Fred
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.preprocessing import MinMaxScaler

    from bench.seed_design import _create_sequences

    started = time.perf_counter()
    span = timedelta(days=int((lookback_sessions + sequence_length) * 1.6) + 30)
    cal = _xnys(as_of - span, as_of)
    is_session = bool(cal.is_session(pd.Timestamp(as_of)))
    fred = Fred(api_key=api_key)
    fred.root_url = url
    start = as_of - span
    raw = {sid: fred.get_series(sid, observation_start=start, observation_end=as_of) for sid in series}
    model = keras.models.load_model(model_path, compile=False)
    bounds = json.loads(scaler_path.read_text())
    scaler = MinMaxScaler().fit(np.array([bounds["data_min"], bounds["data_max"]], dtype=np.float64))
    sessions = pd.DatetimeIndex(cal.sessions_in_range(pd.Timestamp(start), pd.Timestamp(as_of))).as_unit("ns")
    frame = pd.DataFrame({sid: pd.to_numeric(values, errors="coerce") for sid, values in raw.items()})
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns")
    frame = frame.reindex(sessions).ffill().dropna().iloc[-(lookback_sessions + sequence_length) :]
    values = frame.to_numpy(dtype=np.float64)
    scaled = scaler.transform(values)
    X, _ = _create_sequences(scaled, sequence_length)
    predicted = scaler.inverse_transform(model.predict(X, verbose=0))
    actual = values[sequence_length:]
    metrics = pd.DataFrame(
        [
            {
                "series_id": sid,
                "mse": mean_squared_error(actual[:, j], predicted[:, j]),
                "mae": mean_absolute_error(actual[:, j], predicted[:, j]),
                "r2": r2_score(actual[:, j], predicted[:, j]),
            }
            for j, sid in enumerate(series)
        ]
    )
    window, steps = scaled[-sequence_length:].copy(), []
    for _ in range(horizon):
        nxt = model.predict(window[np.newaxis, :, :], verbose=0)[0]
        steps.append(nxt)
        window = np.vstack([window[1:], nxt])
    forecast_dates = _sessions_after(frame.index[-1].date(), horizon)
    forecast = pd.DataFrame(scaler.inverse_transform(np.array(steps)), index=forecast_dates, columns=list(series))
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.rename_axis("date").to_csv(out_dir / "actuals.csv")
    pd.DataFrame(predicted, index=frame.index[sequence_length:], columns=list(series)).rename_axis("date").to_csv(out_dir / "predicted.csv")
    forecast.rename_axis("date").to_csv(out_dir / "forecasted_data.csv")
    metrics.to_csv(out_dir / "model_metrics.csv", index=False)
    return {"seconds": time.perf_counter() - started, "is_session": is_session, "predicted_sessions": len(X), "forecast_steps": horizon}


def run_seed_child(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Seed design: train + backtest + forecast on the aligned levels, then its daily run."""
    started = time.perf_counter()
    import exchange_calendars  # noqa: F401 - imported before the clock starts, like every library
    import fredapi  # noqa: F401
    import keras  # noqa: F401
    import numpy as np
    import sklearn.metrics  # noqa: F401

    from bench.seed_design import backtest_seed_design, run_seed_design

    import_seconds = time.perf_counter() - started
    rss_after_imports = peak_rss_mb()

    settings = spec["settings"]
    workdir = Path(spec["workdir"])
    levels = read_levels_csv(Path(spec["levels_csv"]))
    forecast_dates = _sessions_after(levels.index[-1].date(), spec["forecast_sessions"])
    result = run_seed_design(
        levels,
        forecast_dates=forecast_dates,
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

    model_dir = workdir / "seed-model"
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path, scaler_path = model_dir / "lstm_model.keras", model_dir / "scaler.json"
    result.model.save(model_path)
    scaler_path.write_text(json.dumps({"data_min": result.scaler.data_min_.tolist(), "data_max": result.scaler.data_max_.tolist()}))
    daily = run_seed_daily(
        url=spec["fred_url"],
        api_key=os.environ["FRED_API_KEY"],
        series=settings["series"],
        as_of=date.fromisoformat(spec["as_of"]),
        lookback_sessions=spec["lookback_sessions"],
        sequence_length=settings["sequence_length"],
        horizon=spec["forecast_sessions"],
        model_path=model_path,
        scaler_path=scaler_path,
        out_dir=workdir / "seed-daily",
    )
    rss_checkpoints["after_daily"] = peak_rss_mb()
    one_step = result.metrics.reset_index()
    return {
        "role": "seed",
        "import_seconds": import_seconds,
        "rss_after_imports_mb": rss_after_imports,
        "peak_rss_checkpoints_mb": rss_checkpoints,
        "train_seconds": float(result.train_seconds),
        "forecast_ms": float(result.forecast_ms),
        "daily_seconds": float(daily["seconds"]),
        "daily": {k: v for k, v in daily.items() if k != "seconds"},
        "epochs_run": int(len(result.history)),
        "backtest": _records(backtest, ["series_id", "horizon", "n", "mae", "naive_mae", "mase"]),
        "one_step_test": _records(one_step, ["series_id", "mse", "mae", "r2", "naive_mae", "mase"]),
        "forecast_finite": bool(np.isfinite(result.forecast.to_numpy()).all()),
    }


# ====================================================================== child: project


def _flow_task_runs(flow_run_id: Any, *, wait_seconds: float = 10.0) -> list[dict[str, Any]]:
    """Task runs of a flow run from the Prefect API: name and seconds, in start order.

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
            if runs and len(ended) == len(runs) == previous or time.monotonic() > deadline:
                break
            previous = len(ended) if len(ended) == len(runs) else -1
            time.sleep(0.5)
    rows = []
    for run in runs:
        seconds = (run.end_time - run.start_time).total_seconds() if run.start_time and run.end_time else math.nan
        rows.append({"name": re.sub(r"-[0-9a-f]{3}$", "", run.name), "seconds": seconds, "state": run.state_name, "_start": run.start_time})
    rows.sort(key=lambda r: (r["_start"] is None, r["_start"] or 0))
    return [{k: v for k, v in r.items() if k != "_start"} for r in rows]


def _call_with_accepted(function: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """Call `function` with only the keyword options its signature accepts (they evolve)."""
    import inspect

    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return function(*args, **options)
    return function(*args, **{k: v for k, v in options.items() if k in parameters})


def run_project_child(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Project: training flow, forecast micro-benchmark on the stored model, daily flow."""
    started = time.perf_counter()
    import keras  # noqa: F401 - the flows import TensorFlow lazily; import it before the clock starts
    import numpy as np
    import pandas as pd
    import tensorflow  # noqa: F401

    from flows.daily_forecast import daily_forecast
    from flows.train_model import train_model
    from tasks.adapters.blob_store import resolve_storage
    from tasks.adapters.model_store import load_model_files, model_from_bytes, promote_champion, save_model_version
    from tasks.core.contracts import GateDecision
    from tasks.core.features import Scaler
    from tasks.core.forecast import forecast_levels
    from tasks.core.model import predictor_for
    from tasks.core.settings import Settings

    import_seconds = time.perf_counter() - started
    rss_after_imports = peak_rss_mb()

    settings = Settings.model_validate(spec["settings"])
    as_of = date.fromisoformat(spec["as_of"])
    workdir = Path(spec["workdir"])
    output_dir = workdir / "project-output"
    rss_checkpoints = {"after_imports": rss_after_imports}
    notes: list[str] = []

    t0 = time.perf_counter()
    train_state = train_model(as_of=as_of, settings=settings, output_dir=str(output_dir), return_state=True)
    train_flow_seconds = time.perf_counter() - t0
    summary = train_state.result()
    rss_checkpoints["after_training_flow"] = peak_rss_mb()
    if summary.get("data_source") != "fred":
        raise RuntimeError(f"the training flow used {summary.get('data_source')!r} data, not the benchmark's FRED server")
    # The train-lstm stage, timed as the Prefect API recorded its task run.
    train_stages = _flow_task_runs(train_state.state_details.flow_run_id)
    stage = [s for s in train_stages if s["name"].startswith("train-lstm")]
    if not stage:
        raise RuntimeError("cannot time training: no train-lstm task run was recorded for the training flow")
    train_seconds, train_source = stage[0]["seconds"], "train-lstm task run (Prefect API)"

    run_folder = output_dir / summary["run_folder"]
    backtest_path = run_folder / "backtest_metrics.csv"
    if not backtest_path.exists():
        raise RuntimeError(f"the training flow wrote no backtest_metrics.csv in {run_folder}")
    backtest = pd.read_csv(backtest_path)

    # 30-session forecast: a freshly loaded copy of the stored model, as the daily flow has it, on
    # the levels the training run published (its actuals.csv).
    seed_levels = read_levels_csv(Path(spec["levels_csv"]))
    actuals = pd.read_csv(run_folder / "actuals.csv", parse_dates=["date"])
    levels = actuals.pivot(index="date", columns="series_id", values="value")[list(settings.series)]
    levels.index = pd.DatetimeIndex(levels.index, name="date").as_unit("ns")
    levels.columns.name = None
    same_data = bool(
        levels.index.equals(seed_levels.index)
        and list(levels.columns) == list(seed_levels.columns)
        and np.allclose(levels.to_numpy(dtype="float64"), seed_levels.to_numpy(dtype="float64"), rtol=1e-12, atol=0)
    )
    storage = resolve_storage(None, str(output_dir))
    files, card = load_model_files(storage, summary["model_version"], card_sha256=None, timeout=settings.storage.timeout_seconds)
    model = model_from_bytes(files["lstm_model.keras"])
    scaler = Scaler.from_json(files["scaler.json"])
    predictor = predictor_for(model)
    options = {
        "sequence_length": settings.sequence_length,
        "level_window": getattr(settings, "level_window", None),
        "horizon": spec["forecast_sessions"],
    }
    t0 = time.perf_counter()
    path = _call_with_accepted(forecast_levels, predictor, scaler, levels, **options)
    forecast_first_ms = 1000 * (time.perf_counter() - t0)
    warm = []
    for _ in range(WARM_FORECAST_CALLS):
        t0 = time.perf_counter()
        _call_with_accepted(forecast_levels, predictor, scaler, levels, **options)
        warm.append(1000 * (time.perf_counter() - t0))
    path = np.asarray(path)
    rss_checkpoints["after_forecast_benchmark"] = peak_rss_mb()

    # The daily flow needs a champion: promote the new version if the gate kept it out.
    promoted_by_bench = False
    if not summary.get("promoted"):
        reason = "benchmark: promoted by bench.run to time the daily flow (the champion gate kept it out)"
        card = card.model_copy(update={"champion_gate": GateDecision(promoted=True, reason=reason)})
        card_sha = save_model_version(storage, card, files, timeout=settings.storage.timeout_seconds)
        promote_champion(
            storage, card, card_sha, promoted_utc=datetime.now(timezone.utc).replace(microsecond=0),
            timeout=settings.storage.timeout_seconds,
        )
        promoted_by_bench = True
        notes.append(f"the champion gate kept the model out ({summary.get('reason')}); the benchmark promoted it to time the daily flow")

    t0 = time.perf_counter()
    daily_state = daily_forecast(
        as_of=as_of, force=True, settings=settings, lookback_sessions=spec["lookback_sessions"], output_dir=str(output_dir), return_state=True
    )
    daily_seconds = time.perf_counter() - t0
    daily_summary = daily_state.result()
    if not isinstance(daily_summary, dict):
        raise RuntimeError(f"the daily flow published nothing: {daily_state.message}")
    rss_checkpoints["after_daily_flow"] = peak_rss_mb()
    daily_stages = _flow_task_runs(daily_state.state_details.flow_run_id)

    return {
        "role": "project",
        "import_seconds": import_seconds,
        "rss_after_imports_mb": rss_after_imports,
        "peak_rss_checkpoints_mb": rss_checkpoints,
        "train_seconds": float(train_seconds),
        "train_seconds_source": train_source,
        "train_flow_seconds": train_flow_seconds,
        "prefect_api": "server" if os.environ.get("PREFECT_API_URL") else "ephemeral",
        "forecast_ms_first": forecast_first_ms,
        "forecast_ms_warm": float(np.median(warm)),
        "forecast_ms_warm_min": float(np.min(warm)),
        "forecast_ms_warm_calls": warm,
        "daily_seconds": daily_seconds,
        "model_version": summary["model_version"],
        "promoted": bool(summary.get("promoted")),
        "gate_reason": summary.get("reason"),
        "promoted_by_bench": promoted_by_bench,
        "same_data_as_seed": same_data,
        "forecast_shape": list(path.shape),
        "forecast_finite": bool(np.isfinite(path).all()),
        "backtest": _records(
            backtest, ["series_id", "horizon", "n", "mae", "naive_mae", "mase", "mase_vs_drift", "coverage_80", "coverage_95", "n_coverage"]
        ),
        "stages": {"train_flow": train_stages, "daily_flow": daily_stages},
        "notes": notes,
    }


def child_main(role: str, spec_path: Path) -> int:
    """Entry point of a child process: run its role, add its peak RSS, write its result JSON."""
    spec = json.loads(spec_path.read_text())
    runner = {"seed": run_seed_child, "project": run_project_child}[role]
    result = runner(spec)
    result["peak_rss_mb"] = peak_rss_mb()
    Path(spec["result_path"]).write_text(json.dumps(_nan_to_none(result), indent=2))
    return 0


# ====================================================================== parent: children


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """End the child's process group (the child and anything it started, e.g. Prefect's API server).

    The child leads its own group (start_new_session), so its pid is the group id: SIGTERM, then
    SIGKILL for whatever is left after a grace period.
    """
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()  # reaps the child once it exits, so an empty group disappears
            try:
                os.killpg(process.pid, 0)
            except (ProcessLookupError, PermissionError):
                process.poll()
                return
            time.sleep(0.1)
    process.poll()


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def child_env(*, fred_url: str, api_key: str, prefect_home: Path, prefect_api_url: str | None = None) -> dict[str, str]:
    """Environment of a child: the local FRED server, an isolated Prefect home (and the benchmark's
    own Prefect server when given), nothing of a developer's accounts."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        {
            "FRED_API_KEY": api_key,
            "FRED_API_URL": fred_url,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # A fresh Prefect home migrates its database on first start: slow on a busy machine.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": env.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"),
            "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "NO_PROXY": ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1", "localhost"])),
            "no_proxy": ",".join(filter(None, [env.get("no_proxy"), "127.0.0.1", "localhost"])),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        }
    )
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_prefect_server(workdir: Path, *, timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start `prefect server start` on 127.0.0.1 (own home, no UI, no scheduler) and wait until healthy.

    The project child talks to it as a deployed flow talks to its server, so the flow process
    does not also load Prefect's server code (which ephemeral mode would, inflating its RSS).

    Returns:
        The server process (leader of its own process group) and its API URL.

    Raises:
        BenchError: it did not answer /api/health within `timeout` seconds (with its log's end).
    """
    from urllib.error import URLError
    from urllib.request import urlopen

    home = workdir / "prefect-server-home"
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = child_env(fred_url="", api_key="", prefect_home=home)
    for name in ("FRED_API_KEY", "FRED_API_URL"):
        env.pop(name, None)
    log_path = workdir / "prefect-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--no-ui", "--no-scheduler", "--no-late-runs", "--analytics-off"],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the Prefect server exited with code {process.returncode}; end of its log:\n{_log_tail(log_path)}")
        try:
            with urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except (URLError, OSError):
            pass
        time.sleep(0.5)
    _kill_group(process)
    raise BenchError(f"the Prefect server did not become healthy within {timeout:.0f} s; end of its log:\n{_log_tail(log_path)}")


@dataclass
class Child:
    """A running child process and where its log and result go."""

    role: str
    process: subprocess.Popen[bytes]
    log_path: Path
    result_path: Path
    started: float


def start_child(role: str, spec: dict[str, Any], *, workdir: Path, env: Mapping[str, str]) -> Child:
    """Start `python -m bench.run _child ROLE SPEC` in its own process group, logging to workdir."""
    result_path = workdir / f"{role}-result.json"
    spec_path = workdir / f"{role}-spec.json"
    spec_path.write_text(json.dumps({**spec, "result_path": str(result_path)}, indent=2))
    log_path = workdir / f"{role}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.run", "_child", role, str(spec_path)],
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(role, process, log_path, result_path, time.monotonic())


def finish_child(child: Child, *, timeout: float) -> dict[str, Any]:
    """Wait for a child (at most `timeout` s from its start), end its group, return its result.

    Raises:
        BenchError: the child failed or timed out (with the end of its log).
    """
    try:
        code = child.process.wait(timeout=max(0.0, timeout - (time.monotonic() - child.started)))
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"the {child.role} child ran longer than {timeout:.0f} s and was stopped; end of its log:\n{_log_tail(child.log_path)}"
        ) from None
    finally:
        _kill_group(child.process)
    if code != 0:
        raise BenchError(f"the {child.role} child failed (exit code {code}); end of its log ({child.log_path}):\n{_log_tail(child.log_path)}")
    return json.loads(child.result_path.read_text())


# ====================================================================== report


def _by_key(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], Mapping[str, Any]]:
    return {(str(r["series_id"]), int(r["horizon"])): r for r in records}


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def compute_ratios(project: Mapping[str, Any], seed: Mapping[str, Any]) -> dict[str, float]:
    """Project / seed for each headline measurement, from the children's own numbers."""
    return {
        "train_seconds": _ratio(_num(project["train_seconds"]), _num(seed["train_seconds"])),
        "forecast_ms_warm": _ratio(_num(project["forecast_ms_warm"]), _num(seed["forecast_ms"])),
        "forecast_ms_first": _ratio(_num(project["forecast_ms_first"]), _num(seed["forecast_ms"])),
        "daily_seconds": _ratio(_num(project["daily_seconds"]), _num(seed["daily_seconds"])),
        "peak_rss_mb": _ratio(_num(project["peak_rss_mb"]), _num(seed["peak_rss_mb"])),
    }


def _target(target_id: str, description: str, measured: float, threshold: float, passed: bool) -> dict[str, Any]:
    return {
        "id": target_id,
        "target": description,
        "measured": measured,
        "threshold": threshold,
        "result": "PASS" if passed and math.isfinite(measured) else "MISS",
    }


def evaluate_targets(
    project: Mapping[str, Any], ratios: Mapping[str, float], *, series: Sequence[str], horizons: Sequence[int]
) -> list[dict[str, Any]]:
    """Every target of issue 6 with its measured value and PASS/MISS (a missing value is a MISS)."""
    bt = _by_key(project["backtest"])
    targets = []
    for sid in series:
        mase = _num(bt.get((sid, 1), {}).get("mase"))
        targets.append(_target(f"mase_h1:{sid}", f"{sid} MASE at 1 session <= {MASE_H1_MAX:.2f}", mase, MASE_H1_MAX, mase <= MASE_H1_MAX))
    if VIX_SERIES in series:
        for h in VIX_HORIZONS:
            mase = _num(bt.get((VIX_SERIES, h), {}).get("mase"))
            targets.append(_target(f"vix_mase_h{h}", f"{VIX_SERIES} MASE at {h} sessions < {VIX_MASE_MAX:.2f}", mase, VIX_MASE_MAX, mase < VIX_MASE_MAX))
    for sid in series:
        for h in horizons:
            row = bt.get((sid, h), {})
            for nominal, column in ((0.80, "coverage_80"), (0.95, "coverage_95")):
                cover = _num(row.get(column))
                targets.append(
                    _target(
                        f"{column}:{sid}:h{h}",
                        f"{sid} {int(nominal * 100)}% interval coverage at {h} sessions within {COVERAGE_TOLERANCE * 100:.0f} points",
                        cover,
                        nominal,
                        abs(cover - nominal) <= COVERAGE_TOLERANCE + 1e-12,
                    )
                )
    train = _num(ratios["train_seconds"])
    targets.append(_target("train_ratio", f"training time <= {TRAIN_RATIO_MAX}x the seed design's", train, TRAIN_RATIO_MAX, train <= TRAIN_RATIO_MAX))
    forecast = _num(project["forecast_ms_warm"])
    targets.append(_target("forecast_ms", f"forecast of the full horizon (median warm call) <= {FORECAST_MS_MAX:.0f} ms", forecast, FORECAST_MS_MAX, forecast <= FORECAST_MS_MAX))
    daily = _num(project["daily_seconds"])
    targets.append(_target("daily_seconds", f"daily flow <= {DAILY_SECONDS_MAX:.0f} s after imports", daily, DAILY_SECONDS_MAX, daily <= DAILY_SECONDS_MAX))
    rss = _num(ratios["peak_rss_mb"])
    targets.append(_target("peak_rss_ratio", "peak RSS no higher than the seed design's", rss, RSS_RATIO_MAX, rss <= RSS_RATIO_MAX))
    return targets


def build_report(
    *, project: Mapping[str, Any], seed: Mapping[str, Any], config: Mapping[str, Any], machine: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON document of a run: configuration, machine, both children's results, ratios, targets."""
    ratios = compute_ratios(project, seed)
    series, horizons = config["settings"]["series"], config["horizons"]
    targets = evaluate_targets(project, ratios, series=series, horizons=horizons)
    pbt, sbt = _by_key(project["backtest"]), _by_key(seed["backtest"])
    mase = []
    for sid in series:
        for h in horizons:
            p, s = pbt.get((sid, h), {}), sbt.get((sid, h), {})
            mase.append(
                {
                    "series_id": sid,
                    "horizon": h,
                    "project": _num(p.get("mase")),
                    "seed": _num(s.get("mase")),
                    "project_vs_drift": _num(p.get("mase_vs_drift")),
                    "n_project": p.get("n"),
                    "n_seed": s.get("n"),
                }
            )
    coverage = [
        {
            "series_id": sid,
            "horizon": h,
            "coverage_80": _num(pbt.get((sid, h), {}).get("coverage_80")),
            "coverage_95": _num(pbt.get((sid, h), {}).get("coverage_95")),
            "n_coverage": pbt.get((sid, h), {}).get("n_coverage"),
        }
        for sid in series
        for h in horizons
    ]
    return {
        "format": RESULT_FORMAT,
        "created_utc": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "config": dict(config),
        "machine": dict(machine),
        "headline": {
            "train_seconds": {"project": project["train_seconds"], "seed": seed["train_seconds"], "ratio": ratios["train_seconds"]},
            "forecast_ms_warm": {"project": project["forecast_ms_warm"], "seed": seed["forecast_ms"], "ratio": ratios["forecast_ms_warm"]},
            "forecast_ms_first": {"project": project["forecast_ms_first"], "seed": seed["forecast_ms"], "ratio": ratios["forecast_ms_first"]},
            "daily_seconds": {"project": project["daily_seconds"], "seed": seed["daily_seconds"], "ratio": ratios["daily_seconds"]},
            "peak_rss_mb": {"project": project["peak_rss_mb"], "seed": seed["peak_rss_mb"], "ratio": ratios["peak_rss_mb"]},
        },
        "ratios": ratios,
        "mase": mase,
        "coverage": coverage,
        "targets": targets,
        "summary": {
            "passed": sum(t["result"] == "PASS" for t in targets),
            "missed": [t["id"] for t in targets if t["result"] != "PASS"],
        },
        "project": dict(project),
        "seed": dict(seed),
    }


def _fmt(value: Any, digits: int = 2) -> str:
    number = _num(value)
    if not math.isfinite(number):
        return "n/a"
    return f"{number:,.{digits}f}"


def _percent(value: Any) -> str:
    number = _num(value)
    return f"{100 * number:.1f}%" if math.isfinite(number) else "n/a"


def _ratio_text(value: Any) -> str:
    number = _num(value)
    if not math.isfinite(number):
        return "n/a"
    return f"{number:.3f}x" if number < 0.1 else f"{number:.2f}x"


def format_report(report: Mapping[str, Any]) -> str:
    """The printed table: headline ratios, MASE by series and horizon, interval coverage, targets."""
    config, machine, head = report["config"], report["machine"], report["headline"]
    project, seed = report["project"], report["seed"]
    targets = {t["id"]: t for t in report["targets"]}
    settings = config["settings"]
    lines = [
        "Benchmark: project pipeline vs seed design (issue 6), same data, same process tree",
        f"data      {config['data_folder']}: {', '.join(settings['series'])}",
        f"          history from {settings['history_start']} to as_of {config['as_of']} ({config['sessions']} aligned sessions), "
        f"last {settings['test_fraction']:.0%} test, {settings['epochs']} epochs, {config['forecast_sessions']}-session forecast",
        f"machine   {machine['cpu_count']} CPUs (load {machine.get('load_before', 'n/a')} before, {machine.get('load_after', 'n/a')} after), "
        f"Python {machine['python']}, TensorFlow {machine.get('tensorflow') or 'n/a'}, code HEAD {machine.get('git_commit') or 'n/a'}, "
        f"sources sha256 {machine.get('code_sha256') or 'n/a'}",
    ]
    if config.get("parallel_children"):
        lines.append("NOTE      --parallel: both children ran at once and competed for the CPUs; timings and ratios are NOT comparable")
    if config.get("non_default_settings"):
        lines.append(f"NOTE      non-default settings, targets are for the defaults: {config['non_default_settings']}")
    steps = config["forecast_sessions"]
    lines += ["", "Headline (ratio = project / seed, both measured in this run)"]
    row = "{:<34} {:>11} {:>11} {:>9}  {:<26} {}"
    lines.append(row.format("measurement", "project", "seed", "ratio", "target", "result"))
    rows = [
        ("training seconds", head["train_seconds"], 2, f"ratio <= {TRAIN_RATIO_MAX}", targets.get("train_ratio")),
        (f"{steps}-session forecast ms (warm)", head["forecast_ms_warm"], 1, f"project <= {FORECAST_MS_MAX:.0f} ms", targets.get("forecast_ms")),
        (f"{steps}-session forecast ms (1st call)", head["forecast_ms_first"], 1, "(info: includes tracing)", None),
        ("daily flow seconds (after imports)", head["daily_seconds"], 2, f"project <= {DAILY_SECONDS_MAX:.0f} s", targets.get("daily_seconds")),
        ("peak RSS MB", head["peak_rss_mb"], 0, f"ratio <= {RSS_RATIO_MAX:.2f}", targets.get("peak_rss_ratio")),
    ]
    for name, values, digits, target, verdict in rows:
        lines.append(
            row.format(name, _fmt(values["project"], digits), _fmt(values["seed"], digits), _ratio_text(values["ratio"]), target, verdict["result"] if verdict else "")
        )
    lines.append(
        f"(info) project: imports {_fmt(project.get('import_seconds'), 1)} s, training flow {_fmt(project.get('train_flow_seconds'), 1)} s "
        f"(Prefect server ready in {_fmt(config.get('prefect_server_start_seconds'), 1)} s, before the children), warm forecast min {_fmt(project.get('forecast_ms_warm_min'), 1)} ms of "
        f"{len(project.get('forecast_ms_warm_calls') or [])} calls, RSS after imports {_fmt(project.get('rss_after_imports_mb'), 0)} MB;\n       "
        f"seed: imports {_fmt(seed.get('import_seconds'), 1)} s, RSS after imports {_fmt(seed.get('rss_after_imports_mb'), 0)} MB"
    )
    phases = []
    for label, child in (("project", project), ("seed", seed)):
        points = child.get("peak_rss_checkpoints_mb") or {}
        if points:
            phases.append(f"{label}: " + ", ".join(f"{k.removeprefix('after_').replace('_', ' ')} {_fmt(v, 0)}" for k, v in points.items()))
    if phases:
        lines.append("(info) peak RSS MB after each phase: " + "; ".join(phases))

    lines += ["", "MASE on the walk-forward backtest (model MAE / random-walk MAE on the same targets; < 1 beats 'tomorrow equals today')"]
    row = "{:<20} {:>3} {:>9} {:>9} {:>9} {:>6} {:>6}  {:<10} {}"
    lines.append(row.format("series", "h", "project", "seed", "vs drift", "n(p)", "n(s)", "target", "result"))
    for item in report["mase"]:
        sid, h = item["series_id"], item["horizon"]
        verdict = targets.get(f"mase_h1:{sid}") if h == 1 else targets.get(f"vix_mase_h{h}") if sid == VIX_SERIES else None
        target = f"<= {MASE_H1_MAX:.2f}" if h == 1 else f"< {VIX_MASE_MAX:.2f}" if verdict else ""
        lines.append(
            row.format(
                sid, h, _fmt(item["project"], 3), _fmt(item["seed"], 3), _fmt(item["project_vs_drift"], 3),
                item["n_project"] if item["n_project"] is not None else "n/a", item["n_seed"] if item["n_seed"] is not None else "n/a",
                target, verdict["result"] if verdict else "",
            )
        )

    lines += ["", f"Interval coverage of the project's backtest (nominal 80% / 95%, target within {COVERAGE_TOLERANCE * 100:.0f} points)"]
    row = "{:<20} {:>3} {:>8} {:>8} {:>6}  {}"
    lines.append(row.format("series", "h", "cov 80", "cov 95", "n", "result"))
    for item in report["coverage"]:
        sid, h = item["series_id"], item["horizon"]
        verdicts = [targets.get(f"coverage_80:{sid}:h{h}"), targets.get(f"coverage_95:{sid}:h{h}")]
        result = "PASS" if all(v and v["result"] == "PASS" for v in verdicts) else "MISS"
        lines.append(
            row.format(sid, h, _percent(item["coverage_80"]), _percent(item["coverage_95"]),
                       item["n_coverage"] if item["n_coverage"] is not None else "n/a", result)
        )

    stages = project.get("stages") or {}
    for flow, label in (("train_flow", "training flow"), ("daily_flow", "daily flow")):
        runs = stages.get(flow) or []
        if runs:
            shown = ", ".join(f"{r['name']} {_fmt(r['seconds'], 2)}" for r in runs)
            lines += ["", f"Project {label} task runs, seconds (Prefect API): {shown}"]

    notes = list(project.get("notes") or [])
    if not project.get("same_data_as_seed", True):
        notes.append("the project's training levels differ from the seed's input levels")
    if notes:
        lines += ["", *[f"NOTE      {n}" for n in notes]]
    lines += ["", summary_line(report["targets"])]
    return "\n".join(lines)


def summary_line(targets: Sequence[Mapping[str, Any]]) -> str:
    """'Targets met: P of N.' plus what was missed, the coverage cells counted rather than listed."""
    passed = sum(t["result"] == "PASS" for t in targets)
    missed = [t["id"] for t in targets if t["result"] != "PASS" and not t["id"].startswith("coverage_")]
    coverage = [t for t in targets if t["id"].startswith("coverage_")]
    coverage_missed = sum(t["result"] != "PASS" for t in coverage)
    if coverage_missed:
        missed.append(f"interval coverage in {coverage_missed} of {len(coverage)} series/horizon/level cells")
    return f"Targets met: {passed} of {len(targets)}." + (f" Missed: {'; '.join(missed)}." if missed else "")


def machine_info() -> dict[str, Any]:
    """CPU count, Python and library versions, load average, code commit (read-only git)."""
    def version(*names: str) -> str | None:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    commit = None
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for package in ("flows", "tasks", "blocks", "bench"):
        for path in sorted((REPO_ROOT / package).glob("*.py")):
            digest.update(f"{package}/{path.name}\0".encode() + path.read_bytes() + b"\0")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": affinity,
        "cpu_count_total": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow", "tensorflow-cpu"),
        "keras": version("keras"),
        "numpy": version("numpy"),
        "pandas": version("pandas"),
        "prefect": version("prefect"),
        "market_forecast": version("market-forecast"),
        "git_commit": commit,
        # HEAD may not be what ran (uncommitted edits): this hash of the code's .py files is.
        "code_sha256": digest.hexdigest()[:12],
        "load_before": _load(),
    }


def _load() -> str | None:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return None


# ====================================================================== parent: main


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Serve the data, run both children, build the report. Cleans up whatever happens.

    Raises:
        BenchError: bad input, or a child failed.
    """
    from tests.harness.fred_server import FredServer

    folder = Path(args.data).expanduser().resolve()
    available = scan_data_folder(folder)
    settings = build_settings(series=args.series, epochs=args.epochs, history_start=args.history_start, overrides=args.setting)
    check_series(available, settings.series, folder)
    as_of = args.as_of or max(available[s].last for s in settings.series)
    # Horizons and forecast length are the project's settings (defaults: 1, 5, 10, 20, 30 and 30).
    horizons = tuple(settings.backtest.horizons)
    machine = machine_info()

    workdir = Path(tempfile.mkdtemp(prefix="market-forecast-bench-"))
    children: list[Child] = []
    server = None
    prefect_server: subprocess.Popen[bytes] | None = None
    try:
        api_key = secrets.token_hex(16)
        try:
            server = FredServer.from_csv_folder(folder, api_key=api_key)
        except (OSError, ValueError) as exc:
            raise BenchError(f"the FRED server cannot serve {folder}: {exc}") from None
        server.start()
        _say(f"serving {len(server.series_ids())} series from {folder} at {server.url}")
        levels = fetch_and_align(url=server.url, api_key=api_key, settings=settings, as_of=as_of)
        levels_csv = workdir / "levels.csv"
        write_levels_csv(levels, levels_csv)
        _say(f"aligned {levels.shape[1]} series on {len(levels)} sessions {levels.index[0].date()} .. {levels.index[-1].date()}")
        spec = {
            "settings": settings.model_dump(mode="json"),
            "as_of": as_of.isoformat(),
            "fred_url": server.url,
            "levels_csv": str(levels_csv),
            "horizons": list(horizons),
            "forecast_sessions": settings.forecast_horizon,
            "lookback_sessions": args.lookback,
        }
        t0 = time.perf_counter()
        prefect_server, prefect_api_url = start_prefect_server(workdir, timeout=min(args.timeout, 300.0))
        prefect_server_seconds = time.perf_counter() - t0
        _say(f"Prefect server for the project's flows ready at {prefect_api_url} in {prefect_server_seconds:.0f} s")
        results: dict[str, dict[str, Any]] = {}
        pending: list[Child] = []
        for role in ("seed", "project"):
            role_dir = workdir / role
            role_dir.mkdir()
            env = child_env(
                fred_url=server.url,
                api_key=api_key,
                prefect_home=role_dir / "prefect-home",
                prefect_api_url=prefect_api_url if role == "project" else None,
            )
            _say(f"{role}: running in a child process (log: {role_dir / (role + '.log')})")
            child = start_child(role, {**spec, "workdir": str(role_dir)}, workdir=role_dir, env=env)
            children.append(child)
            pending.append(child)
            if not args.parallel:
                results[role] = finish_child(child, timeout=args.timeout)
                _say(f"{role}: done in {time.monotonic() - child.started:.0f} s")
        if args.parallel:
            for child in pending:
                results[child.role] = finish_child(child, timeout=args.timeout)
                _say(f"{child.role}: done in {time.monotonic() - child.started:.0f} s")
        machine["load_after"] = _load()
        config = {
            "data_folder": str(args.data),
            "data": {
                sid: {"first": available[sid].first.isoformat(), "last": available[sid].last.isoformat(), "rows": available[sid].rows, "missing": available[sid].missing}
                for sid in settings.series
            },
            "as_of": as_of.isoformat(),
            "sessions": len(levels),
            "first_session": levels.index[0].date().isoformat(),
            "horizons": list(horizons),
            "forecast_sessions": settings.forecast_horizon,
            "lookback_sessions": args.lookback,
            "parallel_children": bool(args.parallel),
            "prefect_server_start_seconds": prefect_server_seconds,
            "settings": settings.model_dump(mode="json"),
            "non_default_settings": non_default_settings(settings),
            "command": " ".join(["python -m bench.run", *args.argv]),
        }
        return build_report(project=results["project"], seed=results["seed"], config=config, machine=machine)
    finally:
        for child in children:
            _kill_group(child.process)
        if prefect_server is not None:
            _kill_group(prefect_server)
        if server is not None:
            server.stop()
        if args.keep_work:
            _say(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def write_report(report: Mapping[str, Any], out: Path) -> Path:
    """Write the report as JSON to out/bench-<UTC time>.json and return the path."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = report["created_utc"].replace("-", "").replace(":", "").replace("T", "_").rstrip("Z")
    path = out / f"bench-{stamp}.json"
    path.write_text(json.dumps(_nan_to_none(report), indent=2) + "\n")
    return path


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
        description="Benchmark the project's pipeline against the seed design on a folder of FRED CSVs (see bench/README.md).",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of FRED download CSVs, e.g. ../shared/data/fred")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="folder for the JSON result (default: bench/results)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of both designs (default: the project's, 20)")
    parser.add_argument("--series", nargs="+", default=None, help="series ids (space or comma separated; default: the project's four)")
    parser.add_argument("--history-start", type=date.fromisoformat, default=None, help="first date used (default: the project's, 2020-01-01)")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="reference date (default: the last date in the data)")
    parser.add_argument("--lookback", type=int, default=LOOKBACK_SESSIONS, help=f"sessions the daily runs predict (default: {LOOKBACK_SESSIONS})")
    parser.add_argument(
        "--setting", action="append", default=[], metavar="NAME=VALUE",
        help="override one project setting (dotted names, JSON values), e.g. --setting lstm_units=32; repeatable",
    )
    parser.add_argument("--timeout", type=float, default=CHILD_TIMEOUT_SECONDS, help="seconds each child may run (default: 600)")
    parser.add_argument(
        "--parallel", action="store_true",
        help="run both children at once: faster, but they compete for the CPUs, so timings and ratios are not comparable (smoke tests only)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary work folder (child logs, outputs) for inspection")
    args = parser.parse_args(argv)
    args.series = _series_list(args.series)
    args.argv = list(argv or [])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (2 on a benchmark error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        if len(argv) != 3:
            print("usage: python -m bench.run _child {seed,project} SPEC.json", file=sys.stderr)
            return 2
        return child_main(argv[1], Path(argv[2]))
    args = parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        report = run_benchmark(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: children stopped, server stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(format_report(report))
    path = write_report(report, args.out)
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

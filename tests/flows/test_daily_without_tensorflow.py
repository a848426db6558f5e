"""The daily flow runs the champion without TensorFlow, and forecasts what TensorFlow would.

A model is trained (TensorFlow) on data served by the local FRED-compatible server; then the daily
flow runs in a fresh process, as a worker runs it, against a real Prefect server. That process never
imports TensorFlow or Keras, and the forecast it publishes equals, to 1e-5, the forecast computed
here with the same saved model loaded by Keras; so do the network's own unshrunk predictions and
30-session forecasts (the ensemble alone may give the network no weight).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flows.train_model import train_model
from tasks.adapters.blob_store import resolve_storage
from tasks.adapters.model_store import (
    MODEL_FILE,
    load_champion,
    load_model_files,
    model_from_bytes,
    read_champion_pointer,
)
from tasks.core.align import align_sessions
from tasks.core.demo import generate_demo_series
from tasks.core.ensemble import Ensemble
from tasks.core.features import Scaler
from tasks.core.forecast import forecast_sessions
from tasks.core.model import predictor_for
from tasks.core.settings import Settings
from tasks.core.windows import daily_fetch_start
from tests.harness.fred_server import FredServer
from tests.harness.settings import promoting_settings

REPO = Path(__file__).resolve().parents[2]
TRAIN_AS_OF, DAILY_AS_OF = date(2025, 6, 30), date(2025, 7, 8)
KEY = "0123456789abcdef0123456789abcdef"
BAND_COLUMNS = ["forecast", "lower_95", "lower_80", "upper_80", "upper_95"]

# The daily flow, run as a deployment's process would run it; reports what it loaded.
DAILY_CHILD = """
import json, sys
from datetime import date
from flows.daily_forecast import daily_forecast
from tasks.core.settings import Settings
from tasks.core.windows import daily_fetch_start
settings = Settings.model_validate_json(sys.argv[1])
result = daily_forecast(as_of=date.fromisoformat(sys.argv[2]), settings=settings, output_dir=sys.argv[3])
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "jax"})
print("RESULT " + json.dumps({"result": result, "loaded": loaded}))
"""


@dataclass(frozen=True)
class DailyRun:
    store: Path
    settings: Settings
    result: dict[str, Any]
    loaded: list[str]


@pytest.fixture(scope="module")
def fred() -> Iterator[FredServer]:
    with FredServer(generate_demo_series(Settings().series, DAILY_AS_OF), api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def daily_run(
    prefect_harness: None, prefect_server: Any, fred: FredServer, tmp_path_factory: pytest.TempPathFactory
) -> DailyRun:
    store = tmp_path_factory.mktemp("no-tf-store")
    settings = promoting_settings(lstm_units=16, epochs=3)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in fred.environment().items():
            patch.setenv(name, value)
        trained = train_model(as_of=TRAIN_AS_OF, settings=settings, output_dir=str(store))
    assert trained["data_source"] == "fred" and trained["promoted"]
    env = prefect_server.env(**fred.environment())
    proc = subprocess.run(
        [sys.executable, "-c", DAILY_CHILD, settings.model_dump_json(), DAILY_AS_OF.isoformat(), str(store)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    return DailyRun(store, settings, report["result"], report["loaded"])


def test_a_complete_daily_run_never_imports_tensorflow(daily_run: DailyRun) -> None:
    assert daily_run.result["data_source"] == "fred"
    assert daily_run.loaded == []


def test_its_forecast_equals_the_tensorflow_forecast_of_the_same_model(daily_run: DailyRun) -> None:
    folder = daily_run.store / daily_run.result["run_folder"]
    forecast = pd.read_csv(folder / "forecasted_data.csv", parse_dates=["date"])
    actuals = pd.read_csv(folder / "actuals.csv", parse_dates=["date"])
    published = actuals.pivot(index="date", columns="series_id", values="value")[list(daily_run.settings.series)]
    # The daily flow fetched more than it publishes (the classical members' estimation window):
    # the same sessions, from the same demo world the FRED server served.
    start = daily_fetch_start(DAILY_AS_OF, lookback_sessions=365, settings=daily_run.settings)
    raw = {
        sid: values.loc[pd.Timestamp(start) :]
        for sid, values in generate_demo_series(Settings().series, DAILY_AS_OF).items()
    }
    levels = align_sessions(raw, start=start, as_of=DAILY_AS_OF, max_fill=3, max_stale=5).levels
    np.testing.assert_array_equal(levels.loc[published.index].to_numpy(), published.to_numpy())

    storage = resolve_storage(None, str(daily_run.store))
    pointer = read_champion_pointer(storage, timeout=10)
    assert pointer is not None and pointer.version == daily_run.result["model_version"]
    files, card = load_model_files(storage, pointer.version, card_sha256=pointer.model_card_sha256, timeout=10)
    # The same ensemble (members, weights, bands) with the network run by TensorFlow.
    ensemble = Ensemble.from_model_card(
        predictor_for(model_from_bytes(files[MODEL_FILE])), Scaler.from_json(files["scaler.json"]), card
    )
    with_tensorflow = forecast_sessions(
        ensemble, levels, horizon=daily_run.settings.forecast_horizon, z_quantiles=card.interval_quantiles()
    )
    assert len(forecast) == len(with_tensorflow) == 30 * len(daily_run.settings.series)
    merged = forecast.merge(with_tensorflow, on=["series_id", "horizon"], suffixes=("", "_tf"), validate="one_to_one")
    assert (merged["date"] == merged["date_tf"]).all()
    for column in BAND_COLUMNS:
        np.testing.assert_allclose(merged[column], merged[f"{column}_tf"], rtol=1e-5, err_msg=column)

    # The ensemble may give the network little or no weight (a tiny model's shrinkage is often 0), so
    # the comparison above alone could hold with any network. The network itself, unshrunk: the
    # NumPy forward pass the daily flow loads against Keras, at every published session (the
    # one-session predictions) and over the 30-session recursive forecast from the last one.
    loaded = load_champion(storage, daily_run.settings, data_source="fred")
    unshrunk = loaded.scaler.with_shrinkage(np.ones(len(loaded.scaler.series)))
    origins = np.flatnonzero(levels.index.isin(published.index))
    horizon = daily_run.settings.forecast_horizon
    network = {
        name: replace(ensemble, predictor=predictor, scaler=unshrunk).lstm_paths(levels, origins, horizon)
        for name, predictor in (("numpy", loaded.predictor), ("keras", ensemble.predictor))
    }
    usable = np.isfinite(network["keras"]).all(axis=(1, 2))
    assert usable.sum() >= len(origins) - 1 and usable[-1]
    np.testing.assert_allclose(np.exp(network["numpy"][usable]), np.exp(network["keras"][usable]), rtol=1e-5)
    random_walk = np.log(levels.to_numpy())[origins][:, None, :]
    moved = np.abs(network["keras"][usable] - random_walk[usable]).max(axis=(0, 1))
    assert (moved > 1e-4).all(), f"the network's forecast stays at the last level for some series: {moved}"

    # The window the daily flow fetched holds everything the forecast reads: on the whole history
    # (from the demo's first day) the same model forecasts the same values and bands.
    history = generate_demo_series(Settings().series, DAILY_AS_OF)
    first_day = max(values.index[0] for values in history.values()).date()
    everything = align_sessions(history, start=first_day, as_of=DAILY_AS_OF, max_fill=3, max_stale=5).levels
    assert len(everything) > len(levels)
    on_everything = forecast_sessions(
        ensemble, everything, horizon=daily_run.settings.forecast_horizon, z_quantiles=card.interval_quantiles()
    )
    for column in BAND_COLUMNS:
        np.testing.assert_allclose(on_everything[column], with_tensorflow[column], rtol=1e-9, err_msg=column)

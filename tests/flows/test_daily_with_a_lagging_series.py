"""The daily run when a series has no value for the newest session (FRED serves ".").

It happens every year: on Columbus Day and Veterans Day the NYSE trades but the bond market is
closed, so the ICE BofA index has no value that day while SP500, DJIA and the VIX do. The aligner
carries the last value forward (and flags it). On the first session after the champion's data,
that filled row is the whole live split of the series, and the random walk's error on it is 0.
The run must still publish, with the ratio it cannot compute left empty.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from flows.daily_forecast import daily_forecast
from flows.train_model import train_model
from tasks.core.demo import generate_demo_series
from tasks.core.settings import Settings
from tests.harness.fred_server import FredServer
from tests.harness.settings import promoting_settings

TRAIN_AS_OF, DAILY_AS_OF = date(2025, 6, 30), date(2025, 7, 1)
LAGGING = "BAMLCC4A0710YTRIV"
KEY = "fedcba9876543210fedcba9876543210"


@pytest.fixture(scope="module")
def fred() -> Iterator[FredServer]:
    series = generate_demo_series(Settings().series, DAILY_AS_OF)
    lagging = series[LAGGING].copy()
    lagging[pd.Timestamp(DAILY_AS_OF)] = math.nan  # served as "."
    with FredServer({**series, LAGGING: lagging}, api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def published(prefect_harness: None, fred: FredServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("lagging-store")
    settings = promoting_settings()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in fred.environment().items():
            patch.setenv(name, value)
        trained = train_model(as_of=TRAIN_AS_OF, settings=settings, output_dir=str(store))
        assert trained["data_source"] == "fred" and trained["promoted"]
        result = daily_forecast(as_of=DAILY_AS_OF, settings=settings, output_dir=str(store))
    return store / result["run_folder"]


def test_the_lagging_series_newest_session_is_published_as_filled(published: Path) -> None:
    actuals = pd.read_csv(published / "actuals.csv", parse_dates=["date"])
    newest = actuals[actuals["date"] == pd.Timestamp(DAILY_AS_OF)].set_index("series_id")
    assert bool(newest.loc[LAGGING, "filled"]) and not newest.drop(index=LAGGING)["filled"].any()


def test_its_live_row_is_scored_with_an_empty_rel_mae_and_the_run_publishes(published: Path) -> None:
    metrics = pd.read_csv(published / "model_metrics.csv")
    live = metrics[metrics["split"] == "live"].set_index("series_id")
    assert (live["n"] == 1).all()
    assert live.loc[LAGGING, "naive_mae"] == 0 and pd.isna(live.loc[LAGGING, "rel_mae"])
    assert live.drop(index=LAGGING)["rel_mae"].notna().all()
    forecast = pd.read_csv(published / "forecasted_data.csv")
    assert forecast.groupby("series_id").size().to_dict() == dict.fromkeys(Settings().series, 30)

"""Smoke tests of the seed-design benchmark baseline (tiny model, synthetic data)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bench.seed_design import SeedResult, backtest_seed_design, run_seed_daily, run_seed_design, save_seed_model
from tests.harness.fred_server import FredServer

SERIES = ["SP500", "VIXCLS", "DJIA", "BAMLCC4A0710YTRIV"]


def _synthetic_levels(n_rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    steps = rng.normal(0.0, 0.01, size=(n_rows, len(SERIES)))
    start = np.array([3000.0, 20.0, 30000.0, 600.0])
    values = start * np.exp(np.cumsum(steps, axis=0))
    index = pd.bdate_range("2022-01-03", periods=n_rows)
    return pd.DataFrame(values, index=index, columns=SERIES)


def test_run_seed_design_shapes_and_metrics() -> None:
    levels = _synthetic_levels()
    forecast_dates = pd.bdate_range(levels.index[-1] + pd.offsets.BDay(1), periods=30)
    result = run_seed_design(levels, forecast_dates=forecast_dates, epochs=1, units=4)

    assert isinstance(result, SeedResult)
    assert result.train_seconds > 0 and result.forecast_ms > 0

    assert result.forecast.shape == (30, len(SERIES))
    assert list(result.forecast.columns) == SERIES
    assert result.forecast.index.equals(forecast_dates)
    assert np.isfinite(result.forecast.to_numpy()).all()

    n_windows = len(levels) - 10
    n_test = n_windows - int(n_windows * 0.8)
    assert result.test_predictions.shape == (n_test, len(SERIES))
    assert result.test_predictions.index.equals(levels.index[-n_test:])

    assert list(result.metrics.columns) == ["mse", "mae", "r2", "naive_mae", "rel_mae"]
    assert list(result.metrics.index) == SERIES
    np.testing.assert_allclose(result.metrics["rel_mae"], result.metrics["mae"] / result.metrics["naive_mae"])

    assert list(result.history.columns) == ["epoch", "loss", "val_loss"]
    assert len(result.history) == 1

    bt = backtest_seed_design(levels, result, horizons=(1, 5))
    assert list(bt.columns) == ["series_id", "horizon", "n", "mae", "naive_mae", "rel_mae"]
    assert len(bt) == 2 * len(SERIES)
    h1 = bt[bt["horizon"] == 1].set_index("series_id")
    assert (h1["n"] == n_test).all()
    np.testing.assert_allclose(h1["rel_mae"], result.metrics.loc[h1.index, "rel_mae"], rtol=1e-4)


def test_seed_daily_run_predicts_the_lookback_forecasts_sessions_and_writes_four_csvs(tmp_path: Path) -> None:
    levels = _synthetic_levels()
    as_of = levels.index[-1].date()
    forecast_dates = pd.bdate_range(levels.index[-1] + pd.offsets.BDay(1), periods=5)
    result = run_seed_design(levels, forecast_dates=forecast_dates, epochs=1, units=4)
    model_path, scaler_path = save_seed_model(result, tmp_path / "model")

    with FredServer({sid: levels[sid] for sid in SERIES}) as server:
        daily = run_seed_daily(
            url=server.url,
            api_key=server.api_key,
            series=SERIES,
            as_of=as_of,
            lookback_sessions=40,
            sequence_length=10,
            horizon=5,
            model_path=model_path,
            scaler_path=scaler_path,
            out_dir=tmp_path / "daily",
        )

    assert daily.predicted_sessions == 40 and daily.forecast_steps == 5 and daily.seconds > 0
    assert sorted(p.name for p in (tmp_path / "daily").iterdir()) == [
        "actuals.csv",
        "forecasted_data.csv",
        "model_metrics.csv",
        "predicted.csv",
    ]
    forecast = pd.read_csv(tmp_path / "daily" / "forecasted_data.csv", parse_dates=["date"])
    assert len(forecast) == 5 and forecast["date"].min().date() > as_of
    predicted = pd.read_csv(tmp_path / "daily" / "predicted.csv", parse_dates=["date"])
    assert len(predicted) == 40
    assert date(2023, 2, 20) not in set(predicted["date"].dt.date)  # Presidents' Day: in the data, not a session
    metrics = pd.read_csv(tmp_path / "daily" / "model_metrics.csv")
    assert list(metrics["series_id"]) == SERIES and np.isfinite(metrics[["mse", "mae", "r2"]].to_numpy()).all()

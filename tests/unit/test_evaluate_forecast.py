"""Metrics against the naive baseline, split labels, forecast dates and tables."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from tasks.core.calendar import sessions_after
from tasks.core.contracts import EnsembleCard
from tasks.core.ensemble import Ensemble
from tasks.core.errors import InsufficientDataError
from tasks.core.features import Scaler, SplitDates, make_features
from tasks.core.forecast import forecast_levels, forecast_table, one_step_predictions
from tasks.core.metrics import METRIC_COLUMNS, insample_naive_mae, mae, mase, pinball_loss, r2, rmse, score_predictions


def test_rel_mae_is_model_mae_over_random_walk_mae_on_the_same_rows() -> None:
    predictions = pd.DataFrame(
        {
            "series_id": "A",
            "split": "test",
            "actual": [10.0, 11.0, 12.0, 11.0],
            "predicted": [10.5, 11.0, 11.5, 11.0],
            "naive": [9.0, 10.0, 11.0, 12.0],
        }
    )
    row = score_predictions(predictions).iloc[0]
    assert list(score_predictions(predictions).columns) == METRIC_COLUMNS
    assert row["mae"] == pytest.approx(0.25) and row["naive_mae"] == pytest.approx(1.0)
    assert row["rel_mae"] == pytest.approx(0.25)
    assert row["mse"] == pytest.approx(0.125) and row["naive_mse"] == pytest.approx(1.0)
    assert row["n"] == 4
    assert np.isnan(row["mase"])  # no training scale given: unknown, never the ratio above


@pytest.mark.parametrize("tau", [0.025, 0.1, 0.9, 0.975])
def test_the_metrics_agree_with_scikit_learns(tau: float) -> None:
    rng = np.random.default_rng(7)
    actual = rng.normal(100.0, 5.0, 300)
    predicted = actual + rng.normal(1.0, 3.0, 300)  # biased, so over- and under-forecasts differ
    # scikit-learn (installed by the [test] extra) as an independent reference.
    assert mae(actual, predicted) == pytest.approx(metrics.mean_absolute_error(actual, predicted))
    assert rmse(actual, predicted) == pytest.approx(metrics.root_mean_squared_error(actual, predicted))
    assert r2(actual, predicted) == pytest.approx(metrics.r2_score(actual, predicted))
    reference = metrics.mean_pinball_loss(actual, predicted, alpha=tau)
    assert pinball_loss(actual, predicted, tau) == pytest.approx(reference)


def test_mase_scales_by_the_in_sample_naive_mae_of_the_training_part() -> None:
    insample = [1.0, 2.0, 4.0, 7.0]  # naive errors 1, 2, 3: scale 2
    assert insample_naive_mae(insample) == pytest.approx(2.0)
    assert mase([10.0, 12.0], [11.0, 12.0], insample) == pytest.approx(0.5 / 2.0)
    predictions = pd.DataFrame(
        {"series_id": "A", "split": "test", "actual": [10.0, 12.0], "predicted": [11.0, 12.0], "naive": [9.0, 10.0]}
    )
    row = score_predictions(predictions, mase_scale={"A": 2.0}).iloc[0]
    assert row["mase"] == pytest.approx(0.25) and row["rel_mae"] == pytest.approx(0.5 / 1.5)


def test_metrics_are_grouped_by_series_and_split() -> None:
    predictions = pd.DataFrame(
        {
            "series_id": ["A", "A", "B", "B"],
            "split": ["train", "test", "train", "test"],
            "actual": [1.0, 2.0, 3.0, 4.0],
            "predicted": [1.0, 2.0, 3.0, 4.0],
            "naive": [2.0, 1.0, 2.0, 3.0],
        }
    )
    assert score_predictions(predictions)[["series_id", "split"]].values.tolist() == [
        ["A", "train"],
        ["A", "test"],
        ["B", "train"],
        ["B", "test"],
    ]


def test_split_labels_follow_the_model_card_dates() -> None:
    dates = pd.DatetimeIndex(["2024-01-02", "2024-06-03", "2024-09-03", "2024-12-31", "2025-01-02"])
    labels = SplitDates(date(2024, 6, 3), date(2024, 9, 3), date(2024, 12, 31)).label(dates)
    assert labels.tolist() == ["train", "validation", "test", "test", "live"]


def test_forecast_dates_are_the_next_nyse_sessions_skipping_holidays() -> None:
    dates = sessions_after(date(2026, 11, 24), 5)
    assert [d.date().isoformat() for d in dates] == [
        "2026-11-25",
        "2026-11-27",
        "2026-11-30",
        "2026-12-01",
        "2026-12-02",
    ]
    assert len(sessions_after(date(2026, 11, 20), 30)) == 30


class ZeroPredictor:
    """Predicts a standardised return of 0 (the training mean) for every window."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((x.shape[0], 4), dtype=np.float32)


def lstm_alone(predictor: object, scaler: Scaler, *, sequence_length: int = 5, level_window: int = 20) -> Ensemble:
    """The network alone as the model (what a format-1 model card describes)."""
    return Ensemble(predictor, scaler, EnsembleCard.lstm_only(scaler.series), sequence_length, level_window)


def test_too_few_sessions_for_one_prediction_say_how_many_are_needed(levels: pd.DataFrame) -> None:
    scaler = Scaler.fit(make_features(levels, 20).iloc[:300]).with_shrinkage(np.zeros(4))
    model = lstm_alone(ZeroPredictor(), scaler)  # sequence_length 5, level_window 20: 25 sessions
    split = SplitDates(date(2024, 1, 2), date(2024, 6, 3), levels.index[-1].date())
    assert one_step_predictions(model, levels.iloc[:25], split_dates=split)["date"].nunique() == 1
    with pytest.raises(InsufficientDataError, match=r"holds 24 aligned session\(s\) \(2023-01-03 .. .*needs 25 "):
        one_step_predictions(model, levels.iloc[:24], split_dates=split)


def test_a_model_with_zero_shrinkage_is_exactly_the_random_walk(levels: pd.DataFrame) -> None:
    scaler = Scaler.fit(make_features(levels, 20).iloc[:300]).with_shrinkage(np.zeros(4))
    split = SplitDates(date(2024, 1, 2), date(2024, 6, 3), levels.index[-1].date())
    model = lstm_alone(ZeroPredictor(), scaler)
    predictions = one_step_predictions(model, levels, split_dates=split)
    np.testing.assert_allclose(predictions["predicted"], predictions["naive"])
    assert (score_predictions(predictions)["rel_mae"] == 1.0).all()
    path = forecast_levels(model, levels, horizon=30)
    np.testing.assert_allclose(path, np.tile(levels.to_numpy()[-1], (30, 1)))


def test_one_step_predictions_pair_each_date_with_the_previous_actual(levels: pd.DataFrame) -> None:
    scaler = Scaler.fit(make_features(levels, 20).iloc[:300]).with_shrinkage(np.zeros(4))
    split = SplitDates(date(2024, 1, 2), date(2024, 6, 3), levels.index[-1].date())
    predictions = one_step_predictions(
        lstm_alone(ZeroPredictor(), scaler), levels, split_dates=split, first_date=date(2025, 1, 2)
    )
    sp = predictions[predictions["series_id"] == "SP500"].set_index("date")
    assert sp.index[0] == pd.Timestamp("2025-01-02")
    day = sp.index[3]
    position = levels.index.get_loc(day)
    assert sp.loc[day, "actual"] == levels["SP500"].iloc[position]
    assert sp.loc[day, "naive"] == levels["SP500"].iloc[position - 1]
    assert set(sp["split"]) == {"test"}


def test_forecast_table_is_long_with_ordered_bands() -> None:
    forecast = np.array([[100.0, 20.0], [101.0, 19.0]])
    dates = sessions_after(date(2026, 11, 20), 2)
    quantiles = pd.DataFrame(
        {
            "series_id": ["A", "A", "B", "B"],
            "horizon": [1, 2, 1, 2],
            "q025": -0.02,
            "q10": -0.01,
            "q90": 0.01,
            "q975": 0.02,
        }
    )
    table = forecast_table(forecast, ("A", "B"), dates, quantiles)
    assert list(table.columns) == [
        "date",
        "series_id",
        "horizon",
        "forecast",
        "lower_95",
        "lower_80",
        "upper_80",
        "upper_95",
    ]
    assert table["series_id"].tolist() == ["A", "A", "B", "B"] and table["horizon"].tolist() == [1, 2, 1, 2]
    row = table.iloc[1]
    assert row["forecast"] == 101.0 and row["upper_95"] == pytest.approx(101.0 * np.exp(0.02))
    assert (table["lower_95"] <= table["lower_80"]).all() and (table["upper_80"] <= table["upper_95"]).all()

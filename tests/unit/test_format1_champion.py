"""A champion saved by an earlier version (model card format 1) still serves the daily flow: as its LSTM alone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from tasks.adapters.blob_store import resolve_storage
from tasks.adapters.model_store import LoadedModel, load_champion, promote_champion, save_model_version, serialize_model
from tasks.core.contracts import CARD_FORMAT_1, ModelCard
from tasks.core.features import last_window, level_history, make_features
from tasks.core.forecast import forecast_levels, one_step_predictions
from tasks.core.metrics import score_predictions
from tasks.core.model import forecast_log_levels
from tasks.core.outputs import label_table, validate_outputs
from tasks.core.training import fit_lstm
from tests.harness.settings import tiny_settings
from tests.unit.test_promotion import card as model_card

CREATED = datetime(2025, 6, 30, 22, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def champion(levels: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    settings = tiny_settings()
    trained = fit_lstm(levels, settings)
    model = serialize_model(trained.model, trained.scaler, created_utc=CREATED)
    old = model_card(list(settings.series), source="demo", level_window=settings.level_window, card_format=1)
    old = old.model_copy(update={"version": model.version, "files": model.hashes()})
    # As an earlier version wrote it: no ensemble, no mase_scale, format 1.
    assert ModelCard.from_bytes(old.to_bytes()).format == CARD_FORMAT_1
    storage = resolve_storage(None, str(tmp_path_factory.mktemp("format-1-store")))
    card_sha = save_model_version(storage, old, model.files, timeout=10)
    promote_champion(storage, old, card_sha, replaces=None, promoted_utc=CREATED, timeout=10)
    return load_champion(storage, settings, data_source="demo")


def test_a_format_1_champion_loads_as_its_lstm_alone(champion: LoadedModel) -> None:
    assert champion.card.format == CARD_FORMAT_1 and champion.card.ensemble is None
    assert {tuple(w.weights.items()) for w in champion.ensemble.card.weights} == {(("lstm", 1.0),)}


def test_its_forecast_is_the_lstms_own_recursion_as_the_earlier_version_forecast(
    champion: LoadedModel, levels: pd.DataFrame
) -> None:
    settings = champion.settings
    features = make_features(levels, settings.level_window)
    scaled = champion.scaler.transform(features.to_numpy())
    history = level_history(levels, features.index[-1:], settings.level_window)
    before = np.exp(
        forecast_log_levels(
            champion.predictor, last_window(scaled, settings.sequence_length), history, champion.scaler, 30
        )[0]
    )
    np.testing.assert_allclose(forecast_levels(champion.ensemble, levels, horizon=30), before, rtol=1e-12)


def test_its_daily_metrics_have_rel_mae_and_an_empty_mase(champion: LoadedModel, levels: pd.DataFrame) -> None:
    predictions = one_step_predictions(
        champion.ensemble, levels, split_dates=champion.split_dates, first_date=date(2025, 1, 2)
    )
    metrics = score_predictions(predictions, mase_scale=champion.card.mase_scale)
    assert metrics["rel_mae"].notna().all() and metrics["mase"].isna().all()
    labelled = label_table(metrics, "model_metrics.csv", model_version=champion.version, data_source="demo")
    validate_outputs({"model_metrics.csv": labelled}, last_actual=levels.index[-1].date(), horizon=30)

"""The training flow `train-model`: FRED -> aligned sessions -> LSTM -> honest evaluation -> model store.

Run it on the embedded demo data with `python -m flows.train_model` (see README.md). Each stage is a
task; this module only wires them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from flows.cli import run_from_command_line
from flows.common import run_header, run_name, today_in_new_york, utc_now
from tasks.core.settings import Settings
from tasks.ops.alerts import notify_run_failure
from tasks.stages.data import align_sessions_task, fetch_all, resolve_source_task
from tasks.stages.models import promote_champion_task, read_champion_card_task, save_model_task, serialize_model_task
from tasks.stages.predict import forecast_sessions_task, predict_history_task, score_predictions_task
from tasks.stages.publish import build_outputs_task, free_run_folder_task, publish_outputs, resolve_storage_task
from tasks.stages.train import (
    backtest_task,
    champion_gate_task,
    describe_model_task,
    fit_ensemble_task,
    train_lstm_task,
)


@flow(name="train-model", flow_run_name=lambda: run_name("train"), log_prints=True, on_failure=[notify_run_failure])
def train_model(
    as_of: date | None = None,
    *,
    settings: Settings = Settings(),
    output_dir: str = "data",
    storage_block: str | None = None,
    fred_block: str | None = None,
) -> dict[str, Any]:
    """Train, evaluate on held-out data, backtest, forecast, and promote the model if it earns it.

    Args:
        as_of: Reference date; no observation after it is used. Default: today in New York.
        settings: Pipeline settings (series, windows, epochs, split, ...).
        output_dir: Local folder for models and runs when no storage_block is given.
        storage_block: A saved storage block, '<block-type-slug>/<name>' (e.g.
            'azure-blob-storage-container/market-forecast'); None = output_dir.
        fred_block: Name of a saved FredCredentials block; None = FRED_API_KEY from the
            environment, or the offline demo data when that is not set.

    Returns:
        A summary: run folder, model version, whether it was promoted and why.
    """
    as_of = as_of or today_in_new_york()
    created = utc_now()
    storage = resolve_storage_task(storage_block, output_dir)
    # Read the champion first: a storage problem (e.g. a missing container) fails before training.
    champion_card = read_champion_card_task(storage, settings)
    folder = free_run_folder_task(storage, created, settings)
    source = resolve_source_task(fred_block)
    raw = fetch_all(source, settings, start=settings.history_start, end=as_of)
    aligned = align_sessions_task(raw, start=settings.history_start, as_of=as_of, settings=settings)

    trained = train_lstm_task(aligned.levels, settings)
    ensemble = fit_ensemble_task(trained, aligned.levels, settings)
    predictions = predict_history_task(ensemble, aligned.levels, settings, split_dates=trained.split_dates)
    metrics = score_predictions_task(predictions, splits=("test",), mase_scale=ensemble.mase_scale)
    backtest = backtest_task(trained, ensemble, aligned.levels, settings)
    forecast = forecast_sessions_task(ensemble, aligned.levels, settings, z_quantiles=backtest.z_quantiles)
    model = serialize_model_task(trained, created_utc=created)
    tables = build_outputs_task(
        aligned,
        predictions=predictions,
        metrics=metrics,
        forecast=forecast,
        history=trained.history,
        backtest=backtest.metrics,
        model_version=model.version,
        data_source=source.kind,
        as_of=as_of,
        settings=settings,
    )

    gate = champion_gate_task(backtest.metrics, champion_card, settings, data_source=source.kind)
    card = describe_model_task(
        trained,
        ensemble,
        backtest,
        metrics=metrics,
        version=model.version,
        files=model.hashes(),
        settings=settings,
        created_utc=created,
        as_of=as_of,
        data_source=source.kind,
        training_run_folder=folder,
        gate=gate,
    )
    card_sha = save_model_task(storage, card, model.files, settings)
    if gate.promoted:
        promote_champion_task(storage, card, card_sha, promoted_utc=created, settings=settings)

    header = run_header(
        kind="training",
        created_utc=created,
        as_of=as_of,
        data_source=source.kind,
        data_start=aligned.first_date,
        data_through=aligned.last_date,
        model_version=model.version,
        model_training_run=folder,
        run_folder=folder,
        settings=settings,
        champion=gate.promoted,
        champion_gate=gate.reason,
    )
    # latest.json is what Power BI shows: daily forecasts only. A training run is found through
    # models/champion.json and the daily manifests' model_training_run.
    published = publish_outputs(
        storage, tables, header, move_latest=False, settings=settings, note=f"Champion gate: {gate.reason}"
    )
    return {
        "run_folder": folder,
        "location": published.location,
        "model_version": model.version,
        "promoted": gate.promoted,
        "reason": gate.reason,
        "data_source": source.kind,
        "data_through": aligned.last_date.isoformat(),
    }


if __name__ == "__main__":
    run_from_command_line(train_model)

"""The training flow `train-model`: FRED -> aligned sessions -> LSTM -> honest evaluation -> model store.

Run it on the embedded demo data with `python -m flows.train_model` (see README.md). Each stage is a
task; this module only wires them.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.common import fetch_all, manifest_fields, today_in_new_york, utc_now
from tasks.alerts import notify_run_failure
from tasks.align import align_sessions_task
from tasks.backtest import backtest_task
from tasks.evaluate import score_predictions_task
from tasks.fetch import resolve_source_task
from tasks.forecast import forecast_sessions_task, predict_history_task
from tasks.model_store import (
    model_version_name,
    promote_champion_task,
    read_champion_card_task,
    save_model_task,
    serialize_model,
)
from tasks.outputs import actuals_table, assemble_tables, serialize_tables, validate_outputs_task
from tasks.report import RunFacts, post_artifacts_task, published_url
from tasks.settings import Settings
from tasks.storage import build_manifest, free_run_folder_task, publish_run_task, resolve_storage_task, sha256_hex
from tasks.training import build_model_card, champion_gate_task, train_lstm_task


def _run_name() -> str:
    as_of = flow_run.parameters.get("as_of") or today_in_new_york()
    return f"train-{as_of}"


@flow(name="train-model", flow_run_name=_run_name, log_prints=True, on_failure=[notify_run_failure])
def train_model(
    as_of: date | None = None,
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
    levels = aligned.levels

    trained = train_lstm_task(levels, settings)
    predictions = predict_history_task(trained.model, trained.scaler, levels, settings, split_dates=trained.split_dates)
    metrics = score_predictions_task(predictions, splits=("test",))
    backtest = backtest_task(trained, levels, settings)
    forecast = forecast_sessions_task(trained.model, trained.scaler, levels, settings, z_quantiles=backtest.z_quantiles)

    model_files = serialize_model(trained)
    version = model_version_name(created, model_files["lstm_model.keras"])
    tables = assemble_tables(
        actuals=actuals_table(levels, aligned.filled),
        predictions=predictions,
        metrics=metrics,
        forecast=forecast,
        history=trained.history,
        backtest=backtest.metrics,
        model_version=version,
        data_source=source.kind,
        as_of=as_of,
    )
    validate_outputs_task(tables, last_actual=aligned.last_date, horizon=settings.forecast_horizon)

    promote, reason = champion_gate_task(backtest.metrics, champion_card, settings, data_source=source.kind)
    card = build_model_card(
        trained,
        version=version,
        settings=settings,
        created_utc=created.isoformat(),
        as_of=as_of,
        data_source=source.kind,
        metrics=metrics,
        backtest=backtest.metrics,
        z_quantiles=backtest.z_quantiles,
        files={name: sha256_hex(content) for name, content in model_files.items()},
    )
    card["training_run_folder"] = folder
    card["champion_gate"] = {"promoted": promote, "reason": reason}
    card_sha = save_model_task(storage, version, model_files, card, settings)
    if promote:
        promote_champion_task(
            storage,
            version,
            card_sha,
            promoted_utc=created.isoformat(),
            reason=reason,
            training_run_folder=folder,
            settings=settings,
        )

    files, rows = serialize_tables(tables)
    manifest = build_manifest(
        files,
        rows,
        **manifest_fields(
            kind="training",
            created_utc=created,
            as_of=as_of,
            data_source=source.kind,
            data_start=aligned.first_date,
            data_through=aligned.last_date,
            model_version=version,
            model_training_run=folder,
            settings=settings,
            champion=promote,
            champion_gate=reason,
        ),
    )
    # latest.json is what Power BI shows: daily forecasts only. A training run is found through
    # models/champion.json and the daily manifests' model_training_run.
    published = publish_run_task(storage, folder, files, manifest, move_latest=False, policy=settings.storage)
    facts = RunFacts(
        flow="train-model",
        as_of=as_of,
        data_source=source.kind,
        data_start=aligned.first_date,
        data_through=aligned.last_date,
        model_version=version,
        run_folder=folder,
        location=published.location,
        url=published_url(storage, folder),
        note=f"Champion gate: {reason}",
    )
    post_artifacts_task(facts, tables["model_metrics.csv"], tables["forecasted_data.csv"], tables["backtest_metrics.csv"])
    return {
        "run_folder": folder,
        "location": published.location,
        "model_version": version,
        "promoted": promote,
        "reason": reason,
        "data_source": source.kind,
        "data_through": aligned.last_date.isoformat(),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m flows.train_model [--as-of YYYY-MM-DD] [--output-dir data] [--epochs N]`."""
    parser = argparse.ArgumentParser(description="Train the market-forecast LSTM (demo data without FRED_API_KEY).")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="reference date (default: today, New York)")
    parser.add_argument("--output-dir", default="data", help="local output folder (default: data)")
    parser.add_argument("--storage-block", default=None, help="storage block '<type-slug>/<name>' instead of --output-dir")
    parser.add_argument("--fred-block", default=None, help="FredCredentials block name (default: FRED_API_KEY or demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: settings)")
    args = parser.parse_args(argv)
    settings = Settings() if args.epochs is None else Settings(epochs=args.epochs)
    result = train_model(
        as_of=args.as_of,
        settings=settings,
        output_dir=args.output_dir,
        storage_block=args.storage_block,
        fred_block=args.fred_block,
    )
    print(f"Training run published to {result['run_folder']} in {result['location']}")
    print(f"Model {result['model_version']}: {result['reason']}")


if __name__ == "__main__":
    main()

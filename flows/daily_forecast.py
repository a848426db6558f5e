"""The daily flow `daily-forecast`: calendar gate -> recent FRED window -> champion -> publish for Power BI.

Scheduled every weekday; on a day the NYSE is closed it completes at once with a message saying
why and writes nothing. It needs nothing on local disk: the champion model comes from the storage
block, so a fresh container runs it. Each stage is a task; this module only wires them.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Annotated, Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import Field

from flows.common import fetch_all, manifest_fields, today_in_new_york, utc_now
from tasks.alerts import notify_run_failure
from tasks.align import align_sessions_task
from tasks.evaluate import score_predictions_task
from tasks.fetch import resolve_source_task
from tasks.forecast import forecast_sessions_task, predict_history_task
from tasks.model_store import load_champion_task
from tasks.outputs import actuals_table, assemble_tables, serialize_tables, validate_outputs_task
from tasks.report import RunFacts, post_artifacts_task, published_url
from tasks.sessions import check_market_calendar_task, last_session_on_or_before, session_window_start
from tasks.settings import Settings
from tasks.storage import build_manifest, free_run_folder_task, publish_run_task, resolve_storage_task
from tasks.training import interval_quantiles_from_card

# Sessions fetched beyond what the windows need: room for the latest values being late.
FETCH_MARGIN_SESSIONS = 10


def _run_name() -> str:
    as_of = flow_run.parameters.get("as_of") or today_in_new_york()
    return f"daily-{as_of}"


@flow(name="daily-forecast", flow_run_name=_run_name, log_prints=True, on_failure=[notify_run_failure])
def daily_forecast(
    as_of: date | None = None,
    force: bool = False,
    settings: Settings = Settings(),
    lookback_sessions: Annotated[int, Field(ge=1, le=5000)] = 365,
    output_dir: str = "data",
    storage_block: str | None = None,
    fred_block: str | None = None,
) -> Any:
    """Forecast the next NYSE sessions with the champion model and publish a run folder.

    Args:
        as_of: Reference date; no observation after it is used. Default: today in New York.
        force: Run even when the NYSE is closed on as_of.
        settings: Pipeline settings; series and windows must match the champion model's.
        lookback_sessions: Sessions predicted and scored before the forecast.
        output_dir: Local folder for models and runs when no storage_block is given.
        storage_block: A saved storage block, '<block-type-slug>/<name>'; None = output_dir.
        fred_block: Name of a saved FredCredentials block; None = FRED_API_KEY, else demo data.

    Returns:
        A summary of the published run, or a Completed state saying the market is closed.
    """
    as_of = as_of or today_in_new_york()
    market = check_market_calendar_task(as_of, force=force)
    if not market.is_session and not force:
        return Completed(message=f"NYSE closed on {as_of}, {market.reason}: no forecast, nothing written.")

    created = utc_now()
    storage = resolve_storage_task(storage_block, output_dir)
    source = resolve_source_task(fred_block)
    champion = load_champion_task(storage, settings, data_source=source.kind)

    needed = lookback_sessions + settings.sequence_length + settings.level_window + FETCH_MARGIN_SESSIONS
    start = session_window_start(last_session_on_or_before(as_of), needed)
    raw = fetch_all(source, settings, start=start, end=as_of)
    aligned = align_sessions_task(raw, start=start, as_of=as_of, settings=settings)
    levels = aligned.levels

    lookback_start = levels.index[max(0, len(levels) - lookback_sessions)].date()
    predictions = predict_history_task(
        champion.model, champion.scaler, levels, settings, split_dates=champion.split_dates, first_date=lookback_start
    )
    metrics = score_predictions_task(predictions)
    forecast = forecast_sessions_task(
        champion.model, champion.scaler, levels, settings, z_quantiles=interval_quantiles_from_card(champion.card)
    )
    tables = assemble_tables(
        actuals=actuals_table(levels.loc[str(lookback_start) :], aligned.filled),
        predictions=predictions,
        metrics=metrics,
        forecast=forecast,
        model_version=champion.version,
        data_source=source.kind,
        as_of=as_of,
    )
    validate_outputs_task(tables, last_actual=aligned.last_date, horizon=settings.forecast_horizon)

    folder = free_run_folder_task(storage, created, settings)
    files, rows = serialize_tables(tables)
    manifest = build_manifest(
        files,
        rows,
        **manifest_fields(
            kind="daily",
            created_utc=created,
            as_of=as_of,
            data_source=source.kind,
            data_start=lookback_start,
            data_through=aligned.last_date,
            model_version=champion.version,
            model_training_run=champion.card.get("training_run_folder"),
            settings=settings,
            forced=force and not market.is_session,
        ),
    )
    published = publish_run_task(storage, folder, files, manifest, move_latest=True, policy=settings.storage)
    facts = RunFacts(
        flow="daily-forecast",
        as_of=as_of,
        data_source=source.kind,
        data_start=lookback_start,
        data_through=aligned.last_date,
        model_version=champion.version,
        run_folder=folder,
        location=published.location,
        url=published_url(storage, folder),
    )
    post_artifacts_task(facts, tables["model_metrics.csv"], tables["forecasted_data.csv"])
    return {
        "run_folder": folder,
        "location": published.location,
        "model_version": champion.version,
        "data_source": source.kind,
        "data_through": aligned.last_date.isoformat(),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m flows.daily_forecast [--as-of YYYY-MM-DD] [--force] [--output-dir data]`."""
    parser = argparse.ArgumentParser(description="Publish today's market forecast with the champion model.")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="reference date (default: today, New York)")
    parser.add_argument("--force", action="store_true", help="run even if the NYSE is closed on as_of")
    parser.add_argument("--output-dir", default="data", help="local output folder (default: data)")
    parser.add_argument("--storage-block", default=None, help="storage block '<type-slug>/<name>' instead of --output-dir")
    parser.add_argument("--fred-block", default=None, help="FredCredentials block name (default: FRED_API_KEY or demo)")
    args = parser.parse_args(argv)
    state = daily_forecast(
        as_of=args.as_of,
        force=args.force,
        output_dir=args.output_dir,
        storage_block=args.storage_block,
        fred_block=args.fred_block,
        return_state=True,
    )
    result = state.result()  # raises the flow's error if it failed
    if isinstance(result, dict):
        print(f"Daily forecast published to {result['run_folder']} in {result['location']} (latest.json updated)")
    else:
        print(state.message)


if __name__ == "__main__":
    main()

"""The daily flow `daily-forecast`: calendar gate -> recent FRED window -> champion -> publish for Power BI.

Scheduled every weekday; on a day the NYSE is closed it completes at once with a message saying
why and writes nothing. It needs nothing on local disk: the champion model comes from the storage
block, so a fresh container runs it. Each stage is a task; this module only wires them.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed
from pydantic import Field

from flows.cli import run_from_command_line
from flows.common import run_header, run_name, today_in_new_york, utc_now
from tasks.core.settings import Settings
from tasks.ops.alerts import notify_run_failure
from tasks.stages.data import (
    align_sessions_task,
    check_market_calendar_task,
    daily_fetch_start_task,
    fetch_all,
    resolve_source_task,
)
from tasks.stages.models import load_champion_task
from tasks.stages.predict import forecast_sessions_task, predict_history_task, score_predictions_task
from tasks.stages.publish import build_outputs_task, free_run_folder_task, publish_outputs, resolve_storage_task


@flow(name="daily-forecast", flow_run_name=lambda: run_name("daily"), log_prints=True, on_failure=[notify_run_failure])
def daily_forecast(
    as_of: date | None = None,
    *,
    force: bool = False,
    settings: Settings = Settings(),
    lookback_sessions: Annotated[int, Field(ge=1, le=5000)] = 365,
    output_dir: str = "data",
    storage_block: str | None = None,
    fred_block: str | None = None,
) -> dict[str, Any] | State:
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
    settings = champion.settings  # the champion's input windows
    start = daily_fetch_start_task(as_of, lookback_sessions=lookback_sessions, settings=settings)
    raw = fetch_all(source, settings, start=start, end=as_of)
    aligned = align_sessions_task(raw, start=start, as_of=as_of, settings=settings)

    predictions = predict_history_task(
        champion.ensemble,
        aligned.levels,
        settings,
        split_dates=champion.split_dates,
        first_date=aligned.lookback_start(lookback_sessions),
    )
    metrics = score_predictions_task(predictions, mase_scale=champion.card.mase_scale)
    forecast = forecast_sessions_task(
        champion.ensemble, aligned.levels, settings, z_quantiles=champion.card.interval_quantiles()
    )
    tables = build_outputs_task(
        aligned,
        predictions=predictions,
        metrics=metrics,
        forecast=forecast,
        model_version=champion.version,
        data_source=source.kind,
        as_of=as_of,
        settings=settings,
        first_date=aligned.lookback_start(lookback_sessions),
    )

    folder = free_run_folder_task(storage, created, settings)
    header = run_header(
        kind="daily",
        created_utc=created,
        as_of=as_of,
        data_source=source.kind,
        data_start=aligned.lookback_start(lookback_sessions),
        data_through=aligned.last_date,
        model_version=champion.version,
        model_training_run=champion.card.training_run_folder,
        run_folder=folder,
        settings=settings,
        forced=force and not market.is_session,
    )
    published = publish_outputs(storage, tables, header, move_latest=True, settings=settings)
    return {
        "run_folder": folder,
        "location": published.location,
        "model_version": champion.version,
        "data_source": source.kind,
        "data_through": aligned.last_date.isoformat(),
    }


if __name__ == "__main__":
    run_from_command_line(daily_forecast)

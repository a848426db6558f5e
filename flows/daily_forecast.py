"""The daily flow `daily-forecast`: calendar gate -> champion -> recent FRED window -> publish for Power BI.

Scheduled every weekday; on a day the NYSE is closed it completes at once with a message saying
why and writes nothing. It needs nothing on local disk: the champion model comes from the storage
block, so a fresh container runs it. Each model group's champion forecasts its own series; one run
folder holds them all. Each stage is a task; this module only wires them.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed
from pydantic import Field

from flows.cli import run_from_command_line
from flows.common import AsOf, run_header, run_name, today_in_new_york, utc_now
from tasks.core.settings import Settings
from tasks.ops.alerts import notify_run_failure
from tasks.stages.data import check_market_calendar_task, resolve_source_task
from tasks.stages.groups import forecast_group
from tasks.stages.publish import claimed_run_folder, publish_outputs, resolve_storage_task


@flow(name="daily-forecast", flow_run_name=lambda: run_name("daily"), log_prints=True, on_failure=[notify_run_failure])
def daily_forecast(
    as_of: AsOf = None,
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
        as_of: Reference date, at the latest today; no observation after it is used. Default: today in New York.
        force: Run even when the NYSE is closed on as_of.
        settings: Pipeline settings; each model group's series must match its champion's. The input
            windows (sequence_length, level_window, ensemble.estimation_sessions and
            ensemble.min_estimation_sessions) are taken from the champion; history_start and the
            settings only training reads (epochs, batch_size, lstm_*, loss, learning_rate,
            test_fraction, validation_fraction, shrinkage_confidence_z, seed, backtest.*,
            ensemble.members, ensemble.skill_z, champion_gate.*) have no effect here.
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
    groups = [
        forecast_group(
            name,
            settings.for_group(name),
            storage=storage,
            source=source,
            as_of=as_of,
            lookback_sessions=lookback_sessions,
        )
        for name in settings.model_groups
    ]

    with claimed_run_folder(storage, created, settings) as folder:
        header = run_header(
            kind="daily",
            created_utc=created,
            as_of=as_of,
            data_source=source.kind,
            data_start=min(g.data_start for g in groups),
            data_through=max(g.data_through for g in groups),
            models={g.group: g.model() for g in groups},
            run_folder=folder,
            settings=settings,
            forced=force and not market.is_session,
        )
        published = publish_outputs(storage, [g.tables for g in groups], header, move_latest=True, settings=settings)
    return {
        "run_folder": folder,
        "location": published.location,
        "model_version": header.model_version,
        "data_source": source.kind,
        "data_through": header.data_through.isoformat(),
        "latest_json": published.latest.run_folder if published.latest else None,
    }


if __name__ == "__main__":
    run_from_command_line(daily_forecast)

"""What the flows share: the run's clock, its code version, and the manifest header of a run.

This is the edge where "now" is read (once per run) and handed down; no stage reads the clock. The
environment is read here too: the Dask scheduler's address that a deployment's job variable sets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from importlib import metadata
from typing import Annotated
from zoneinfo import ZoneInfo

from prefect.runtime import flow_run
from pydantic import AfterValidator

from tasks.core.contracts import GroupModel, RunHeader, RunKind, run_models
from tasks.core.settings import Settings
from tasks.stages.groups import dask_address_from

MARKET_TZ = ZoneInfo("America/New_York")


def today_in_new_york() -> date:
    """Today's date on the NYSE's clock (the default as_of)."""
    return datetime.now(MARKET_TZ).date()


def not_after_today(as_of: date | None) -> date | None:
    """Parameter validation: no observation exists after today, so a later as_of is a mistake."""
    today = today_in_new_york()
    if as_of is not None and as_of > today:
        raise ValueError(
            f"as_of {as_of} is after today in New York ({today}); no observation exists after today. "
            "Leave as_of empty for today, or give a past date to replay that day."
        )
    return as_of


AsOf = Annotated[date | None, AfterValidator(not_after_today)]
"""A flow's `as_of` parameter: a date up to today in New York, or None for today."""


def utc_now() -> datetime:
    """The run's creation time, UTC, to the second (names run folders and model versions)."""
    return datetime.now(UTC).replace(microsecond=0)


def run_name(prefix: str) -> str:
    """`<prefix>-<as_of>` for the Prefect UI (as_of defaults to today in New York)."""
    as_of = flow_run.parameters.get("as_of") or today_in_new_york()
    return f"{prefix}-{as_of}"


def code_version() -> str:
    """Package version, plus the git commit when the image or environment provides it."""
    try:
        version = metadata.version("market-forecast")
    except metadata.PackageNotFoundError:  # running from a checkout that was not installed
        version = "unknown"
    commit = os.environ.get("MARKET_FORECAST_GIT_SHA", "").strip()
    return f"{version}+{commit[:12]}" if commit else version


def dask_scheduler_address(parameter: str | None) -> str | None:
    """The Dask scheduler the training runs on: the flow parameter, else $MARKET_FORECAST_DASK_ADDRESS."""
    return dask_address_from(parameter, os.environ)


def run_header(
    *,
    kind: RunKind,
    created_utc: datetime,
    as_of: date,
    data_source: str,
    data_start: date,
    data_through: date,
    models: Mapping[str, GroupModel],
    run_folder: str,
    settings: Settings,
    forced: bool = False,
) -> RunHeader:
    """What the run's manifest says about it (its files are added when they are published).

    `models` are the run's model groups (one for a run without groups): run_models turns them into
    the manifest's model fields.
    """
    return RunHeader(
        kind=kind,
        created_utc=created_utc,
        as_of=as_of,
        data_source=data_source,  # type: ignore[arg-type]  # validated by the model
        demo_data=data_source == "demo",
        data_start=data_start,
        data_through=data_through,
        series=settings.series,
        code_version=code_version(),
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        run_folder=run_folder,
        forced=forced,
        **run_models(models),
    )

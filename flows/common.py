"""What the flows share: the run's clock, its code version, and the manifest header of a run.

This is the edge where "now" is read (once per run) and handed down; no stage reads the clock.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from importlib import metadata
from zoneinfo import ZoneInfo

from prefect.runtime import flow_run

from tasks.core.contracts import RunHeader, RunKind
from tasks.core.settings import Settings

MARKET_TZ = ZoneInfo("America/New_York")


def today_in_new_york() -> date:
    """Today's date on the NYSE's clock (the default as_of)."""
    return datetime.now(MARKET_TZ).date()


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


def run_header(
    *,
    kind: RunKind,
    created_utc: datetime,
    as_of: date,
    data_source: str,
    data_start: date,
    data_through: date,
    model_version: str,
    model_training_run: str | None,
    run_folder: str,
    settings: Settings,
    forced: bool = False,
    champion: bool | None = None,
    champion_gate: str | None = None,
) -> RunHeader:
    """What the run's manifest says about it (its files are added when they are published)."""
    return RunHeader(
        kind=kind,
        created_utc=created_utc,
        as_of=as_of,
        data_source=data_source,  # type: ignore[arg-type]  # validated by the model
        demo_data=data_source == "demo",
        data_start=data_start,
        data_through=data_through,
        model_version=model_version,
        model_training_run=model_training_run,
        series=settings.series,
        code_version=code_version(),
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        run_folder=run_folder,
        forced=forced,
        champion=champion,
        champion_gate=champion_gate,
    )

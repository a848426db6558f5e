"""Wiring shared by the flows: the run's clock, data loading and manifest facts.

This is the edge where "now" is read (once per run) and handed down; no stage reads the clock.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from importlib import metadata
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from tasks.fetch import Source, fetch_task_for
from tasks.settings import Settings

MARKET_TZ = ZoneInfo("America/New_York")


def today_in_new_york() -> date:
    """Today's date on the NYSE's clock (the default as_of)."""
    return datetime.now(MARKET_TZ).date()


def utc_now() -> datetime:
    """The run's creation time, UTC, to the second (names run folders and model versions)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def code_version() -> str:
    """Package version, plus the git commit when the image or environment provides it."""
    try:
        version = metadata.version("market-forecast")
    except metadata.PackageNotFoundError:  # running from a checkout that was not installed
        version = "unknown"
    commit = os.environ.get("MARKET_FORECAST_GIT_SHA", "").strip()
    return f"{version}+{commit[:12]}" if commit else version


def fetch_all(source: Source, settings: Settings, *, start: date, end: date) -> dict[str, pd.Series]:
    """Fetch every configured series concurrently, one `fetch-<SERIES>` task run each."""
    futures = {
        sid: fetch_task_for(sid, settings.fetch).submit(source, sid, start, end, settings.fetch) for sid in settings.series
    }
    return {sid: future.result() for sid, future in futures.items()}


def manifest_fields(
    *, kind: str, created_utc: datetime, as_of: date, data_source: str, data_start: date, data_through: date,
    model_version: str, settings: Settings, **extra: Any,
) -> dict[str, Any]:
    """The descriptive fields of a run's manifest.json (files are added by tasks.storage)."""
    from prefect.runtime import flow_run

    return {
        "kind": kind,
        "created_utc": created_utc.isoformat().replace("+00:00", "Z"),
        "as_of": as_of.isoformat(),
        "data_source": data_source,
        "demo_data": data_source == "demo",
        "data_start": data_start.isoformat(),
        "data_through": data_through.isoformat(),
        "model_version": model_version,
        "series": list(settings.series),
        "code_version": code_version(),
        "flow_run_id": str(flow_run.id) if flow_run.id else None,
        **extra,
    }

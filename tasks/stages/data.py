"""Data stages: the market calendar gate, the data source, one fetch task per series, alignment."""

from __future__ import annotations

from datetime import date

import pandas as pd
from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from tasks.adapters.fred import DEMO_LABEL, DemoSource, FredSource, Source, fetch_series, load_source, request_budget
from tasks.core.align import AlignedData, align_sessions
from tasks.core.calendar import MarketDay, market_day
from tasks.core.errors import FredTransientError
from tasks.core.settings import FetchSettings, Settings
from tasks.core.windows import daily_fetch_start
from tasks.stages.retry import retry_options


@task(name="check-market-calendar", cache_policy=NO_CACHE)
def check_market_calendar_task(as_of: date, *, force: bool) -> MarketDay:
    """Log whether the NYSE trades on as_of; the flow decides what to do about it."""
    logger = get_run_logger()
    status = market_day(as_of)
    if status.is_session:
        logger.info("%s is %s", as_of, status.reason)
    elif force:
        logger.warning("%s is %s, NYSE closed; running anyway because force=True", as_of, status.reason)
    else:
        logger.info("%s is %s: NYSE closed, no forecast today", as_of, status.reason)
    return status


@task(name="resolve-data-source", cache_policy=NO_CACHE)
def resolve_source_task(fred_block: str | None) -> Source:
    """Decide where the data comes from, and say so in the log."""
    logger = get_run_logger()
    source = load_source(fred_block)
    if isinstance(source, DemoSource):
        logger.warning(
            "%s: every output of this run is made from generated demo data. Configure a "
            "FredCredentials block or FRED_API_KEY for real FRED data.",
            DEMO_LABEL,
        )
    else:
        logger.info("Data source: %s", source.describe())
    return source


@task(name="fetch-series", cache_policy=NO_CACHE)
def fetch_series_task(source: Source, series_id: str, start: date, end: date, settings: FetchSettings) -> pd.Series:
    """Fetch one series and log what arrived."""
    logger = get_run_logger()
    try:
        values = fetch_series(source, series_id, start, end, settings=settings)
    except FredTransientError as exc:
        attempt = task_run.get_run_count()
        if attempt <= settings.retries:
            raise  # Prefect retries it
        gave_up = f"Gave up after {attempt} attempt{'s' if attempt > 1 else ''} (fetch.retries = {settings.retries})."
        raise FredTransientError(series_id, f"{exc} {gave_up}", status=exc.status) from None
    label = f" [{DEMO_LABEL}]" if isinstance(source, DemoSource) else ""
    if values.empty:
        logger.warning("%s: no observations between %s and %s%s", series_id, start, end, label)
    else:
        logger.info(
            "%s: %d observations %s .. %s, %d missing%s",
            series_id,
            len(values),
            values.index[0].date(),
            values.index[-1].date(),
            int(values.isna().sum()),
            label,
        )
    return values


def fetch_task_for(series_id: str, settings: FetchSettings) -> Task[..., pd.Series]:
    """`fetch_series_task` named after the series, with the retry policy of `settings`."""
    return fetch_series_task.with_options(task_run_name=f"fetch-{series_id}", **retry_options(settings))


def fetch_all(source: Source, settings: Settings, *, start: date, end: date) -> dict[str, pd.Series]:
    """Fetch every configured series concurrently, one `fetch-<SERIES>` task run each.

    Each is retried on transient failures as settings.fetch says; each request keeps to the FRED budget.
    """
    if isinstance(source, FredSource):
        get_run_logger().info("FRED budget: %s", request_budget(settings.fetch).description)
    futures = {
        sid: fetch_task_for(sid, settings.fetch).submit(source, sid, start, end, settings.fetch)
        for sid in settings.series
    }
    return {sid: future.result() for sid, future in futures.items()}


@task(name="daily-fetch-window", cache_policy=NO_CACHE)
def daily_fetch_start_task(as_of: date, *, lookback_sessions: int, settings: Settings) -> date:
    """The first date the daily flow fetches (enough sessions for its windows)."""
    start = daily_fetch_start(as_of, lookback_sessions=lookback_sessions, settings=settings)
    get_run_logger().info("Fetching %s .. %s for a lookback of %d sessions", start, as_of, lookback_sessions)
    return start


@task(name="align-sessions", cache_policy=NO_CACHE)
def align_sessions_task(raw: dict[str, pd.Series], *, start: date, as_of: date, settings: Settings) -> AlignedData:
    """Align and validate the fetched series; log what was dropped and filled."""
    logger = get_run_logger()
    aligned = align_sessions(
        raw, start=start, as_of=as_of, max_fill=settings.max_fill_sessions, max_stale=settings.max_stale_sessions
    )
    filled = aligned.filled.sum()
    logger.info(
        "Aligned %d series on %d NYSE sessions %s .. %s; filled forward: %s; non-session rows dropped: %s",
        aligned.levels.shape[1],
        len(aligned.levels),
        aligned.first_date,
        aligned.last_date,
        ", ".join(f"{s}={int(n)}" for s, n in filled.items()),
        ", ".join(f"{s}={n}" for s, n in aligned.dropped_non_sessions.items()),
    )
    return aligned

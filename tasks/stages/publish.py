"""Publishing stages: the storage block, the run folder, the output tables, the publishing tail.

The tail is shared by both flows: serialize, render the charts, manifest, publish, dashboard artifacts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import WritableFileSystem
from prefect.runtime import flow_run, task_run

from tasks.adapters.blob_store import describe_storage, published_url, resolve_storage
from tasks.adapters.run_store import (
    CLAIM,
    PublishedRun,
    claim_run_folder,
    publish_run,
    release_run_folder,
    remove_incomplete_folders,
)
from tasks.core.align import AlignedData
from tasks.core.charts import render_charts
from tasks.core.contracts import LatestPointer, RunHeader, RunManifest
from tasks.core.errors import StorageError
from tasks.core.outputs import actuals_table, assemble_tables, combine_tables, serialize_tables, validate_outputs
from tasks.core.settings import Settings
from tasks.ops.artifacts import post_artifacts_task
from tasks.stages.retry import retry_options


@task(name="resolve-storage", cache_policy=NO_CACHE)
def resolve_storage_task(storage_block: str | None, output_dir: str) -> WritableFileSystem:
    """Load the storage block (or the local output folder) and say where outputs go."""
    storage = resolve_storage(storage_block, output_dir)
    get_run_logger().info("Storage: %s", describe_storage(storage))
    return storage


@task(name="claim-run-folder", cache_policy=NO_CACHE)
def _claim_run_folder(storage: WritableFileSystem, created_utc: datetime, settings: Settings) -> str:
    folder = claim_run_folder(
        storage,
        created_utc,
        flow_run_id=flow_run.get_id(),
        timeout=settings.storage.timeout_seconds,
        retried=task_run.get_run_count() > 1,
    )
    get_run_logger().info("This run publishes to %s", folder)
    return folder


@task(name="release-run-folder", cache_policy=NO_CACHE)
def _release_run_folder(storage: WritableFileSystem, folder: str, settings: Settings) -> None:
    logger = get_run_logger()
    later = (
        f"a later run removes the folder once {settings.storage.incomplete_folder_days} days old (in an Azure "
        "container or a local folder; elsewhere it can be deleted by hand)"
        if settings.storage.incomplete_folder_days is not None
        else "it can be deleted"
    )
    try:
        outcome = release_run_folder(storage, folder, timeout=settings.storage.timeout_seconds)
    except StorageError as exc:
        logger.warning(
            "Could not check whether %s is complete (%s); its %s was left: if it has no manifest.json, %s",
            folder,
            exc,
            CLAIM,
            later,
        )
        return
    if outcome == "released":
        logger.info("%s released: the run failed before it was complete", folder)
    elif outcome == "left":
        logger.warning(
            "%s/%s could not be removed from %s; the folder holds no complete run (no manifest.json) and %s",
            folder,
            CLAIM,
            describe_storage(storage),
            later,
        )


@contextmanager
def claimed_run_folder(storage: WritableFileSystem, created_utc: datetime, settings: Settings) -> Iterator[str]:
    """The run's folder, runs/YYYYMMDD_HHMMSS (UTC), claimed for it for the block (`run_store.claim_run_folder`).

    The folder is moved on by a second if another run holds it. If the block fails before the folder
    is complete, the claim is removed (best effort: the block's own error is what the run fails with).
    """
    folder = _claim_run_folder.with_options(**retry_options(settings.storage))(storage, created_utc, settings)
    try:
        yield folder
    except Exception:
        _release_run_folder(storage, folder, settings, return_state=True)
        raise


@task(name="remove-incomplete-folders", cache_policy=NO_CACHE)
def _remove_incomplete_folders(storage: WritableFileSystem, created_utc: datetime, settings: Settings) -> None:
    """Remove run folders that were never completed, once `storage.incomplete_folder_days` old (best effort)."""
    days = settings.storage.incomplete_folder_days
    if days is None:
        return
    logger = get_run_logger()
    try:
        result = remove_incomplete_folders(
            storage, older_than=created_utc - timedelta(days=days), timeout=settings.storage.timeout_seconds
        )
    except StorageError as exc:
        logger.warning("Incomplete run folders were not looked for (%s); the next run looks again", exc)
        return
    if result is None:
        return  # a block that cannot list its files
    if result.removed:
        logger.info(
            "Removed %d incomplete run folder(s) older than %d days (no manifest.json: the run was killed or "
            "lost the storage before it was complete): %s",
            len(result.removed),
            days,
            ", ".join(result.removed),
        )
    if result.left:
        logger.warning(
            "%d incomplete run folder(s) could not be removed completely (the next run tries again): %s",
            len(result.left),
            ", ".join(result.left),
        )


@task(name="build-outputs", cache_policy=NO_CACHE)
def build_outputs_task(
    aligned: AlignedData,
    *,
    predictions: pd.DataFrame,
    metrics: pd.DataFrame,
    forecast: pd.DataFrame,
    history: pd.DataFrame | None = None,
    backtest: pd.DataFrame | None = None,
    model_version: str,
    data_source: str,
    as_of: date,
    settings: Settings,
    first_date: date | None = None,
) -> dict[str, pd.DataFrame]:
    """The run's output tables, labelled and checked against their contract.

    Nothing is published if one fails. actuals.csv holds the aligned data from `first_date`
    (default: all of it).
    """
    levels = aligned.levels if first_date is None else aligned.levels.loc[pd.Timestamp(first_date) :]
    tables = assemble_tables(
        actuals=actuals_table(levels, aligned.filled),
        predictions=predictions,
        metrics=metrics,
        forecast=forecast,
        history=history,
        backtest=backtest,
        model_version=model_version,
        data_source=data_source,
        as_of=as_of,
    )
    validate_outputs(tables, last_actual=aligned.last_date, horizon=settings.forecast_horizon)
    get_run_logger().info("Outputs valid: %s", ", ".join(f"{name} ({len(t)} rows)" for name, t in tables.items()))
    return tables


@task(name="render-charts", cache_policy=NO_CACHE)
def render_charts_task(tables: dict[str, pd.DataFrame], header: RunHeader, settings: Settings) -> dict[str, bytes]:
    """The run's charts (a fan chart per series; skill by horizon for training runs), file name -> bytes."""
    charts = render_charts(
        tables, as_of=header.as_of, demo=header.demo_data, history_sessions=settings.charts.history_sessions
    )
    get_run_logger().info("Rendered %d charts: %s", len(charts), ", ".join(charts))
    return charts


def _newer_latest(published: PublishedRun, *, move_latest: bool) -> LatestPointer | None:
    """The newer daily run latest.json stayed on, when this run could have moved it; None otherwise."""
    return published.latest if move_latest and not published.moved_latest else None


@task(name="publish-run", cache_policy=NO_CACHE)
def _publish_run(
    storage: WritableFileSystem,
    files: dict[str, bytes],
    manifest: RunManifest,
    *,
    move_latest: bool,
    settings: Settings,
) -> PublishedRun:
    logger = get_run_logger()

    def on_file(name: str, index: int, total: int) -> None:
        logger.info("Published %s/%s (%d/%d)", manifest.run_folder, name, index, total)

    published = publish_run(
        storage, files, manifest, move_latest=move_latest, timeout=settings.storage.timeout_seconds, on_file=on_file
    )
    newer = _newer_latest(published, move_latest=move_latest)
    if published.replaced_unreadable_latest:
        logger.warning(
            "latest.json in %s could not be read as this version's pointer (broken, or written by a newer "
            "version of the pipeline); it was replaced and now points at %s",
            published.location,
            published.folder,
        )
    elif published.moved_latest:
        logger.info("latest.json now points at %s in %s", published.folder, published.location)
    elif newer is not None:
        logger.warning(
            "%s published to %s; latest.json left at %s (as_of %s, started %s): this run (as_of %s, "
            "started %s) is older, so Power BI keeps showing the newer forecast",
            published.folder,
            published.location,
            newer.run_folder,
            newer.as_of,
            newer.created_utc,
            manifest.as_of,
            manifest.created_utc,
        )
    else:
        logger.info("%s published to %s; latest.json left unchanged", published.folder, published.location)
    return published


def publish_outputs(
    storage: WritableFileSystem,
    parts: Sequence[Mapping[str, pd.DataFrame]],
    header: RunHeader,
    *,
    move_latest: bool,
    settings: Settings,
    note: str = "",
) -> PublishedRun:
    """The publishing tail of both flows.

    The run folder (CSVs, then their charts, manifest last), then latest.json when `move_latest`,
    then the run summary (charts inline) and tables in the Prefect dashboard, then (best effort) the
    removal of earlier runs' folders that never became complete (`storage.incomplete_folder_days`).

    Args:
        storage: the storage block.
        parts: validated output tables (file name -> table) of each model group of the run; one
            file each holds them all, group after group.
        header: what the manifest says about the run.
        move_latest: whether this run becomes what latest.json (Power BI) points at.
        settings: the run's settings (storage time limits and retries).
        note: a sentence for the summary (e.g. the champion gate's decision).
    """
    tables = combine_tables(parts)
    csv_files, rows = serialize_tables(tables)
    charts = render_charts_task(tables, header, settings)
    files = {**csv_files, **charts}
    manifest = RunManifest.for_files(header, files, rows)
    published: PublishedRun = _publish_run.with_options(**retry_options(settings.storage))(
        storage, files, manifest, move_latest=move_latest, settings=settings
    )
    newer = _newer_latest(published, move_latest=move_latest)
    if newer is not None:
        kept = f"latest.json (what Power BI shows) still points at {newer.run_folder}, as of {newer.as_of}"
        note = f"{note} {kept}: this run is older.".strip()
    # The run is published: a Prefect API that cannot take its dashboard summary does not fail it.
    posted = post_artifacts_task(
        manifest,
        tables,
        location=published.location,
        url=published_url(storage, published.folder),
        charts=charts,
        note=note,
        return_state=True,
    )
    if not posted.is_completed():
        get_run_logger().warning(
            "%s is published, but its summary and tables could not be posted to the Prefect UI: %s",
            published.folder,
            posted.message,
        )
    _remove_incomplete_folders(storage, header.created_utc, settings, return_state=True)
    return published

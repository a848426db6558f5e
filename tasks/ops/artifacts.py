"""Dashboard: the run summaries, tables and progress shown as Prefect artifacts.

The markdown builders are pure (tables and the manifest in, text out); the task posts them.
Artifact keys are stable so the Prefect UI shows each one's history across runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import cast
from uuid import UUID

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from tasks.adapters.fred import DEMO_LABEL
from tasks.core.contracts import RunManifest, table_records

FLOW_OF_KIND = {"training": "train-model", "daily": "daily-forecast"}


def _number(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown_table(frame: pd.DataFrame, columns: list[str]) -> str:
    """A GitHub-flavoured markdown table of the given columns."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame[columns].itertuples(index=False):
        lines.append("| " + " | ".join(_number(v) for v in row) + " |")
    return "\n".join(lines)


def summary_markdown(
    manifest: RunManifest, tables: dict[str, pd.DataFrame], *, location: str, url: str | None, note: str = ""
) -> str:
    """The run summary shown in the Prefect UI."""
    title = "Training run" if manifest.kind == "training" else "Daily forecast"
    parts = [f"# {title}, as of {manifest.as_of}"]
    if manifest.demo_data:
        parts.append(f"> **{DEMO_LABEL}**: these numbers describe generated data, not the market.")
    parts.append(
        "\n".join(
            [
                "| | |",
                "|---|---|",
                f"| Data | {manifest.data_source}, {manifest.data_start} .. {manifest.data_through} |",
                f"| Model | `{manifest.model_version}` |",
                f"| Published | `{manifest.run_folder}` in {location} |",
            ]
            + ([f"| Link | {url} |"] if url else [])
        )
    )
    if note:
        parts.append(f"**{note}**")
    parts.append(
        "## One session ahead, against the naive forecast\n"
        'MASE = model MAE / random-walk MAE on the same sessions: below 1 beats "tomorrow equals today". '
        "Splits `train`/`validation` were seen in training; `test`/`live` were not.\n\n"
        + markdown_table(
            tables["model_metrics.csv"], ["series_id", "split", "n", "mae", "naive_mae", "mase", "r2", "naive_r2"]
        )
    )
    backtest = tables.get("backtest_metrics.csv")
    if backtest is not None and not backtest.empty:
        parts.append(
            "## Walk-forward backtest (test part)\n"
            + markdown_table(
                backtest, ["series_id", "horizon", "n", "mase", "mase_vs_drift", "coverage_80", "coverage_95"]
            )
        )
    forecast = tables["forecasted_data.csv"]
    first_rows = forecast.groupby("series_id", sort=False).head(3)
    parts.append(
        "## Forecast (first sessions; full table in the forecast artifact and forecasted_data.csv)\n"
        + markdown_table(
            first_rows.assign(date=first_rows["date"].astype(str).str[:10]),
            ["date", "series_id", "forecast", "lower_80", "upper_80"],
        )
    )
    return "\n\n".join(parts)


@task(name="post-run-artifacts", cache_policy=NO_CACHE)
def post_artifacts_task(
    manifest: RunManifest, tables: dict[str, pd.DataFrame], *, location: str, url: str | None, note: str = ""
) -> None:
    """Post the summary, the forecast table (and metrics/backtest tables) to the Prefect UI."""
    prefix = FLOW_OF_KIND[manifest.kind]
    create_markdown_artifact(
        summary_markdown(manifest, tables, location=location, url=url, note=note),
        key=f"{prefix}-summary",
        description=f"{prefix} as of {manifest.as_of}",
    )
    create_table_artifact(
        table_records(tables["model_metrics.csv"]),
        key=f"{prefix}-metrics",
        description="Metrics against the random walk",
    )
    create_table_artifact(
        table_records(tables["forecasted_data.csv"]),
        key=f"{prefix}-forecast",
        description="Forecast with 80%/95% intervals",
    )
    if "backtest_metrics.csv" in tables:
        create_table_artifact(
            table_records(tables["backtest_metrics.csv"]), key=f"{prefix}-backtest", description="Walk-forward backtest"
        )
    if url:
        create_link_artifact(url, link_text=manifest.run_folder, key=f"{prefix}-published-run")
    get_run_logger().info("Posted the run summary and tables to the Prefect UI")


def progress_reporter(
    description: str, *, min_interval: float = 1.0, show_after: float = 0.0
) -> Callable[[int, int], None]:
    """A progress artifact in the Prefect UI, and the callback that moves it (`step` out of `total`).

    With `show_after` > 0 the artifact is created only by the first report made that many seconds
    after this call, so work that ends sooner adds nothing to the dashboard. It is then updated at
    most once per `min_interval` seconds (and at the last step): a step can take milliseconds, and
    every update is an API call.
    """
    started = time.monotonic()
    artifact_id: UUID | None = None
    last_update = started

    def create(progress: float) -> None:
        nonlocal artifact_id, last_update
        # Sync here (a sync task); Prefect types the call as sync or async.
        artifact_id = cast(UUID | None, create_progress_artifact(progress=progress, description=description))
        last_update = time.monotonic()

    if show_after <= 0:
        create(0.0)

    def report(step: int, total: int) -> None:
        nonlocal last_update
        now = time.monotonic()
        progress = 100.0 * min(step, total) / total
        if artifact_id is None:
            if show_after > 0 and now - started >= show_after:
                create(progress)
        elif step >= total or now - last_update >= min_interval:
            update_progress_artifact(artifact_id, progress=progress)
            last_update = now

    return report

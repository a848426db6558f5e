"""Dashboard stage: the run summaries and tables shown as Prefect artifacts.

The markdown builders are pure (tables and facts in, text out); the task posts them. Artifact keys
are stable so the Prefect UI shows each one's history across runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import LocalFileSystem, WritableFileSystem

from tasks.fetch import DEMO_LABEL
from tasks.training import json_records


@dataclass(frozen=True)
class RunFacts:
    """What a summary states about a run."""

    flow: str  # "train-model" or "daily-forecast"
    as_of: date
    data_source: str  # "fred" or "demo"
    data_start: date
    data_through: date
    model_version: str
    run_folder: str
    location: str
    url: str | None
    note: str = ""  # e.g. the champion gate's decision


def published_url(storage: WritableFileSystem, folder: str) -> str | None:
    """A link to the published folder: file:// for a local folder, https for Azure (no credentials)."""
    if isinstance(storage, LocalFileSystem):
        return (storage._resolve_path(folder)).as_uri()
    container = getattr(storage, "container_name", None)
    credentials = getattr(storage, "credentials", None)
    if container is None or credentials is None:
        return None
    endpoint = getattr(credentials, "account_url", None)
    secret = getattr(credentials, "connection_string", None)
    if endpoint is None and secret is not None:
        parts = dict(
            item.split("=", 1) for item in secret.get_secret_value().split(";") if "=" in item
        )
        endpoint = parts.get("BlobEndpoint") or (
            f"https://{parts['AccountName']}.blob.core.windows.net" if "AccountName" in parts else None
        )
    if endpoint is None:
        return None
    base = getattr(storage, "base_folder", None)
    prefix = f"{base.strip('/')}/" if base else ""
    return f"{str(endpoint).rstrip('/')}/{container}/{prefix}{folder}/"


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown_table(frame: pd.DataFrame, columns: list[str]) -> str:
    """A GitHub-flavoured markdown table of the given columns."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame[columns].itertuples(index=False):
        lines.append("| " + " | ".join(_number(v) for v in row) + " |")
    return "\n".join(lines)


def summary_markdown(facts: RunFacts, metrics: pd.DataFrame, forecast: pd.DataFrame, backtest: pd.DataFrame | None = None) -> str:
    """The run summary shown in the Prefect UI."""
    title = "Training run" if facts.flow == "train-model" else "Daily forecast"
    parts = [f"# {title}, as of {facts.as_of}"]
    if facts.data_source == "demo":
        parts.append(f"> **{DEMO_LABEL}**: these numbers describe generated data, not the market.")
    parts.append(
        "\n".join(
            [
                "| | |",
                "|---|---|",
                f"| Data | {facts.data_source}, {facts.data_start} .. {facts.data_through} |",
                f"| Model | `{facts.model_version}` |",
                f"| Published | `{facts.run_folder}` in {facts.location} |",
            ]
            + ([f"| Link | {facts.url} |"] if facts.url else [])
        )
    )
    if facts.note:
        parts.append(f"**{facts.note}**")
    parts.append(
        "## One session ahead, against the naive forecast\n"
        "MASE = model MAE / random-walk MAE on the same sessions: below 1 beats \"tomorrow equals today\". "
        "Splits `train`/`validation` were seen in training; `test`/`live` were not.\n\n"
        + markdown_table(metrics, ["series_id", "split", "n", "mae", "naive_mae", "mase", "r2", "naive_r2"])
    )
    if backtest is not None and not backtest.empty:
        parts.append(
            "## Walk-forward backtest (test part)\n"
            + markdown_table(backtest, ["series_id", "horizon", "n", "mase", "mase_vs_drift", "coverage_80", "coverage_95"])
        )
    first_rows = forecast.groupby("series_id", sort=False).head(3)
    parts.append(
        "## Forecast (first sessions; full table in the forecast artifact and forecasted_data.csv)\n"
        + markdown_table(first_rows.assign(date=first_rows["date"].astype(str).str[:10]), ["date", "series_id", "forecast", "lower_80", "upper_80"])
    )
    return "\n\n".join(parts)


@task(name="post-run-artifacts", cache_policy=NO_CACHE)
def post_artifacts_task(facts: RunFacts, metrics: pd.DataFrame, forecast: pd.DataFrame, backtest: pd.DataFrame | None = None) -> None:
    """Post the summary, the forecast table (and metrics/backtest tables) to the Prefect UI."""
    prefix = facts.flow
    create_markdown_artifact(
        summary_markdown(facts, metrics, forecast, backtest),
        key=f"{prefix}-summary",
        description=f"{facts.flow} as of {facts.as_of}",
    )
    create_table_artifact(json_records(metrics), key=f"{prefix}-metrics", description="Metrics against the random walk")
    create_table_artifact(json_records(forecast), key=f"{prefix}-forecast", description="Forecast with 80%/95% intervals")
    if backtest is not None:
        create_table_artifact(json_records(backtest), key=f"{prefix}-backtest", description="Walk-forward backtest")
    if facts.url:
        create_link_artifact(facts.url, link_text=facts.run_folder, key=f"{prefix}-published-run")
    get_run_logger().info("Posted the run summary and tables to the Prefect UI")

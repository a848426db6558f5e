"""Dashboard: the run summaries, tables and progress shown as Prefect artifacts.

The markdown builders are pure (tables, charts and the manifest in, text out); the task posts them.
Artifact keys are stable so the Prefect UI shows each one's history across runs.

Figures are shown rounded to what a reader needs (`readable_table`): levels and errors in a series'
units to that series' own precision (the decimals its observations have), ratios to 3 decimals,
coverage as a whole percent. The CSVs keep full precision.

The summary shows the run's charts inline, as `data:image/png;base64,...` sources: both Prefect UIs
(the default one and the one under "Switch to V1 UI") render them, checked in headless Chromium by
tests/browser/. A file:// link to a local run folder is blocked by the browser, and a blob URL of a
private Azure container answers 403 without a SAS token, which would be a credential in the
artifact (and expire). The image is the published PNG itself, byte for byte.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Mapping
from typing import cast
from uuid import UUID

import numpy as np
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
from tasks.core.charts import fan_chart_name, skill_chart_name
from tasks.core.contracts import RunManifest, table_records

FLOW_OF_KIND = {"training": "train-model", "daily": "daily-forecast"}

# Columns in a series' own units (levels, and errors of levels), shown to the series' precision;
# an error with at least ERROR_DECIMALS (a series observed in whole numbers still has errors of 0.4).
ERROR_COLUMNS = frozenset({"mae", "rmse", "naive_mae", "naive_rmse", "drift_mae", "pinball", "naive_pinball"})
ERROR_DECIMALS = 2
LEVEL_COLUMNS = (
    frozenset({"value", "actual", "predicted", "naive", "forecast", "lower_95", "lower_80", "upper_80", "upper_95"})
    | ERROR_COLUMNS
)
# Squared units: no precision of the series applies; shown with SQUARED_DIGITS significant digits.
SQUARED_COLUMNS = frozenset({"mse", "naive_mse"})
SQUARED_DIGITS = 4
RATIO_COLUMNS = frozenset(
    {"rel_mae", "rel_mae_vs_drift", "mase", "r2", "naive_r2", "dm_stat", "dm_pvalue", "rel_pinball"}
)
PERCENT_COLUMNS = frozenset(
    {
        "coverage_80",
        "coverage_95",
        "calibrated_80_low",
        "calibrated_80_high",
        "calibrated_95_low",
        "calibrated_95_high",
    }
)
# A p-value below what RATIO_DECIMALS can show is shown as "<0.001", not as 0.000.
P_VALUE_COLUMNS = frozenset({"dm_pvalue"})
RATIO_DECIMALS = 3
MAX_DECIMALS = 6
MISSING = "-"


def series_decimals(actuals: pd.DataFrame) -> dict[str, int]:
    """Decimals each series is observed with (FRED's SP500: 2), from actuals.csv's table, at most 6."""
    decimals = {}
    for series_id, values in actuals.groupby("series_id", sort=False)["value"]:
        finite = values.to_numpy(dtype="float64")
        finite = finite[np.isfinite(finite)]
        scale = np.maximum(1.0, np.abs(finite))
        decimals[str(series_id)] = next(
            (d for d in range(MAX_DECIMALS) if np.all(np.abs(np.round(finite, d) - finite) <= 1e-9 * scale)),
            MAX_DECIMALS,
        )
    return decimals


def _format(value: object, column: str, places: int) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    number = float(cast(float, value))
    if column in PERCENT_COLUMNS:
        return f"{100 * number:.0f}%"
    if column in P_VALUE_COLUMNS and number < 10**-RATIO_DECIMALS:
        return f"<{10**-RATIO_DECIMALS:.{RATIO_DECIMALS}f}"
    if column in SQUARED_COLUMNS:
        return f"{number:.{SQUARED_DIGITS}g}"
    if column in ERROR_COLUMNS:
        places = max(places, ERROR_DECIMALS)
    return f"{number:.{RATIO_DECIMALS if column in RATIO_COLUMNS else places}f}"


def readable_table(frame: pd.DataFrame, decimals: Mapping[str, int]) -> pd.DataFrame:
    """The frame as a reader should see it: figures rounded to what they mean, as text.

    Level columns (`LEVEL_COLUMNS`) get the row's series' decimals (2 when the series is unknown;
    errors at least 2), squared errors 4 significant digits, ratios 3 decimals, coverage a whole
    percent, dates ISO text; missing values become None.
    Other columns (ids, counts, labels) are left as they are.
    """
    out = frame.copy()
    series = frame["series_id"].astype(str) if "series_id" in frame else pd.Series("", index=frame.index)
    places = series.map(lambda sid: decimals.get(sid, 2))
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            out[column] = frame[column].dt.strftime("%Y-%m-%d")
        elif column in LEVEL_COLUMNS | SQUARED_COLUMNS | RATIO_COLUMNS | PERCENT_COLUMNS:
            # object dtype: pandas' string dtype would turn the missing values (None) into NaN.
            formatted = [_format(v, column, p) for v, p in zip(frame[column], places, strict=True)]
            out[column] = pd.Series(formatted, index=frame.index, dtype=object)
    return out


def markdown_table(frame: pd.DataFrame, columns: list[str]) -> str:
    """A GitHub-flavoured markdown table of the given columns (pass a `readable_table`)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame[columns].itertuples(index=False):
        lines.append("| " + " | ".join(MISSING if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


def inline_png(alt: str, png: bytes) -> str:
    """A markdown image whose source is the PNG itself (a data URI): no link to follow, no credential."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def summary_markdown(
    manifest: RunManifest,
    tables: dict[str, pd.DataFrame],
    *,
    location: str,
    url: str | None,
    charts: Mapping[str, bytes] | None = None,
    note: str = "",
) -> str:
    """The run summary shown in the Prefect UI, with the run's PNG charts inline."""
    charts = charts or {}
    decimals = series_decimals(tables["actuals.csv"])
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
    fans = [
        inline_png(f"{sid}: forecast with 80% and 95% bands", charts[fan_chart_name(sid)])
        for sid in manifest.series
        if fan_chart_name(sid) in charts
    ]
    if fans:
        parts.append(
            "## Forecast fan charts\n"
            "The last actual sessions, the forecast and its 80% and 95% bands "
            "(`fan_chart_<series>.png` and `.svg` in the run folder).\n\n" + "\n\n".join(fans)
        )
    parts.append(
        "## One session ahead, against the naive forecast\n"
        'rel_mae = model MAE / random-walk MAE on the same sessions: below 1 beats "tomorrow equals today"; '
        "mase = model MAE / the training part's in-sample one-session naive MAE (standard MASE). "
        "Splits `train`/`validation` were seen in training; `test`/`live` were not.\n\n"
        + markdown_table(
            readable_table(tables["model_metrics.csv"], decimals),
            ["series_id", "split", "n", "mae", "naive_mae", "rel_mae", "mase", "r2", "naive_r2"],
        )
    )
    backtest = tables.get("backtest_metrics.csv")
    if backtest is not None and not backtest.empty:
        skill = charts.get(skill_chart_name())
        chart = inline_png("Skill by horizon: model, random walk and drift; band coverage", skill) if skill else ""
        parts.append(
            "## Walk-forward backtest (test part)\n"
            + (f"{chart}\n\n" if chart else "")
            + "`rel_mae` below 1 beats the random walk; `dm_pvalue` (Diebold-Mariano test against the random "
            "walk, two-sided) below 0.05 says the difference is unlikely to be luck. `rel_pinball` below 1: "
            "the bands beat the random walk's empirical bands. `coverage_80`/`coverage_95` stray from 80%/95% "
            "by chance, more at long horizons (neighbouring origins share most of their outcome): the chart "
            "shades where a perfectly calibrated band's coverage falls in 9 test parts out of 10 "
            "(`calibrated_*` in backtest_metrics.csv); outside that range, the band is off.\n\n"
            + markdown_table(
                readable_table(backtest, decimals),
                [
                    "series_id",
                    "horizon",
                    "n",
                    "rel_mae",
                    "rel_mae_vs_drift",
                    "dm_pvalue",
                    "coverage_80",
                    "coverage_95",
                    "rel_pinball",
                ],
            )
        )
    forecast = tables["forecasted_data.csv"]
    first_rows = forecast.groupby("series_id", sort=False).head(3)
    parts.append(
        "## Forecast (first sessions; full table in the forecast artifact and forecasted_data.csv)\n"
        + markdown_table(
            readable_table(first_rows, decimals), ["date", "series_id", "forecast", "lower_80", "upper_80"]
        )
    )
    return "\n\n".join(parts)


@task(name="post-run-artifacts", cache_policy=NO_CACHE)
def post_artifacts_task(
    manifest: RunManifest,
    tables: dict[str, pd.DataFrame],
    *,
    location: str,
    url: str | None,
    charts: Mapping[str, bytes] | None = None,
    note: str = "",
) -> None:
    """Post the summary (charts inline), the forecast table (and metrics/backtest tables) to the Prefect UI."""
    prefix = FLOW_OF_KIND[manifest.kind]
    decimals = series_decimals(tables["actuals.csv"])
    create_markdown_artifact(
        summary_markdown(manifest, tables, location=location, url=url, charts=charts, note=note),
        key=f"{prefix}-summary",
        description=f"{prefix} as of {manifest.as_of}",
    )
    create_table_artifact(
        table_records(readable_table(tables["model_metrics.csv"], decimals)),
        key=f"{prefix}-metrics",
        description="Metrics against the random walk",
    )
    create_table_artifact(
        table_records(readable_table(tables["forecasted_data.csv"], decimals)),
        key=f"{prefix}-forecast",
        description="Forecast with 80%/95% intervals",
    )
    if "backtest_metrics.csv" in tables:
        create_table_artifact(
            table_records(readable_table(tables["backtest_metrics.csv"], decimals)),
            key=f"{prefix}-backtest",
            description="Walk-forward backtest",
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

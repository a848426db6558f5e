"""The runs' artifact pages in a real browser: the charts render, the tables show rounded figures.

A training run and a daily run (demo data) are made against a real `prefect server` with its UI;
their summary and table artifacts are opened in headless Chromium, in the default dashboard (/v2)
and in the V1 one. Checked from the page itself (DOM): every chart of the summary is an <img> that
loaded (complete, naturalWidth > 0, drawn on the page at a visible size), and no figure on the page
has more decimals than a reader needs. Each page's screenshot is kept; a failing check names it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tasks.core.charts import fan_chart_name, skill_chart_name
from tests.browser.pages import Run
from tests.harness.prefect_server import PrefectServer

UIS = {"v2": "/v2", "v1": ""}  # the default dashboard, and the one behind "Switch to V1 UI"
PAGE_TIMEOUT_MS = 60_000
# Any figure with 5 or more decimals is unrounded (the CSVs' full precision has 10-16).
LONG_FIGURE = re.compile(r"\d\.\d{5,}")

CHART_IMAGES = """
() => [...document.images]
    .filter(img => img.src.startsWith("data:image/png"))
    .map(img => {
        const box = img.getBoundingClientRect();
        return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth,
                naturalHeight: img.naturalHeight, shownWidth: box.width, shownHeight: box.height};
    })
"""
CHARTS_LOADED = """
expected => {
    const charts = [...document.images].filter(img => img.src.startsWith("data:image/png"));
    return charts.length >= expected && charts.every(img => img.complete);
}
"""


def artifact_url(server: PrefectServer, ui: str, artifact: Any) -> str:
    return f"{server.ui_url}{UIS[ui]}/artifacts/artifact/{artifact.id}"


def open_page(page: Any, url: str, screenshot: Path, *, wait_for: str, arg: Any = None) -> str:
    """Open `url`, wait until `wait_for` (a JS function of `arg`) holds, keep a full-page screenshot.

    Returns:
        What the failure message of a check on this page should say: the screenshot and the console errors.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_MS)
    try:
        page.wait_for_function(wait_for, arg=arg, timeout=PAGE_TIMEOUT_MS)
        waited = None
    except PlaywrightTimeout as exc:
        waited = exc
    page.screenshot(path=str(screenshot), full_page=True)
    where = f"(page {url}; screenshot {screenshot}; blocked: {page.blocked}; console errors: {page.console_errors})"
    if waited is not None:
        pytest.fail(f"the page never showed what was expected ({wait_for.strip()} with {arg!r}) {where}")
    return where


def expected_charts(run: Run) -> list[str]:
    series = pd.read_csv(run.csv_path("forecasted_data.csv"))["series_id"].drop_duplicates().tolist()
    names = [fan_chart_name(s) for s in series]
    return [*names, skill_chart_name()] if run.kind == "training" else names


@pytest.mark.parametrize("ui", sorted(UIS))
@pytest.mark.parametrize("kind", ["training", "daily"])
def test_the_summary_shows_every_chart_and_rounded_tables(
    ui_server: PrefectServer, runs: dict[str, Run], page: Any, screenshots: Path, kind: str, ui: str
) -> None:
    run = runs[kind]
    charts = expected_charts(run)
    summary = run.artifacts[f"{'train-model' if kind == 'training' else 'daily-forecast'}-summary"]
    where = open_page(
        page,
        artifact_url(ui_server, ui, summary),
        screenshots / f"{ui}-{kind}-summary.png",
        wait_for=CHARTS_LOADED,
        arg=len(charts),
    )
    images = page.evaluate(CHART_IMAGES)
    assert len(images) == len(charts), f"{len(images)} chart images, expected {len(charts)} {where}"
    for image, name in zip(images, charts, strict=True):
        assert image["complete"] and image["naturalWidth"] > 0, f"{name} is a broken image: {image} {where}"
        assert image["shownWidth"] > 200 and image["shownHeight"] > 100, f"{name} is not shown: {image} {where}"
    fans = [image for image, name in zip(images, charts, strict=True) if name.startswith("fan_chart_")]
    assert all((i["naturalWidth"], i["naturalHeight"]) == (900, 450) for i in fans), f"{fans} {where}"
    series = [name.removeprefix("fan_chart_").removesuffix(".png") for name in charts if name.startswith("fan_chart_")]
    assert [i["alt"].split(":")[0] for i in fans] == series, f"fan charts out of order: {fans} {where}"

    text = page.inner_text("body")
    assert not LONG_FIGURE.search(text), f"unrounded figure {LONG_FIGURE.search(text)[0]!r} on the page {where}"
    metrics = pd.read_csv(run.csv_path("model_metrics.csv"))
    first = metrics.iloc[0]
    assert f"{first['rel_mae']:.3f}" in text, f"rel_mae {first['rel_mae']} not shown to 3 decimals {where}"
    if kind == "training":
        backtest = pd.read_csv(run.csv_path("backtest_metrics.csv")).dropna(subset=["coverage_80"])
        assert f"{100 * backtest['coverage_80'].iloc[0]:.0f}%" in text, f"coverage not shown as a percent {where}"


@pytest.mark.parametrize("ui", sorted(UIS))
def test_the_forecast_table_shows_levels_to_the_series_precision(
    ui_server: PrefectServer, runs: dict[str, Run], page: Any, screenshots: Path, ui: str
) -> None:
    run = runs["daily"]
    forecast = pd.read_csv(run.csv_path("forecasted_data.csv"))
    first = forecast.iloc[0]
    shown = f"{first['forecast']:.2f}"  # the demo series are observed with 2 decimals
    where = open_page(
        page,
        artifact_url(ui_server, ui, run.artifacts["daily-forecast-forecast"]),
        screenshots / f"{ui}-daily-forecast-table.png",
        wait_for="shown => document.body.innerText.includes(shown)",
        arg=shown,
    )
    text = page.inner_text("body")
    assert repr(first["forecast"]) not in text, f"the CSV's full precision is shown {where}"
    assert not LONG_FIGURE.search(text), f"unrounded figure {LONG_FIGURE.search(text)[0]!r} on the page {where}"

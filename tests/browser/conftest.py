"""A real `prefect server` with its UI, the two flows run against it, and headless Chromium.

The server serves both dashboards: the default one (under /v2) and the one behind "Switch to V1
UI" (at the root). The flows run in this process, bound to that server (tiny settings, demo
data), so their artifacts are the dashboard's. Chromium is Debian's (/usr/bin/chromium), driven
by Playwright without any browser download; every request that is not to 127.0.0.1 is aborted.

Under CI=true a server or browser that cannot start fails the tests (tests/conftest.py
`unavailable`); elsewhere they are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.browser.pages import (
    CHROMIUM_ARGS,
    DAILY_AS_OF,
    LOOPBACK,
    TRAIN_AS_OF,
    Run,
    artifacts_of,
    browser_settings,
    chromium_path,
)
from tests.harness.ci import running, unavailable
from tests.harness.prefect_server import PrefectServer


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real `prefect server start` with the dashboard (PREFECT_UI_API_URL pointing at it)."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-ui-server"), ui=True)
    server.start_timeout = 180.0
    with running(server, "prefect server with its UI") as started:
        yield started


@pytest.fixture(scope="module")
def runs(ui_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """A training run, then a daily run on its champion, both against the UI server (local folder)."""
    from flows.daily_forecast import daily_forecast
    from flows.train_model import train_model

    out = tmp_path_factory.mktemp("browser-store")
    settings = browser_settings()
    with ui_server.settings():
        training = train_model(as_of=TRAIN_AS_OF, settings=settings, output_dir=str(out))
        daily = daily_forecast(as_of=DAILY_AS_OF, settings=settings, output_dir=str(out))
    result: dict[str, Run] = {}
    for kind, published in (("training", training), ("daily", daily)):
        folder = out / published["run_folder"]
        flow_run_id = json.loads((folder / "manifest.json").read_text())["flow_run_id"]
        result[kind] = Run(kind, folder, flow_run_id, artifacts_of(ui_server, flow_run_id))
    return result


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright (no browser download)."""
    executable = chromium_path()
    if executable is None:
        unavailable("Chromium is not installed (Debian package `chromium`, /usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed: {exc}")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
    except Exception as exc:  # noqa: BLE001 - any launch failure is reported the same way
        playwright.stop()
        unavailable(f"headless Chromium ({executable}) could not start: {exc}")
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page (1280 x 900) that may only reach 127.0.0.1 (the V2 UI calls Amplitude analytics).

    `page.blocked` lists the requests aborted for going elsewhere, `page.console_errors` the
    console's errors: both go into the failure messages.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    new_page.blocked = []  # type: ignore[attr-defined]
    new_page.console_errors = []  # type: ignore[attr-defined]

    def loopback_only(route: Any) -> None:
        if urlparse(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            new_page.blocked.append(route.request.url)  # type: ignore[attr-defined]
            route.abort()

    context.route("**/*", loopback_only)
    new_page.on("console", lambda m: m.type == "error" and new_page.console_errors.append(m.text))  # type: ignore[attr-defined]
    yield new_page
    context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every page's screenshot is kept (pytest keeps the last runs' tmp folders)."""
    return tmp_path_factory.mktemp("dashboard-screenshots")

"""What the browser tests share: the runs they look at, Chromium's location and options.

The fixtures (the server with its UI, the runs, the browser, a page) are in tests/browser/conftest.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tasks.core.settings import BacktestSettings, Settings
from tests.harness.prefect_server import PrefectServer
from tests.harness.settings import promoting_settings

TRAIN_AS_OF = date(2026, 11, 20)
DAILY_AS_OF = date(2026, 11, 23)
CHROMIUM_ARGS = (
    "--no-sandbox",  # as root (CI runs as root) Chromium refuses to start with its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # no network here: without these Chromium keeps calling Google's services (refused, many at a time)
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOOPBACK = {"127.0.0.1", "localhost"}


def chromium_path() -> str | None:
    """Debian's Chromium: CHROMIUM_PATH, else `chromium` on PATH, else /usr/bin/chromium if present."""
    candidate = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    return candidate if Path(candidate).is_file() else None


def browser_settings() -> Settings:
    """Tiny settings whose model is promoted; the backtest shows its progress however quick it is."""
    return promoting_settings(backtest=BacktestSettings(origin_step=5, progress_after_seconds=0))


@dataclass(frozen=True)
class Run:
    """A flow run published into `folder`, with its artifacts by key."""

    kind: str  # "training" or "daily"
    folder: Path
    flow_run_id: str
    artifacts: dict[str, Any]  # key -> prefect Artifact

    def csv_path(self, name: str) -> Path:
        return self.folder / name


def artifacts_of(server: PrefectServer, flow_run_id: str) -> dict[str, Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with server.client() as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found if a.key}

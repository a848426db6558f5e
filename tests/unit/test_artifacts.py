"""Dashboard artifacts: progress shown only for long work, figures rounded for a reader."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

import tasks.ops.artifacts as artifacts


class Dashboard:
    """Records the progress artifacts created and updated, on a clock the test moves."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.created: list[float] = []
        self.updated: list[float] = []
        monkeypatch.setattr(artifacts, "time", SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr(artifacts, "create_progress_artifact", self._create)
        monkeypatch.setattr(artifacts, "update_progress_artifact", self._update)

    def _create(self, *, progress: float, description: str) -> Any:
        self.created.append(progress)
        return uuid4()

    def _update(self, artifact_id: Any, *, progress: float) -> None:
        self.updated.append(progress)


@pytest.fixture
def dashboard(monkeypatch: pytest.MonkeyPatch) -> Dashboard:
    return Dashboard(monkeypatch)


def test_progress_is_shown_at_once_by_default_and_moved_at_most_once_a_second(dashboard: Dashboard) -> None:
    report = artifacts.progress_reporter("epochs")
    assert dashboard.created == [0.0]
    dashboard.now = 0.5
    report(1, 4)  # too soon after the last update
    dashboard.now = 1.6
    report(2, 4)
    dashboard.now = 1.7
    report(4, 4)  # the last step is always shown
    assert dashboard.updated == [50.0, 100.0]


def test_work_quicker_than_show_after_adds_no_progress_artifact(dashboard: Dashboard) -> None:
    report = artifacts.progress_reporter("backtest", show_after=3.0)
    dashboard.now = 1.0
    report(5, 10)
    dashboard.now = 2.0
    report(10, 10)
    assert dashboard.created == [] and dashboard.updated == []


def test_work_longer_than_show_after_shows_its_progress_from_then_on(dashboard: Dashboard) -> None:
    report = artifacts.progress_reporter("backtest", show_after=3.0)
    dashboard.now = 1.0
    report(1, 4)
    dashboard.now = 3.5
    report(2, 4)
    dashboard.now = 9.0
    report(4, 4)
    assert dashboard.created == [50.0] and dashboard.updated == [100.0]

"""Inputs of fast tests: settings with a tiny network, few epochs, short windows and quick
retries; small aligned demo frames."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.core.align import align_sessions
from tasks.core.demo import generate_demo_series
from tasks.core.settings import (
    DEFAULT_SERIES,
    BacktestSettings,
    ChampionGateSettings,
    FetchSettings,
    Settings,
    StorageSettings,
)

__all__ = ["demo_levels", "promoting_settings", "tiny_settings"]


def tiny_settings(**overrides: object) -> Settings:
    """Settings for fast tests: tiny network, few epochs, short windows, quick retries."""
    base: dict[str, object] = {
        "history_start": date(2023, 1, 1),
        "epochs": 2,
        "lstm_units": 4,
        "batch_size": 64,
        "level_window": 20,
        "fetch": FetchSettings(
            timeout_seconds=2, retries=2, retry_backoff_seconds=0.05, retry_jitter_factor=0, requests_per_minute=6000
        ),
        "storage": StorageSettings(attempts=2, timeout_seconds=10, retry_delay_seconds=0.1),
        "backtest": BacktestSettings(origin_step=5),
    }
    base.update(overrides)
    return Settings(**base)


def promoting_settings(**overrides: object) -> Settings:
    """Tiny settings whose 2-epoch model always passes the champion gate (the gate is unit-tested)."""
    return tiny_settings(champion_gate=ChampionGateSettings(max_rel_mae=100), **overrides)


def demo_levels(
    start: date = date(2023, 1, 1), end: date = date(2025, 6, 30), series: tuple[str, ...] = DEFAULT_SERIES
) -> pd.DataFrame:
    """Aligned demo levels of `series` from `start` to `end` (about 2.5 years of the defaults)."""
    raw = generate_demo_series(series, end)
    return align_sessions(raw, start=start, as_of=end, max_fill=3, max_stale=5).levels

"""Fixtures of the unit tests: small aligned demo frames."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tasks.core.align import align_sessions
from tasks.core.demo import generate_demo_series

SERIES = ("SP500", "VIXCLS", "DJIA", "BAMLCC4A0710YTRIV")


def demo_levels(start: date = date(2023, 1, 1), end: date = date(2025, 6, 30), series: tuple[str, ...] = SERIES) -> pd.DataFrame:
    """Aligned demo levels for `series` between `start` and `end`."""
    raw = generate_demo_series(series, end)
    return align_sessions(raw, start=start, as_of=end, max_fill=3, max_stale=5).levels


@pytest.fixture(scope="session")
def levels() -> pd.DataFrame:
    """About 2.5 years of aligned demo levels of the four default series."""
    return demo_levels()

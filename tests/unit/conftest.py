"""Fixtures of the unit tests: small aligned demo frames."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tasks.core.align import align_sessions
from tasks.core.demo import generate_demo_series
from tasks.core.settings import DEFAULT_SERIES


@pytest.fixture(scope="session")
def levels() -> pd.DataFrame:
    """About 2.5 years (2023-01-01 .. 2025-06-30) of aligned demo levels of the four default series."""
    end = date(2025, 6, 30)
    raw = generate_demo_series(DEFAULT_SERIES, end)
    return align_sessions(raw, start=date(2023, 1, 1), as_of=end, max_fill=3, max_stale=5).levels

"""Fixtures of the unit tests: small aligned demo frames."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.harness.settings import demo_levels


@pytest.fixture(scope="session")
def levels() -> pd.DataFrame:
    """About 2.5 years (2023-01-01 .. 2025-06-30) of aligned demo levels of the four default series."""
    return demo_levels()

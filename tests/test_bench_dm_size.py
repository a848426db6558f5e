"""The benchmark's size of the Diebold-Mariano test: nominal where the test is exact, liberal where it is not."""

from __future__ import annotations

import math

from bench.dm_size import dm_size


def test_one_session_ahead_the_test_rejects_about_five_percent() -> None:
    # Independent differentials: the t test is (nearly) exact; 2,000 draws put 5% within +/- 1.5 points.
    assert 0.035 <= dm_size(1, 240) <= 0.065


def test_thirty_sessions_ahead_on_two_hundred_origins_it_rejects_more_than_its_level() -> None:
    size = dm_size(30, 211)
    # Liberal (the HAC variance is too small on so few independent outcomes), but the h - 1
    # autocovariances keep it far from the ~60% a test ignoring the overlap would reject.
    assert 0.08 <= size <= 0.2


def test_origins_further_apart_overlap_less_and_too_few_are_not_measured() -> None:
    assert 0.03 <= dm_size(5, 200, origin_step=5) <= 0.07  # 5 sessions apart: no overlap at h = 5
    assert math.isnan(dm_size(5, 2))

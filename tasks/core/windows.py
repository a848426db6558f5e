"""The sessions a run reads (pure): how far back the daily flow fetches, how much history training needs."""

from __future__ import annotations

from datetime import date

from tasks.core.calendar import last_session_on_or_before, session_window_start, sessions_in_range
from tasks.core.errors import InsufficientDataError
from tasks.core.features import MIN_TRAINING_WINDOWS, chronological_split, warmup_rows
from tasks.core.intervals import LONG_VOL_WINDOW
from tasks.core.settings import Settings

# Sessions fetched beyond what the windows need: room for the latest values being late.
FETCH_MARGIN_SESSIONS = 10


def daily_fetch_start(as_of: date, *, lookback_sessions: int, settings: Settings) -> date:
    """First date the daily flow fetches.

    Enough sessions for the lookback, and before its first session the longest of: one input window
    and the level feature's rolling mean (the LSTM), the classical members' estimation window, and
    the long-run volatility window that scales the interval bands; and a margin, counted back from
    the last session up to as_of.
    """
    before = max(
        settings.sequence_length + settings.level_window,
        settings.ensemble.estimation_sessions,
        LONG_VOL_WINDOW + 1,
    )
    needed = lookback_sessions + before + FETCH_MARGIN_SESSIONS
    return session_window_start(last_session_on_or_before(as_of), needed)


def training_sessions_needed(settings: Settings) -> int:
    """The fewest NYSE sessions a model group's history must hold to be trained and backtested.

    The level feature's warm-up, then enough feature rows for `chronological_split` to leave
    MIN_TRAINING_WINDOWS training windows and a test part that scores every backtest horizon once.
    """
    horizon = max(settings.backtest.horizons)
    rows = settings.sequence_length + MIN_TRAINING_WINDOWS
    while True:
        try:
            split = chronological_split(
                rows,
                sequence_length=settings.sequence_length,
                test_fraction=settings.test_fraction,
                validation_fraction=settings.validation_fraction,
            )
        except InsufficientDataError:
            split = None
        if split is not None and split.n_rows - split.train_end > horizon:
            return warmup_rows(settings.level_window) + rows
        rows += 1


def short_groups(settings: Settings, *, as_of: date) -> list[str]:
    """Why model groups are too short for their windows, one sentence per group (empty: none is).

    A group's history runs from its history_start (or settings.history_start) to as_of; a series
    that starts later can still make it too short, which training then reports.
    """
    needed = training_sessions_needed(settings)
    problems = []
    for name, group in settings.model_groups.items():
        start = group.history_start or settings.history_start
        if start > as_of:
            problems.append(
                f"model group {name!r} has no history: as_of {as_of} is before its history_start {start}; give "
                "a later as_of or an earlier history_start"
            )
            continue
        held = len(sessions_in_range(start, as_of))
        if held < needed:
            problems.append(
                f"model group {name!r} is too short for its windows: {start} .. {as_of} holds {held} NYSE "
                f"sessions, level_window={settings.level_window}, sequence_length={settings.sequence_length}, "
                f"the split and backtest horizons up to {max(settings.backtest.horizons)} need {needed}; move its "
                "history_start earlier, or ask for less: a smaller level_window or sequence_length, shorter "
                f"backtest.horizons, or a larger test_fraction (now {settings.test_fraction:g}: the test part "
                "must hold more sessions than the longest horizon)"
            )
    return problems

"""The sessions a run reads (pure): how far back the daily flow fetches."""

from __future__ import annotations

from datetime import date

from tasks.core.calendar import last_session_on_or_before, session_window_start
from tasks.core.settings import Settings

# Sessions fetched beyond what the windows need: room for the latest values being late.
FETCH_MARGIN_SESSIONS = 10


def daily_fetch_start(as_of: date, *, lookback_sessions: int, settings: Settings) -> date:
    """First date the daily flow fetches.

    Enough sessions for the lookback, and before its first session either one input window and the
    level feature's rolling mean (the LSTM) or the classical members' estimation window, whichever
    is longer, and a margin, counted back from the last session up to as_of.
    """
    before = max(settings.sequence_length + settings.level_window, settings.ensemble.estimation_sessions)
    needed = lookback_sessions + before + FETCH_MARGIN_SESSIONS
    return session_window_start(last_session_on_or_before(as_of), needed)

"""Typed errors of the pipeline. Each message carries the offending values and says what to do.

They are what a user reads in the Prefect log and in the failure e-mail, so they never contain a
secret: FRED's messages and URLs pass through `redact` before they reach an exception.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date


class PipelineError(Exception):
    """Base class of the pipeline's own errors."""


# ---------------------------------------------------------------- FRED


class FredError(PipelineError):
    """A FRED request failed."""

    def __init__(self, series_id: str, message: str, *, status: int | None = None) -> None:
        self.series_id = series_id
        self.status = status
        super().__init__(message)


class FredRequestError(FredError):
    """FRED refused the request for a reason a retry cannot fix (bad key, unknown series)."""


class FredTransientError(FredError):
    """A failure worth retrying: timeout, connection error, HTTP 5xx or 429, a truncated body."""


class FredConfigurationError(PipelineError):
    """The FRED credentials block or environment variables are missing or malformed."""


# ---------------------------------------------------------------- data validation


def _day(value: object) -> object:
    """A pandas Timestamp or datetime shown as its date, anything else as it is."""
    return value.date() if hasattr(value, "date") and callable(value.date) else value


class DataValidationError(PipelineError):
    """Input data cannot be used as it is."""


class InvalidValuesError(DataValidationError):
    """Non-numeric or non-positive observations."""

    def __init__(self, series_id: str, rows: Sequence[tuple[object, object]], reason: str) -> None:
        self.series_id = series_id
        self.rows = list(rows)
        shown = ", ".join(f"{_day(d)}={v!r}" for d, v in self.rows[:5])
        more = f" (+{len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
        super().__init__(
            f"{series_id}: {len(self.rows)} {reason} observation(s): {shown}{more}. "
            "The pipeline models log-returns and needs positive numbers; check the series id and the "
            "source, or remove the series from settings.series."
        )


class DataGapError(DataValidationError):
    """A run of missing sessions longer than settings.max_fill_sessions."""

    def __init__(self, gaps: Sequence[tuple[str, date, date, int]], max_fill: int) -> None:
        self.gaps = list(gaps)
        described = "; ".join(
            f"{sid}: {n} missing session(s) {first} .. {last}" for sid, first, last, n in self.gaps[:8]
        )
        more = f" (+{len(self.gaps) - 8} more gaps)" if len(self.gaps) > 8 else ""
        super().__init__(
            f"Gaps longer than max_fill_sessions={max_fill}: {described}{more}. Only gaps up to "
            f"{max_fill} NYSE sessions are filled forward. Check the series on FRED, move "
            "settings.history_start past the gap, or raise settings.max_fill_sessions."
        )


class StaleDataError(DataValidationError):
    """A series' last observation is too old for as_of."""

    def __init__(self, stale: Sequence[tuple[str, date | None, int]], as_of: date, limit: int) -> None:
        self.stale = list(stale)
        self.as_of = as_of
        described = "; ".join(
            f"{sid}: last observation {last} is {behind} NYSE session(s) before as_of"
            if last is not None
            else f"{sid}: no observation at all up to as_of"
            for sid, last, behind in self.stale
        )
        super().__init__(
            f"Stale data for as_of {as_of} (limit max_stale_sessions={limit}): {described}. FRED may "
            "not have published the latest values yet, or the series was discontinued: re-run later, "
            "run with an earlier as_of, or raise settings.max_stale_sessions."
        )


class InsufficientDataError(DataValidationError):
    """Too few sessions for the requested windows and split."""


class OutputValidationError(PipelineError):
    """An output table broke its contract; nothing was published."""

    def __init__(self, table: str, problems: Sequence[str]) -> None:
        self.table = table
        self.problems = list(problems)
        super().__init__(f"{table} failed validation, nothing was published: " + "; ".join(self.problems))


# ---------------------------------------------------------------- models and storage


class ModelStoreError(PipelineError):
    """The model store has no usable model."""


class ModelIntegrityError(ModelStoreError):
    """A model file's sha256 does not match its model card."""


class ModelMismatchError(ModelStoreError):
    """The stored model was trained for other series or settings than this run asks for."""


class StorageError(PipelineError):
    """Reading from or writing to the storage block failed."""


class PublishError(StorageError):
    """A run could not be published completely; latest.json was left as it was."""


# key=value secrets that may sit in an URL or a connection string inside an error message.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(api_key=)[^&\s'\"<>]+"),
    re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"),
    re.compile(r"(?i)([?&]sig=)[^&;\s'\"]+"),
    re.compile(r"(?i)(password=)[^&;\s'\"]+"),
    re.compile(r"(?i)(://[^:/@\s]+:)[^@/\s]+(?=@)"),  # scheme://user:password@host
)


def redact(text: str, *secrets: str | None) -> str:
    """Hide secrets in `text`: each given value, and key=value secrets of URLs and connection strings.

    Args:
        text: Any message that might contain a secret (an URL with api_key=, a server's error
            body, a connection string).
        *secrets: The secret values to hide; None and empty strings are ignored.

    Returns:
        The text with the secrets replaced by '***'.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text

"""Typed errors of the pipeline. Each message carries the offending values and says what to do.

They are what a user reads in the Prefect log and in the failure e-mail, so they never contain a
secret: the adapters pass FRED's messages, URLs and storage errors through `blocks.redaction`
before they build one of these.

`TransientError` marks a failure worth retrying (a timeout, a 5xx, a 429); `is_transient` is the
one retry condition of every I/O stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date


class PipelineError(Exception):
    """Base class of the pipeline's own errors."""


class TransientError(PipelineError):
    """A failure a retry may fix: a timeout, a connection error, HTTP 5xx or 429."""


def is_transient(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from, is a `TransientError`."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TransientError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


# ---------------------------------------------------------------- FRED


class FredError(PipelineError):
    """A FRED request failed."""

    def __init__(self, series_id: str, message: str, *, status: int | None = None) -> None:
        self.series_id = series_id
        self.status = status
        super().__init__(message)


class FredRequestError(FredError):
    """FRED refused the request for a reason a retry cannot fix (bad key, unknown series)."""


class FredTransientError(FredError, TransientError):
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

    def __init__(
        self, stale: Sequence[tuple[str, date | None, int]], as_of: date, limit: int, *, every_series: bool = False
    ) -> None:
        """`every_series`: no series reaches as_of (then as_of most likely lies beyond the data)."""
        self.stale = list(stale)
        self.as_of = as_of
        described = "; ".join(
            f"{sid}: last observation {last} is {behind} NYSE session(s) before as_of"
            if last is not None
            else f"{sid}: no observation at all up to as_of"
            for sid, last, behind in self.stale
        )
        latest = max((last for _, last, _ in self.stale if last is not None), default=None)
        if every_series and latest is not None:
            advice = (
                f"No series reaches as_of, so as_of most likely lies beyond the data: run with an as_of on "
                f"or before {latest}. If the data should reach as_of, FRED may not have published the "
                "latest values yet: re-run later, or raise settings.max_stale_sessions."
            )
        else:
            advice = (
                "FRED may not have published the latest values yet, or the series was discontinued: re-run "
                "later, run with an earlier as_of, or raise settings.max_stale_sessions."
            )
        begins_later = (
            "A series with no observation up to as_of begins after it: use a later as_of, or leave the "
            "series out of settings.series."
        )
        if all(last is None for _, last, _ in self.stale):
            advice = begins_later  # an earlier as_of cannot help
        elif any(last is None for _, last, _ in self.stale):
            advice += " " + begins_later
        super().__init__(f"Stale data for as_of {as_of} (limit max_stale_sessions={limit}): {described}. {advice}")


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


class ModelIncompleteError(ModelStoreError):
    """A file of a model version is missing."""


class ModelMismatchError(ModelStoreError):
    """The stored model was trained for other series or settings than this run asks for."""


class ChampionMovedError(ModelStoreError):
    """champion.json changed between a training run's gate and its promotion; the new model was not promoted."""


class StorageError(PipelineError):
    """Reading from or writing to the storage block failed."""


class StorageTransientError(StorageError, TransientError):
    """A storage read or write failed in a way a retry may fix (timeout, 5xx, 429, connection)."""


class StorageNotFoundError(StorageError):
    """The path does not exist in the storage block."""


class InvalidStoredFileError(StorageError):
    """A stored JSON file (latest.json, champion.json) is not what its model says: cut short, or edited."""


class PublishError(StorageError):
    """A run could not be published completely; latest.json was left as it was."""


# ---------------------------------------------------------------- where the work runs


class TaskRunnerError(PipelineError):
    """The model groups cannot be sent where they should run (a Dask cluster, or the local runner)."""

"""Feature stage (pure): levels -> model inputs and targets, the chronological split, the scaler.

What the LSTM learns: the next session's log-return of every series, from windows of the last
`sequence_length` sessions of two features per series: the log-return, and the log-level's
deviation from its mean over the last `level_window` sessions (stationary, so a trending index never
leaves the range the model was trained on, while a spike of a mean-reverting series such as the VIX
stands out). Learning returns rather than levels makes the random walk ("tomorrow equals today")
the model's zero: a prediction of 0 is the naive forecast, and anything the model adds must be
earned on data it did not see.

The split is chronological on the target dates. The scaler (mean and standard deviation per
feature) is fitted on the training part only and stored as JSON, never as a pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict

from tasks.core.errors import InsufficientDataError

RETURN, LEVEL = "ret", "lvl"
MIN_TRAINING_WINDOWS = 10


def feature_columns(series: tuple[str, ...]) -> list[str]:
    """Feature column names, returns first then log-levels, in `series` order."""
    return [f"{RETURN}:{s}" for s in series] + [f"{LEVEL}:{s}" for s in series]


def warmup_rows(level_window: int) -> int:
    """Leading sessions of levels consumed before the first feature row."""
    return max(1, level_window - 1)


def make_features(levels: pd.DataFrame, level_window: int) -> pd.DataFrame:
    """Log-returns and log-level deviations from their rolling mean, per series.

    Args:
        levels: positive levels, one column per series, consecutive sessions.
        level_window: sessions in the rolling mean of the log-level.

    Returns:
        Frame indexed like levels[warmup_rows(level_window):], columns `feature_columns(series)`.
    """
    logs = pd.DataFrame(np.log(levels.to_numpy(dtype="float64")), index=levels.index, columns=levels.columns)
    returns = logs.diff()
    deviation = logs - logs.rolling(level_window, min_periods=level_window).mean()
    features = pd.concat([returns.add_prefix(f"{RETURN}:"), deviation.add_prefix(f"{LEVEL}:")], axis=1)
    selected: pd.DataFrame = features.iloc[warmup_rows(level_window) :][feature_columns(tuple(levels.columns))]
    return selected


def level_history(levels: pd.DataFrame, dates: pd.Index, level_window: int) -> np.ndarray:
    """Log-levels of the `level_window` sessions ending at each of `dates` (which must be in levels).

    Returns:
        (len(dates), level_window, n_series), oldest first: what the recursive forecast needs to
        recompute the level feature as it goes.
    """
    logs = np.log(levels.to_numpy(dtype="float64"))
    positions = levels.index.get_indexer(dates)
    if (positions < level_window - 1).any():
        raise ValueError("a date lies within the first level_window sessions of levels")
    view = sliding_window_view(logs, level_window, axis=0)  # (rows - W + 1, n_series, W)
    return np.ascontiguousarray(view[positions - level_window + 1].transpose(0, 2, 1))


SCALER_FORMAT: Final = "market-forecast-scaler/1"


class Scaler(BaseModel):
    """Standardisation per feature column, fitted on the training part; stored as scaler.json.

    Attributes:
        format: Version of the stored layout.
        columns: feature column names.
        mean: per-column mean.
        scale: per-column standard deviation (1.0 where it was 0).
        shrinkage: per-series factor applied to the predicted return (0 = random walk, 1 = the raw
            model), fitted on the validation slice; see tasks.core.model.fit_shrinkage.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["market-forecast-scaler/1"] = SCALER_FORMAT
    columns: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    shrinkage: tuple[float, ...] | None = None

    @classmethod
    def fit(cls, features: pd.DataFrame) -> Scaler:
        """Fit on `features` (the training rows only)."""
        mean = features.mean(axis=0).to_numpy(dtype="float64")
        scale = features.std(axis=0, ddof=0).to_numpy(dtype="float64")
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        return cls(columns=tuple(features.columns), mean=tuple(mean.tolist()), scale=tuple(scale.tolist()))

    @property
    def series(self) -> tuple[str, ...]:
        """Series ids, in model output order."""
        return tuple(c.split(":", 1)[1] for c in self.columns if c.startswith(f"{RETURN}:"))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Standardise an array whose last axis follows `columns`."""
        return np.asarray((values - np.asarray(self.mean)) / np.asarray(self.scale))

    def return_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, scale) of the return columns, in series order."""
        n = len(self.series)
        return np.asarray(self.mean[:n]), np.asarray(self.scale[:n])

    def with_shrinkage(self, shrinkage: np.ndarray) -> Scaler:
        """A copy carrying the fitted per-series shrinkage."""
        return self.model_copy(update={"shrinkage": tuple(float(x) for x in shrinkage)})

    def shrinkage_array(self) -> np.ndarray:
        """Per-series shrinkage, 1.0 where none was fitted."""
        return np.asarray(self.shrinkage if self.shrinkage is not None else [1.0] * len(self.series))

    def to_json(self) -> str:
        """scaler.json's text."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Scaler:
        """Parse scaler.json (what `to_json` wrote)."""
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class Split:
    """Row positions of the chronological split, in the features frame.

    A sample is a window of `sequence_length` feature rows ending at row t and its target, the
    returns of row t + 1. Samples are grouped by the position of their target row.

    Attributes:
        train_end: first feature row of the test part (rows before it are the training part).
        validation_start: first target row of the validation slice (inside the training part).
        sequence_length: rows per window.
        n_rows: feature rows in total.
    """

    train_end: int
    validation_start: int
    sequence_length: int
    n_rows: int

    @property
    def first_target(self) -> int:
        """Position of the first target row (the first complete window ends just before it)."""
        return self.sequence_length

    def target_rows(self, part: str) -> np.ndarray:
        """Target row positions of 'train', 'validation' or 'test' samples."""
        bounds = {
            "train": (self.first_target, self.validation_start),
            "validation": (self.validation_start, self.train_end),
            "test": (self.train_end, self.n_rows),
        }[part]
        return np.arange(*bounds)


SPLITS = ("train", "validation", "test", "live")


@dataclass(frozen=True)
class SplitDates:
    """Date boundaries of the data a model was fitted and evaluated on (from its model card).

    Rows before validation_start were trained on, rows from validation_start before test_start
    formed the validation slice, rows from test_start to data_end were held out, and anything after
    data_end arrived after training ("live").
    """

    validation_start: date
    test_start: date
    data_end: date

    def label(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """The split label of each date."""
        edges = pd.DatetimeIndex(
            [
                pd.Timestamp(self.validation_start),
                pd.Timestamp(self.test_start),
                pd.Timestamp(self.data_end) + pd.Timedelta(days=1),
            ]
        )
        return np.asarray(SPLITS)[np.searchsorted(edges.as_unit("ns").asi8, dates.as_unit("ns").asi8, side="right")]


def chronological_split(
    n_rows: int, *, sequence_length: int, test_fraction: float, validation_fraction: float
) -> Split:
    """Split `n_rows` feature rows into training (with its validation slice) and test parts.

    A `test_fraction` of 0 leaves no test part: every row is training (a backtest's refit at an
    origin, whose test is the sessions after it).

    Raises:
        InsufficientDataError: too few rows for at least one window in each part.
    """
    n_test = max(1, round(n_rows * test_fraction)) if test_fraction > 0 else 0
    train_end = n_rows - n_test
    n_train_samples = train_end - sequence_length
    n_validation = max(1, round(n_train_samples * validation_fraction))
    validation_start = train_end - n_validation
    if validation_start - sequence_length < MIN_TRAINING_WINDOWS:
        raise InsufficientDataError(
            f"{n_rows} sessions of features are too few for sequence_length={sequence_length}, "
            f"test_fraction={test_fraction}, validation_fraction={validation_fraction}: the "
            f"training part would hold {max(0, validation_start - sequence_length)} window(s). "
            "Move settings.history_start earlier or shorten settings.sequence_length."
        )
    return Split(train_end, validation_start, sequence_length, n_rows)


def window_inputs(scaled: np.ndarray, sequence_length: int, target_rows: np.ndarray) -> np.ndarray:
    """Input windows for the given target rows: rows [t - L, t) for each target row t.

    Built with a strided view, no Python loop over rows.

    Args:
        scaled: (n_rows, n_features) standardised features.
        sequence_length: L.
        target_rows: positions t >= L.

    Returns:
        float32 array (len(target_rows), L, n_features).
    """
    windows = sliding_window_view(scaled, sequence_length, axis=0)  # (n - L + 1, F, L)
    return np.ascontiguousarray(windows[target_rows - sequence_length].transpose(0, 2, 1), dtype=np.float32)


def training_arrays(scaled: np.ndarray, n_series: int, split: Split, part: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, standardised target returns) of one part of the split."""
    rows = split.target_rows(part)
    return window_inputs(scaled, split.sequence_length, rows), scaled[rows, :n_series].astype(np.float32)


def last_window(scaled: np.ndarray, sequence_length: int) -> np.ndarray:
    """The most recent complete window, shaped (1, L, n_features), for forecasting."""
    return np.ascontiguousarray(scaled[None, -sequence_length:, :], dtype=np.float32)

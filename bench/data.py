"""The data: a folder of FRED download CSVs, served on loopback, fetched once and aligned as the flows align.

The folder is served by the project's FRED-compatible test server (`tests.harness.fred_server.FredServer`,
which also reads the CSVs), so both designs fetch through the real path (fredapi -> HTTP -> XML).
The parent fetches every configured series once with plain fredapi (the seed's client), summarises
what the folder holds (dates and counts, never values) and aligns the series with the project's
`align_sessions`; the aligned levels go to a temporary CSV, the seed design's input. Nothing derived
from the data other than metrics and timings is written inside the repository.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.errors import BenchError

if TYPE_CHECKING:  # pragma: no cover
    from tasks.core.settings import Settings
    from tests.harness.fred_server import FredServer


@dataclass(frozen=True)
class SeriesSummary:
    """What the folder holds for one series (dates and counts only, never values)."""

    series_id: str
    first: date
    last: date
    rows: int
    missing: int

    def to_json(self) -> dict[str, Any]:
        """First and last observed date, rows, missing values (the report's `config.data`)."""
        return {
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "rows": self.rows,
            "missing": self.missing,
        }


@contextmanager
def serve_folder(folder: Path) -> Iterator[FredServer]:
    """Serve the FRED CSVs of `folder` on 127.0.0.1 with a random API key while the block runs.

    Args:
        folder: Directory of ``observation_date,<SERIES_ID>`` CSV files (an empty value is missing).

    Yields:
        The running server (`url`, `api_key`, `series_ids()`).

    Raises:
        BenchError: the folder is missing, holds no CSV, or a file is not a FRED CSV (the message
            names the file).
    """
    from tests.harness.fred_server import FredServer

    if not folder.exists():
        raise BenchError(
            f"data folder {folder} does not exist: pass --data with a folder of FRED CSVs, e.g. ../shared/data/fred"
        )
    if not folder.is_dir():
        raise BenchError(f"--data {folder} is a file, not a folder of FRED CSVs")
    try:
        server = FredServer.from_csv_folder(folder, api_key=secrets.token_hex(16))
    except (OSError, ValueError) as exc:
        raise BenchError(
            f"data folder {folder} cannot be served as FRED data: {exc} "
            "(expected FRED download CSVs such as SP500.csv with the header observation_date,<SERIES_ID>)"
        ) from None
    with server:
        yield server


def check_series(available: Sequence[str], wanted: Sequence[str], folder: Path) -> None:
    """Fail clearly when a wanted series has no CSV in the folder.

    Raises:
        BenchError: naming the missing series and those available.
    """
    missing = [s for s in wanted if s not in available]
    if missing:
        raise BenchError(
            f"data folder {folder} lacks series {', '.join(missing)}; it holds "
            f"{', '.join(sorted(available)) or 'none'}. "
            "Add their FRED CSVs (observation_date,<SERIES_ID>) or choose others with --series."
        )


def fetch_series(server: FredServer, series: Sequence[str]) -> dict[str, pd.Series]:
    """Every observation of each series through the server's FRED API, with plain fredapi.

    Fetched once: the run's window (history_start .. as_of) is cut by the alignment.

    Raises:
        BenchError: the server refused a request (fredapi's form of FRED's error message).
    """
    from fredapi import Fred

    fred = Fred(api_key=server.api_key)
    fred.root_url = server.url
    try:
        return {sid: fred.get_series(sid) for sid in series}
    except ValueError as exc:
        raise BenchError(f"fetching through the local FRED server failed: {exc}") from None


def summarize(raw: Mapping[str, pd.Series]) -> dict[str, SeriesSummary]:
    """First and last observed date, rows and missing values of each fetched series.

    Raises:
        BenchError: a series has no observation at all.
    """
    out = {}
    for sid, values in raw.items():
        present = values.notna().to_numpy()
        if not present.any():
            raise BenchError(f"series {sid} has no observations")
        observed = pd.DatetimeIndex(values.index[present])
        out[sid] = SeriesSummary(sid, observed.min().date(), observed.max().date(), len(values), int((~present).sum()))
    return out


def align_levels(raw: Mapping[str, pd.Series], *, settings: Settings, as_of: date) -> pd.DataFrame:
    """The series aligned on NYSE sessions from `settings.history_start` to `as_of`, as the flows align them.

    Raises:
        BenchError: the data cannot be aligned (stale, gaps, bad values), with the project's message.
    """
    from tasks.core.align import align_sessions
    from tasks.core.errors import PipelineError

    try:
        aligned = align_sessions(
            dict(raw),
            start=settings.history_start,
            as_of=as_of,
            max_fill=settings.max_fill_sessions,
            max_stale=settings.max_stale_sessions,
        )
    except PipelineError as exc:
        raise BenchError(f"the data cannot be aligned for as_of {as_of}: {exc}") from None
    return aligned.levels


def write_levels_csv(levels: pd.DataFrame, path: Path) -> None:
    """Aligned levels to a plain CSV (date index, one column per series, full float precision)."""
    levels.rename_axis("date").to_csv(path, date_format="%Y-%m-%d", float_format="%.17g")


def read_levels_csv(path: Path) -> pd.DataFrame:
    """Read what `write_levels_csv` wrote."""
    frame = pd.read_csv(path, index_col="date", parse_dates=["date"])
    frame.index = pd.DatetimeIndex(frame.index, name="date").as_unit("ns")
    return frame.astype("float64")

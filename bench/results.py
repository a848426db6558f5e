"""What a measurement reports, and how: its peak RSS, numbers that may be missing, small tables as records.

Standard library only: a child process imports this before its measurement starts the clock, so
nothing here may load a library the measurement would otherwise be charged for.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Columns holding counts: whole numbers in the JSON (or null), never floats.
_COUNT_COLUMNS = ("horizon", "n", "n_coverage")


def peak_rss_mb(*, children: bool = False) -> float:
    """Peak resident set size of this process so far, in MB.

    On Linux its own high-water mark (VmHWM in /proc/self/status). Not `getrusage`'s ru_maxrss: the
    kernel carries a parent's RSS at fork into the child's ru_maxrss across exec, so a small child
    of a large process (a benchmark child started by the benchmark, a flow run's supervisor) would
    report at least its parent's size. Elsewhere (macOS), ru_maxrss (bytes there).

    With `children`: ru_maxrss of the largest child that ended and was waited for. That figure has
    the same carry-over: it is at least this process's RSS when it started that child, so it can
    overstate a child smaller than its parent, never understate one.
    """
    if not children and sys.platform.startswith("linux"):
        own = peak_rss_of_pid(os.getpid())
        if not math.isnan(own):
            return own
    peak = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_rss_of_pid(pid: int) -> float:
    """Peak resident set size of another running process, in MB: the kernel's VmHWM (Linux
    /proc/<pid>/status), read while the process still runs. NaN where it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        (line,) = (line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return math.nan


def process_age_seconds() -> float:
    """Seconds since this process started, read from the kernel (Linux: /proc/self/stat field 22,
    its start in clock ticks after boot, against /proc/uptime), so the interpreter's start-up and
    every import count. NaN where /proc is not there."""
    try:
        with open("/proc/self/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime_file:
            uptime = float(uptime_file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan
    started_ticks = int(fields[19])  # field 22 of the line; the first two are pid and (comm)
    return uptime - started_ticks / os.sysconf("SC_CLK_TCK")


def number(value: Any) -> float:
    """A JSON number (or None, or anything float() rejects) as a float, NaN when missing."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def records(frame: Any, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-ready dicts: `series_id` a string, counts ints, the rest floats.

    Args:
        frame: A pandas DataFrame (a backtest or metrics table: a few dozen rows, never a series).
        columns: The columns to keep, in order; a missing column becomes NaN.

    Returns:
        One dict a row.
    """
    out = []
    for row in frame.to_dict("records"):
        record: dict[str, Any] = {}
        for column in columns:
            value = row.get(column, math.nan)
            if column == "series_id":
                record[column] = str(value)
            elif column in _COUNT_COLUMNS:
                record[column] = (
                    None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)
                )
            else:
                record[column] = number(value)
        out.append(record)
    return out


def to_json(value: Any) -> str:
    """`value` as indented JSON, NaN and infinities as null (JSON has no NaN)."""
    return json.dumps(_nan_to_none(value), indent=2)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value

"""The benchmark's one error type: a run cannot proceed, and the message says what to fix."""

from __future__ import annotations


class BenchError(Exception):
    """A benchmark run cannot proceed; the message says what to fix (the command exits with status 2)."""

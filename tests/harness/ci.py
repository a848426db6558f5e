"""The CI rule for real components: under CI=true one that cannot start fails the test, else it skips."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from tests.harness.process import Service

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

S = TypeVar("S", bound=Service)

__all__ = ["IN_CI", "running", "unavailable"]


def unavailable(message: str) -> None:
    """A real component (Azurite, a Prefect server, ...) could not start: fail under CI, else skip."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a test whose real component cannot start fails)")
    pytest.skip(message)


@contextmanager
def running(service: S, what: str) -> Iterator[S]:
    """`service` started for a fixture and stopped after it; a failed start is `unavailable`.

    Args:
        service: Any harness component (a managed process or an in-process server).
        what: How the failure message names it, e.g. "Azurite".
    """
    try:
        service.start()
    except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
        service.stop()
        unavailable(f"{what} could not start: {exc}")
    try:
        yield service
    finally:
        service.stop()

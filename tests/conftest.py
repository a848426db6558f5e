"""Test-wide setup: an isolated Prefect home, no real credentials, and the CI rule for real parts.

Environment is fixed here, at import time, before any test module imports Prefect or TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import date

import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-tests-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
# A developer's own FRED key, Prefect server or Azure account must never be used by the tests.
for _variable in ("FRED_API_KEY", "FRED_API_URL", "PREFECT_API_URL", "PREFECT_API_KEY", "AZURE_STORAGE_CONNECTION_STRING"):
    os.environ.pop(_variable, None)

from tasks.core.settings import BacktestSettings, FetchSettings, Settings, StorageSettings  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> None:
    """A real component (Azurite, a Prefect server, ...) could not start: fail under CI, else skip."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a test whose real component cannot start fails)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


def tiny_settings(**overrides: object) -> Settings:
    """Settings for fast tests: tiny network, few epochs, short windows, quick retries."""
    base: dict[str, object] = {
        "history_start": date(2023, 1, 1),
        "epochs": 2,
        "lstm_units": 4,
        "batch_size": 64,
        "level_window": 20,
        "fetch": FetchSettings(timeout_seconds=2, retries=2, retry_backoff_seconds=0.05, retry_jitter_factor=0, requests_per_minute=6000),
        "storage": StorageSettings(attempts=2, timeout_seconds=10, retry_delay_seconds=0.1),
        "backtest": BacktestSettings(origin_step=5),
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings() -> Settings:
    """Tiny settings (see tiny_settings)."""
    return tiny_settings()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One Azurite blob service on 127.0.0.1 for the session (tests/harness/azurite.py)."""
    from tests.harness.azurite import Azurite, AzuriteUnavailable, ensure_azurite_installed

    try:
        ensure_azurite_installed()
        server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    except AzuriteUnavailable as exc:
        unavailable(f"Azurite could not start: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real `prefect server start` on 127.0.0.1 for the session (tests/harness/prefect_server.py)."""
    from tests.harness.prefect_server import PrefectServer

    server = PrefectServer(tmp_path_factory.mktemp("prefect-server"))
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
        server.stop()
        unavailable(f"prefect server could not start: {exc}")
    yield server
    server.stop()

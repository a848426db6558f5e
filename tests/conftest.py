"""Test-wide setup: an isolated Prefect home, no real credentials, and the session's real components.

Environment is fixed here, at import time, before any test module imports Prefect or TensorFlow.
The components and helpers live in tests/harness/; this file only holds fixtures.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-tests-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
# A developer's own FRED key, Prefect server or Azure account must never be used by the tests.
for _variable in (
    "FRED_API_KEY",
    "FRED_API_URL",
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
):
    os.environ.pop(_variable, None)

from tasks.core.settings import Settings  # noqa: E402
from tests.harness.azurite import Azurite  # noqa: E402
from tests.harness.ci import running  # noqa: E402
from tests.harness.prefect_server import PrefectServer  # noqa: E402
from tests.harness.settings import tiny_settings  # noqa: E402
from tests.harness.smtp import SmtpSink  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def settings() -> Settings:
    """Tiny settings (tests.harness.settings.tiny_settings)."""
    return tiny_settings()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite blob service on 127.0.0.1 for the session (tests/harness/azurite.py)."""
    with running(Azurite(tmp_path_factory.mktemp("azurite")), "Azurite") as server:
        yield server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One real `prefect server start` on 127.0.0.1 for the session (tests/harness/prefect_server.py)."""
    with running(PrefectServer(tmp_path_factory.mktemp("prefect-server")), "prefect server") as server:
        yield server


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """One SMTP server on 127.0.0.1 for the session, keeping every e-mail (tests/harness/smtp.py)."""
    with running(SmtpSink(), "aiosmtpd on 127.0.0.1") as sink:
        yield sink

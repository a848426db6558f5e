"""The fetch stage against a local FRED-compatible server: fredapi's own code does the HTTP and XML.

Covers '.' values, retry-then-succeed for transient faults (500, 429, bad XML, slow responses,
refused connections), fail-fast for permanent ones (bad key, unknown series) with FRED's message and
the series id, request timeouts, the client-side rate limit, and that the API key never appears in a
log line, a state message or an error.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from prefect import flow
from pydantic import SecretStr

from tasks.adapters import fred as fetch_module
from tasks.adapters.fred import DemoSource, FredSource, fetch_fred_series, load_source, resolve_source
from tasks.core.demo import generate_demo_series
from tasks.core.errors import FredConfigurationError, FredRequestError, FredTransientError
from tasks.core.settings import FetchSettings
from tasks.stages.data import fetch_task_for
from tests.harness.flow_runs import flow_run_logs
from tests.harness.fred_server import Fault, FredServer

KEY = "f1e2d3c4b5a697887766554433221100"  # looks like a real 32-hex FRED key, so a leak is findable
START, END = date(2024, 1, 1), date(2024, 3, 28)
FAST = FetchSettings(
    timeout_seconds=1.0, retries=3, retry_backoff_seconds=0.05, retry_jitter_factor=0, requests_per_minute=60000
)


@pytest.fixture
def fred() -> Iterator[FredServer]:
    data = generate_demo_series(("SP500", "VIXCLS"), END)
    with FredServer(data, api_key=KEY) as server:
        yield server


def source_for(server: FredServer, key: str = KEY) -> FredSource:
    return FredSource(SecretStr(key), server.url, origin="test")


def requests_for(server: FredServer, series_id: str) -> int:
    return sum(1 for r in server.requests() if r.series_id == series_id)


@flow
def fetch_flow(source: FredSource, series_id: str, settings: FetchSettings) -> pd.Series:
    return fetch_task_for(series_id, settings)(source, series_id, START, END, settings)


def test_observations_arrive_with_nan_for_freds_missing_marker(fred: FredServer) -> None:
    values = fetch_fred_series(source_for(fred), "SP500", START, END, settings=FAST)
    expected = generate_demo_series(("SP500",), END)["SP500"].loc[str(START) :]
    assert values.index[0] >= pd.Timestamp(START) and values.index[-1] <= pd.Timestamp(END)
    np.testing.assert_allclose(values.to_numpy(), expected.to_numpy(), equal_nan=True)
    assert values.isna().any()  # holidays come back from the server as "." and from fredapi as NaN
    assert values.index.dtype == "datetime64[ns]"


def test_transient_failures_are_retried_until_the_data_arrives(prefect_harness: None, fred: FredServer) -> None:
    fred.inject(500, 429, "badxml", series_id="SP500")
    values = fetch_flow(source_for(fred), "SP500", FAST)
    assert len(values) > 50
    assert requests_for(fred, "SP500") == 4


def test_a_slow_response_times_out_and_the_retry_succeeds(prefect_harness: None, fred: FredServer) -> None:
    fred.inject(Fault("timeout", delay=3.0), series_id="VIXCLS")
    values = fetch_flow(source_for(fred), "VIXCLS", FAST)
    assert len(values) > 50 and requests_for(fred, "VIXCLS") == 2


def test_a_timeout_is_a_transient_error_naming_the_series(fred: FredServer) -> None:
    fred.inject(Fault("timeout", delay=3.0), series_id="SP500")
    with pytest.raises(FredTransientError, match=r"SP500: could not reach FRED.*fetch.timeout_seconds = 1 s\)\.$"):
        fetch_fred_series(source_for(fred), "SP500", START, END, settings=FAST)


def test_an_answer_that_trickles_in_is_cut_at_the_time_limit(fred: FredServer) -> None:
    # Every read gets a few bytes before the 1 s socket timeout; the whole answer would take minutes.
    fred.inject(Fault("trickle", delay=0.3), series_id="SP500")
    with pytest.raises(FredTransientError, match=r"SP500: .*TimeoutError: the answer was still arriving after 1 s"):
        fetch_fred_series(source_for(fred), "SP500", START, END, settings=FAST)


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = FredSource(SecretStr(KEY), f"http://127.0.0.1:{port}/fred", origin="test")
    with pytest.raises(FredTransientError, match=r"could not reach FRED at .*Connection ?[Rr]efused.*\.$"):
        fetch_fred_series(source, "SP500", START, END, settings=FAST)


def test_retries_give_up_with_the_last_transient_error_and_say_so(prefect_harness: None, fred: FredServer) -> None:
    fred.inject(500, 500, 500, 500, series_id="SP500")
    with pytest.raises(FredTransientError) as caught:
        fetch_flow(source_for(fred), "SP500", FAST)
    assert str(caught.value) == (
        "SP500: FRED HTTP 500: Internal Server Error. The failure is on FRED's side; a later run usually "
        "succeeds. Gave up after 4 attempts (fetch.retries = 3)."
    )
    assert requests_for(fred, "SP500") == 4  # the first try and 3 retries


def test_without_retries_the_one_attempt_is_named(prefect_harness: None, fred: FredServer) -> None:
    fred.inject(502, series_id="SP500")
    with pytest.raises(FredTransientError, match=r"Gave up after 1 attempt \(fetch.retries = 0\)\.$"):
        fetch_flow(source_for(fred), "SP500", FAST.model_copy(update={"retries": 0}))
    assert requests_for(fred, "SP500") == 1


def test_a_rate_limit_answer_names_the_setting_that_spaces_the_requests(fred: FredServer) -> None:
    fred.inject(429, series_id="SP500")
    with pytest.raises(FredTransientError, match=r"SP500: FRED HTTP 429: .*lower fetch.requests_per_minute"):
        fetch_fred_series(source_for(fred), "SP500", START, END, settings=FAST)


def test_a_bad_key_fails_at_once_with_freds_message(prefect_harness: None, fred: FredServer) -> None:
    with pytest.raises(FredRequestError) as caught:
        fetch_flow(source_for(fred, key="0" * 32), "SP500", FAST)
    assert "SP500: FRED HTTP 400: Bad Request.  The value for variable api_key is not registered" in str(caught.value)
    assert "Check the API key" in str(caught.value)
    assert requests_for(fred, "SP500") == 1  # not retried


def test_an_unknown_series_fails_at_once_naming_it(prefect_harness: None, fred: FredServer) -> None:
    with pytest.raises(FredRequestError, match="NOSUCHSERIES: FRED HTTP 400: Bad Request.  The series does not exist"):
        fetch_flow(source_for(fred), "NOSUCHSERIES", FAST)
    assert requests_for(fred, "NOSUCHSERIES") == 1


def test_an_address_that_is_not_freds_api_says_to_check_the_api_url(fred: FredServer) -> None:
    # The server's root without /fred: FRED's 404 for a path it does not serve.
    wrong = FredSource(SecretStr(KEY), fred.url.removesuffix("/fred"), origin="test")
    with pytest.raises(FredRequestError) as caught:
        fetch_fred_series(wrong, "SP500", START, END, settings=FAST)
    assert str(caught.value).startswith(
        f"SP500: FRED HTTP 404: Not Found. {wrong.api_url} did not take the request as FRED's API does: check "
        "the API URL in the FredCredentials block or FRED_API_URL (FRED's own is https://"
    )


def test_the_api_key_never_appears_in_logs_states_or_errors(prefect_harness: None, fred: FredServer) -> None:
    from prefect.client.orchestration import get_client

    fred.inject(500, "badxml", series_id="SP500")
    ok = fetch_flow(source_for(fred), "SP500", FAST, return_state=True)
    failed = fetch_flow(source_for(fred), "NOSUCHSERIES", FAST, return_state=True)
    assert ok.is_completed() and failed.is_failed()
    error = failed.result(raise_on_failure=False)
    assert KEY not in str(error) and KEY not in repr(error) and KEY not in (failed.message or "")
    logs = flow_run_logs(ok.state_details.flow_run_id, failed.state_details.flow_run_id)
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs()
    assert len(logs) > 3
    assert not [message for message in logs if KEY in message]
    assert not [run.state.message for run in task_runs if run.state and KEY in (run.state.message or "")]


def fake_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the limiter's clock and sleep (its module's `time` only); returns the list of sleeps."""
    clock = {"now": 100.0}
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(fetch_module, "time", SimpleNamespace(monotonic=lambda: clock["now"], sleep=sleep))
    monkeypatch.setattr(fetch_module._RateLimiter, "_state", {})
    return slept


def test_requests_beyond_the_burst_are_spaced_by_the_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = fake_clock(monkeypatch)
    for _ in range(6):
        fetch_module._RateLimiter.wait("http://fred.test", requests_per_minute=120, burst=3)
    assert slept == pytest.approx([0.5, 0.5, 0.5])  # 3 at once, then one every 0.5 s (120/min)


def test_a_quiet_period_refills_the_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = fake_clock(monkeypatch)
    for _ in range(2):
        fetch_module._RateLimiter.wait("http://fred.test", requests_per_minute=60, burst=2)
    fetch_module.time.sleep(10)  # idle: the bucket refills to its capacity, no more
    for _ in range(3):
        fetch_module._RateLimiter.wait("http://fred.test", requests_per_minute=60, burst=2)
    assert slept == pytest.approx([10, 1.0])


def test_without_credentials_the_demo_source_is_used() -> None:
    assert isinstance(resolve_source(None, {}), DemoSource)


def test_environment_key_and_url_select_fred() -> None:
    source = resolve_source(None, {"FRED_API_KEY": KEY, "FRED_API_URL": "http://127.0.0.1:9/fred/"})
    assert isinstance(source, FredSource) and source.api_url == "http://127.0.0.1:9/fred"
    assert KEY not in repr(source)


def test_the_logged_description_hides_a_password_in_the_url_of_a_proxy() -> None:
    source = resolve_source(
        None, {"FRED_API_KEY": KEY, "FRED_API_URL": "http://proxyuser:Pr0xy-secret@127.0.0.1:9/fred"}
    )
    described = source.describe()
    assert described == "FRED at http://proxyuser:***@127.0.0.1:9/fred (credentials from environment (FRED_API_KEY))"


def test_a_url_without_a_key_is_a_configuration_error() -> None:
    with pytest.raises(FredConfigurationError, match="FRED_API_URL is set but FRED_API_KEY is not"):
        resolve_source(None, {"FRED_API_URL": "http://127.0.0.1:9/fred"})


def test_a_malformed_url_is_reported_without_the_key() -> None:
    with pytest.raises(FredConfigurationError) as caught:
        resolve_source(None, {"FRED_API_KEY": KEY, "FRED_API_URL": "ftp:/nowhere"})
    assert "api_url must be an http(s) URL" in str(caught.value) and KEY not in str(caught.value)


@pytest.mark.parametrize(
    "pasted",
    [f"\u201c{KEY}\u201d", f"{KEY[:16]} {KEY[16:]}", f"{KEY}\x00", f"{KEY[:16]}\u00a0{KEY[16:]}"],
    ids=["typographic quotes", "inner space", "control character", "no-break space"],
)
def test_a_key_that_cannot_be_a_fred_key_is_a_configuration_error_that_hides_it(pasted: str) -> None:
    with pytest.raises(FredConfigurationError, match="(?s)FRED_API_KEY are not usable: .*api_key holds") as caught:
        resolve_source(None, {"FRED_API_KEY": pasted})
    assert KEY[:16] not in str(caught.value) and KEY[16:] not in str(caught.value)


def test_surrounding_whitespace_of_the_environment_key_is_ignored() -> None:
    source = resolve_source(None, {"FRED_API_KEY": f" {KEY}\n"})
    assert isinstance(source, FredSource) and source.api_key.get_secret_value() == KEY


def test_a_saved_block_wins_and_a_missing_one_is_an_error(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks.fred import FredCredentials

    monkeypatch.setenv("FRED_API_KEY", "e" * 32)
    FredCredentials(api_key=KEY, api_url="http://127.0.0.1:9/fred").save("fred-test", overwrite=True)
    source = load_source("fred-test")
    assert isinstance(source, FredSource) and source.api_key.get_secret_value() == KEY
    assert source.origin == "block 'fred-test'"
    with pytest.raises(FredConfigurationError, match="No FredCredentials block named 'missing'"):
        load_source("missing")


def test_the_clients_date_parser_gives_what_fredapis_own_gives() -> None:
    from fredapi import Fred

    from tasks.adapters.fred import _FredClient

    for text in ("2025-05-23", "1999-12-31", "2024-02-29"):
        assert _FredClient._parse(None, text) == Fred._parse(None, text)  # type: ignore[arg-type]
    for bad in ("2025-02-30", "23/05/2025"):
        with pytest.raises(ValueError):
            Fred._parse(None, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            _FredClient._parse(None, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # fredapi's would give NaT: an observation without a date is refused
        _FredClient._parse(None, "")  # type: ignore[arg-type]

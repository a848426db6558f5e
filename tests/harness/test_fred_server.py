"""Tests for tests.harness.fred_server, using fredapi itself as the client."""

from __future__ import annotations

import http.client
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from fredapi import Fred

from tests.harness.fred_server import (
    MSG_KEY_NOT_REGISTERED,
    MSG_KEY_NOT_SET,
    MSG_RATE_LIMIT,
    Fault,
    FredServer,
    Request,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"


def _sp500() -> pd.Series:
    return pd.Series(
        [3257.85, 3234.85, float("nan"), 3246.28, 3237.18],
        index=pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08"]),
    )


def _vix() -> pd.Series:
    return pd.Series([12.47, 14.02], index=pd.to_datetime(["2020-01-02", "2020-01-03"]))


@pytest.fixture
def server() -> Iterator[FredServer]:
    with FredServer({"SP500": _sp500(), "VIXCLS": _vix()}, api_key=KEY) as srv:
        yield srv


def _fred(srv: FredServer, key: str = KEY) -> Fred:
    fred = Fred(api_key=key)
    fred.root_url = srv.url  # per instance, never the class attribute
    return fred


def _obs_url(srv: FredServer, series_id: str = "SP500", key: str = KEY) -> str:
    return f"{srv.url}/series/observations?series_id={series_id}&api_key={key}"


def test_observations_round_trip_with_nan_for_missing(server: FredServer) -> None:
    got = _fred(server).get_series("SP500")
    expected = _sp500()
    assert list(got.index) == list(expected.index)
    assert got.iloc[[0, 1, 3, 4]].tolist() == expected.iloc[[0, 1, 3, 4]].tolist()
    assert math.isnan(got.iloc[2])


def test_observations_xml_matches_fred_format(server: FredServer) -> None:
    with urllib.request.urlopen(_obs_url(server), timeout=5) as resp:
        assert resp.headers["Content-Type"] == "text/xml; charset=UTF-8"
        root = ET.fromstring(resp.read())
    assert root.tag == "observations"
    assert root.get("count") == "5"
    assert root.get("realtime_start") == "2026-11-23"
    assert root.get("observation_start") == "1776-07-04"
    assert root.get("observation_end") == "9999-12-31"
    assert [o.get("value") for o in root] == ["3257.85", "3234.85", ".", "3246.28", "3237.18"]
    assert root[0].attrib == {
        "realtime_start": "2026-11-23",
        "realtime_end": "2026-11-23",
        "date": "2020-01-02",
        "value": "3257.85",
    }


def test_values_are_formatted_without_exponent(server: FredServer) -> None:
    server.set_series("TINY", pd.Series([1e-05, 2e16, 3.0], index=pd.date_range("2020-01-01", periods=3)))
    with urllib.request.urlopen(_obs_url(server, "TINY"), timeout=5) as resp:
        root = ET.fromstring(resp.read())
    assert [o.get("value") for o in root] == ["0.00001", "20000000000000000", "3.0"]


def test_observation_start_and_end_filter_inclusively(server: FredServer) -> None:
    got = _fred(server).get_series("SP500", observation_start="2020-01-03", observation_end="2020-01-07")
    assert [d.strftime("%Y-%m-%d") for d in got.index] == ["2020-01-03", "2020-01-06", "2020-01-07"]
    params = server.requests()[-1].params
    assert params["observation_start"] == "2020-01-03"
    assert params["observation_end"] == "2020-01-07"


def test_invalid_observation_start_is_a_400(server: FredServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(_obs_url(server) + "&observation_start=2020-13-45", timeout=5)
    assert info.value.code == 400
    message = ET.fromstring(info.value.read()).get("message")
    assert message.startswith("Bad Request.  Variable observation_start can not be")


def test_get_series_info_fields(server: FredServer) -> None:
    server.set_series("SP500", _sp500(), info={"title": "S&P 500", "frequency": "Daily, Close"})
    info = _fred(server).get_series_info("SP500")
    assert info["id"] == "SP500"
    assert info["title"] == "S&P 500"
    assert info["frequency"] == "Daily, Close"
    assert info["frequency_short"] == "D"
    assert info["observation_start"] == "2020-01-02"
    assert info["observation_end"] == "2020-01-08"
    assert info["realtime_start"] == info["realtime_end"] == "2026-11-23"
    for field in ("units", "units_short", "seasonal_adjustment", "seasonal_adjustment_short", "last_updated", "notes"):
        assert field in info.index


def test_unknown_series_raises_fred_message(server: FredServer) -> None:
    with pytest.raises(ValueError, match=r"^Bad Request\.  The series does not exist\.$"):
        _fred(server).get_series("NOPE")
    assert server.requests()[-1].status == 400


def test_bad_api_key_raises_not_registered(server: FredServer) -> None:
    with pytest.raises(ValueError) as info:
        _fred(server, key="wrong-key").get_series("SP500")
    assert str(info.value) == MSG_KEY_NOT_REGISTERED
    assert "wrong-key" not in str(info.value)


def test_missing_api_key_raises_not_set(server: FredServer) -> None:
    # fredapi always appends "&api_key=<key>", so an empty key is how "missing" reaches the server...
    with pytest.raises(ValueError) as info:
        _fred(server, key="").get_series("SP500")
    assert str(info.value) == MSG_KEY_NOT_SET
    # ...and a request without the parameter at all gets the same answer.
    with pytest.raises(urllib.error.HTTPError) as http_info:
        urllib.request.urlopen(f"{server.url}/series/observations?series_id=SP500", timeout=5)
    assert ET.fromstring(http_info.value.read()).get("message") == MSG_KEY_NOT_SET


def test_unknown_path_is_404_with_error_body(server: FredServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{server.url}/category?category_id=1&api_key={KEY}", timeout=5)
    assert info.value.code == 404
    assert ET.fromstring(info.value.read()).tag == "error"


@pytest.mark.parametrize(("status", "message"), [(429, MSG_RATE_LIMIT), (500, "Internal Server Error")])
def test_injected_status_raises_value_error_with_http_error_context(
    server: FredServer, status: int, message: str
) -> None:
    server.inject(status)
    fred = _fred(server)
    with pytest.raises(ValueError) as info:
        fred.get_series("SP500")
    assert str(info.value) == message
    assert isinstance(info.value.__context__, urllib.error.HTTPError)
    assert info.value.__context__.code == status
    # One fault, one request: the next call succeeds.
    assert len(fred.get_series("SP500")) == 5
    assert [r.status for r in server.requests()] == [status, 200]


def test_injected_502_has_html_body_so_fredapi_raises_parse_error(server: FredServer) -> None:
    server.inject(502)
    with pytest.raises(ET.ParseError) as info:
        _fred(server).get_series("SP500")
    assert info.value.__context__.code == 502


def test_faults_are_consumed_in_order(server: FredServer) -> None:
    server.inject(429, Fault("status", status=500))
    fred = _fred(server)
    for expected in (MSG_RATE_LIMIT, "Internal Server Error"):
        with pytest.raises(ValueError, match=expected):
            fred.get_series("SP500")
    assert len(fred.get_series("SP500")) == 5


def test_invalid_fault_is_rejected(server: FredServer) -> None:
    with pytest.raises(ValueError):
        server.inject(418)
    with pytest.raises(ValueError):
        server.inject("explode")
    assert server.pending_faults() == []


def test_badxml_raises_parse_error(server: FredServer) -> None:
    server.inject("badxml")
    with pytest.raises(ET.ParseError):
        _fred(server).get_series("SP500")


def test_timeout_fault_makes_short_client_timeout_expire(server: FredServer) -> None:
    server.inject(Fault("timeout", delay=2.0))
    with pytest.raises((TimeoutError, urllib.error.URLError)) as info:
        urllib.request.urlopen(_obs_url(server), timeout=0.5)
    if isinstance(info.value, urllib.error.URLError):
        assert isinstance(info.value.reason, TimeoutError)


def test_timeout_fault_still_answers_a_patient_client(server: FredServer) -> None:
    server.inject(Fault("timeout", delay=0.3))
    started = time.monotonic()
    with urllib.request.urlopen(_obs_url(server), timeout=5) as resp:
        assert resp.status == 200
        assert ET.fromstring(resp.read()).get("count") == "5"
    assert time.monotonic() - started >= 0.3


def test_stop_is_prompt_while_timeout_fault_sleeps() -> None:
    srv = FredServer({"SP500": _sp500()}).start()
    srv.inject(Fault("timeout", delay=30.0))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(urllib.request.urlopen, _obs_url(srv), timeout=10)
        deadline = time.monotonic() + 5
        while not srv.requests() and time.monotonic() < deadline:
            time.sleep(0.01)
        srv.stop()
        # The sleeping handler was woken and the connection closed: the client sees a disconnect,
        # not its own 10 s timeout (nor the fault's 30 s), which result() would not wait for.
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            pending.result(timeout=5)


def test_reset_raises_connection_error_from_urllib(server: FredServer) -> None:
    server.inject("reset")
    with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        _fred(server).get_series("SP500")
    assert server.requests()[-1].status == 0


def test_requests_log_redacts_api_key(server: FredServer) -> None:
    _fred(server).get_series("SP500", observation_start="2020-01-03")
    with pytest.raises(ValueError):
        _fred(server, key="secret-wrong").get_series("VIXCLS")
    log = server.requests()
    assert log[0] == Request(
        path="/fred/series/observations",
        series_id="SP500",
        params={"series_id": "SP500", "observation_start": "2020-01-03", "api_key": "***"},
        status=200,
    )
    assert log[1].params["api_key"] == "***"
    assert log[1].status == 400
    assert KEY not in repr(log) and "secret-wrong" not in repr(log)
    server.clear()
    assert server.requests() == []


def test_fault_targeted_at_one_series_does_not_affect_another(server: FredServer) -> None:
    server.inject(500, series_id="VIXCLS")
    fred = _fred(server)
    assert len(fred.get_series("SP500")) == 5
    assert len(fred.get_series_info("SP500")) > 0
    with pytest.raises(ValueError, match="Internal Server Error"):
        fred.get_series("VIXCLS")
    assert len(fred.get_series("VIXCLS")) == 2


def test_concurrent_requests_are_served(server: FredServer) -> None:
    server.inject(Fault("timeout", delay=2.0), series_id="VIXCLS")
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(_fred(server).get_series, "VIXCLS")
        deadline = time.monotonic() + 5
        while not server.requests() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(_fred(server).get_series("SP500")) == 5
        assert not slow.done()  # SP500 was answered while the VIXCLS handler still slept
        assert len(slow.result(timeout=10)) == 2


def test_set_series_replaces_data(server: FredServer) -> None:
    server.set_series("SP500", pd.Series([1.25], index=["2021-06-01"]))
    got = _fred(server).get_series("SP500")
    assert got.tolist() == [1.25]
    assert got.index[0] == pd.Timestamp("2021-06-01")


def test_stopped_server_raises_url_error() -> None:
    srv = FredServer({"SP500": _sp500()}).start()
    fred = _fred(srv)
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        fred.get_series("SP500")


def test_from_csv_folder_reads_fred_download_csv(tmp_path: Path) -> None:
    (tmp_path / "SP500.csv").write_text(
        "observation_date,SP500\n2020-01-02,3257.85\n2020-01-03,3234.85\n2020-01-06,\n2020-01-07,3246.28\n"
    )
    (tmp_path / "VIXCLS.csv").write_text("observation_date,VIXCLS\n2020-01-02,12.47\n")
    (tmp_path / "README.md").write_text("not a csv\n")
    with FredServer.from_csv_folder(tmp_path, api_key="k2") as srv:
        assert srv.series_ids() == ["SP500", "VIXCLS"]
        got = _fred(srv, key="k2").get_series("SP500")
    assert [d.strftime("%Y-%m-%d") for d in got.index] == ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]
    assert got.iloc[0] == 3257.85
    assert math.isnan(got.iloc[2])


def test_from_csv_folder_rejects_non_fred_header(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("when,value\n2020-01-02,1\n")
    with pytest.raises(ValueError, match="observation_date"):
        FredServer.from_csv_folder(tmp_path)


def test_cli_serves_csv_folder_and_prints_env_vars(tmp_path: Path) -> None:
    (tmp_path / "DJIA.csv").write_text("observation_date,DJIA\n2020-01-02,28868.8\n2020-01-03,\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.fred_server", "--data", str(tmp_path), "--api-key", "cli-key"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            name, _, value = line.strip().partition("=")
            if name in ("FRED_API_URL", "FRED_API_KEY"):
                lines[name] = value
            if len(lines) == 2:
                break
        assert lines["FRED_API_KEY"] == "cli-key"
        assert lines["FRED_API_URL"].startswith("http://127.0.0.1:")
        fred = Fred(api_key=lines["FRED_API_KEY"])
        fred.root_url = lines["FRED_API_URL"]
        got = fred.get_series("DJIA")
        assert got.iloc[0] == 28868.8 and math.isnan(got.iloc[1])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""A local, FRED-compatible HTTP server for tests and offline runs.

This module is test support only: it serves in-memory ``pandas.Series`` (or a
folder of FRED download CSVs) through the two FRED endpoints that ``fredapi``
uses, ``/fred/series/observations`` and ``/fred/series``, with the same XML
shapes, HTTP status codes and error messages as the real service. Faults
(HTTP errors, slow responses, malformed bodies, dropped connections) can be
queued so client retry and error handling can be tested without a network.

It binds to loopback only and never contacts anything else.

Typical use with fredapi::

    with FredServer({"SP500": series}) as server:
        fred = Fred(api_key="test-key")
        fred.root_url = server.url
        fred.get_series("SP500")

Command line (run from the project root so ``tests`` is importable)::

    python -m tests.harness.fred_server --data DIR [--port P] [--api-key K]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import quoteattr

import pandas as pd

from tests.harness.process import Service

__all__ = ["Fault", "FredServer", "Request", "main"]

# Real FRED error messages (note FRED's two spaces after each sentence).
MSG_SERIES_NOT_FOUND = "Bad Request.  The series does not exist."
MSG_KEY_NOT_REGISTERED = (
    "Bad Request.  The value for variable api_key is not registered.  "
    "Read https://fred.stlouisfed.org/docs/api/api_key.html for more information."
)
MSG_KEY_NOT_SET = (
    "Bad Request.  Variable api_key is not set.  "
    "Read https://fred.stlouisfed.org/docs/api/api_key.html for more information."
)
MSG_SERIES_ID_NOT_SET = "Bad Request.  Variable series_id is not set."
MSG_RATE_LIMIT = "Too Many Requests.  Exceeded Rate Limit"
MSG_INTERNAL = "Internal Server Error"
MSG_NOT_FOUND = "Not Found."
MSG_LOCKED = "Locked."

#: Message used for an injected ``<error>`` fault of each supported status.
STATUS_MESSAGES: dict[int, str] = {
    400: MSG_SERIES_NOT_FOUND,
    404: MSG_NOT_FOUND,
    423: MSG_LOCKED,
    429: MSG_RATE_LIMIT,
    500: MSG_INTERNAL,
    502: "Bad Gateway",
    503: "Service Unavailable",
}
#: Statuses answered with an HTML body, as a reverse proxy in front of FRED would.
HTML_STATUSES = frozenset({502, 503})

FAULT_KINDS = frozenset({"status", "timeout", "trickle", "badxml", "reset"})
# Bytes per piece of a "trickle" fault's body.
TRICKLE_BYTES = 64
BAD_XML_BODY = b"<html>not xml"

#: Status recorded in the request log for a connection closed without a response.
STATUS_RESET = 0

_EARLIEST = "1776-07-04"
_LATEST = "9999-12-31"
_CONTENT_TYPE = "text/xml; charset=UTF-8"
_XML_DECL = '<?xml version="1.0" encoding="utf-8" ?>\n'
_SLEEP_STEP = 0.05


@dataclass(frozen=True)
class Fault:
    """A fault to inject into one response.

    Attributes:
        kind: ``"status"`` (HTTP error), ``"timeout"`` (sleep ``delay`` seconds
            before answering normally), ``"trickle"`` (answer normally, but send the
            body ``TRICKLE_BYTES`` at a time, ``delay`` seconds apart: every read
            gets data before a socket timeout, the whole answer takes long),
            ``"badxml"`` (200 with a non-XML body) or ``"reset"`` (close the
            connection without any response).
        status: HTTP status for ``kind == "status"``; one of
            ``STATUS_MESSAGES``' keys.
        delay: Seconds to sleep for ``kind == "timeout"``, between pieces for ``"trickle"``.
    """

    kind: str
    status: int | None = None
    delay: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.kind == "status":
            if self.status not in STATUS_MESSAGES:
                raise ValueError(f"unsupported fault status {self.status!r}; expected one of {sorted(STATUS_MESSAGES)}")
        elif self.status is not None:
            raise ValueError(f"status is only meaningful for kind='status', not {self.kind!r}")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")

    @classmethod
    def coerce(cls, value: Fault | str | int) -> Fault:
        """Build a Fault from the shorthand accepted by ``FredServer.inject``.

        Args:
            value: A Fault, an int HTTP status (e.g. ``429``), or one of the
                strings ``"timeout"``, ``"badxml"``, ``"reset"``.

        Returns:
            The corresponding Fault.

        Raises:
            ValueError: If the shorthand is not recognised.
            TypeError: If ``value`` has an unsupported type.
        """
        if isinstance(value, Fault):
            return value
        if isinstance(value, bool):  # bool is an int subclass; never meaningful here
            raise TypeError("fault must be a Fault, an int status or a kind string, not bool")
        if isinstance(value, int):
            return cls("status", status=value)
        if isinstance(value, str):
            if value == "status":
                raise ValueError("use an int HTTP status (e.g. 429) or Fault('status', status=...)")
            return cls(value)
        raise TypeError(f"fault must be a Fault, an int status or a kind string, not {type(value).__name__}")


@dataclass(frozen=True)
class Request:
    """One request received by the server.

    Attributes:
        path: URL path without the query string, e.g. ``/fred/series/observations``.
        series_id: The ``series_id`` query parameter, if given.
        params: All query parameters; ``api_key``'s value is replaced by ``"***"``.
        status: HTTP status sent (``0`` when the connection was reset without a response).
        at: ``time.monotonic()`` of this process when the request was answered.
    """

    path: str
    series_id: str | None
    params: dict[str, str] = field(default_factory=dict)
    status: int = 200
    at: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class _StoredSeries:
    """A series prepared for serving: ISO dates and FRED-formatted values."""

    dates: tuple[str, ...]
    values: tuple[str, ...]
    info: Mapping[str, str]


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str = _CONTENT_TYPE


def _format_value(value: float) -> str:
    """Format a float like FRED: shortest round-tripping digits, no exponent; NaN -> ".".

    Args:
        value: The observation value.

    Returns:
        The string FRED would put in the ``value`` attribute.
    """
    if math.isnan(value):
        return "."
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text


def _error_body(status: int, message: str) -> bytes:
    return (_XML_DECL + f"<error code={quoteattr(str(status))} message={quoteattr(message)}/>").encode("utf-8")


def _html_error_body(status: int, reason: str) -> bytes:
    """An nginx-style proxy error page. Its unclosed ``<hr>`` makes it invalid XML, as real ones are."""
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


def _attrs(pairs: Sequence[tuple[str, str]]) -> str:
    return " ".join(f"{name}={quoteattr(str(val))}" for name, val in pairs)


def _infer_frequency(dates: Sequence[str]) -> tuple[str, str]:
    """Guess FRED's ``frequency``/``frequency_short`` from the median observation spacing."""
    if len(dates) < 2:
        return "Daily", "D"
    stamps = pd.to_datetime(pd.Index(dates), format="%Y-%m-%d")
    median_days = float(pd.Series(stamps).diff().dropna().dt.days.median())
    for limit, long_name, short_name in (
        (4, "Daily", "D"),
        (10, "Weekly", "W"),
        (45, "Monthly", "M"),
        (135, "Quarterly", "Q"),
        (270, "Semiannual", "SA"),
    ):
        if median_days <= limit:
            return long_name, short_name
    return "Annual", "A"


def _prepare_series(series_id: str, values: pd.Series, info: Mapping[str, str] | None, realtime: str) -> _StoredSeries:
    if not isinstance(values, pd.Series):
        raise TypeError(f"series {series_id!r}: expected a pandas Series, got {type(values).__name__}")
    index = pd.to_datetime(values.index)
    if index.hasnans:
        raise ValueError(f"series {series_id!r}: index contains missing dates")
    numeric = pd.to_numeric(pd.Series(values.to_numpy(dtype=object)), errors="raise")
    clean = pd.Series(numeric.to_numpy(dtype="float64", na_value=math.nan), index=index.normalize())
    if clean.index.has_duplicates:
        dupes = sorted({d.strftime("%Y-%m-%d") for d in clean.index[clean.index.duplicated()]})
        raise ValueError(f"series {series_id!r}: duplicate dates {dupes[:5]}")
    clean = clean.sort_index()
    if not clean.map(lambda v: math.isnan(v) or math.isfinite(v)).all():
        raise ValueError(f"series {series_id!r}: infinite values cannot be served (use NaN for missing)")
    dates = tuple(d.strftime("%Y-%m-%d") for d in clean.index)
    formatted = tuple(_format_value(v) for v in clean.to_numpy())
    frequency, frequency_short = _infer_frequency(dates)
    meta: dict[str, str] = {
        "id": series_id,
        "realtime_start": realtime,
        "realtime_end": realtime,
        "title": series_id,
        "observation_start": dates[0] if dates else _EARLIEST,
        "observation_end": dates[-1] if dates else _EARLIEST,
        "frequency": frequency,
        "frequency_short": frequency_short,
        "units": "Index",
        "units_short": "Index",
        "seasonal_adjustment": "Not Seasonally Adjusted",
        "seasonal_adjustment_short": "NSA",
        "last_updated": f"{realtime} 08:00:00-06",
        "popularity": "1",
        "notes": "Served by tests.harness.fred_server (local FRED-compatible test server).",
    }
    if info:
        meta.update({str(k): str(v) for k, v in info.items()})
        meta["id"] = series_id
    return _StoredSeries(dates=dates, values=formatted, info=meta)


def _parse_date_param(name: str, raw: str) -> str:
    """Validate a YYYY-MM-DD query parameter.

    Raises:
        ValueError: With a FRED-like message if ``raw`` is not a YYYY-MM-DD date.
    """
    if len(raw) == 10:
        try:
            return dt.date.fromisoformat(raw).isoformat()
        except ValueError:
            pass
    raise ValueError(f"Bad Request.  Variable {name} can not be converted to a date.  Valid format is YYYY-MM-DD.")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fred: FredServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away (timeouts, resets); report anything else."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "FredTestServer/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Print nothing: the server is used inside test runs."""

    def do_GET(self) -> None:
        """Answer a GET request, applying any queued fault first."""
        self.server.fred._handle(self)


class FredServer(Service):
    """A local FRED-compatible HTTP server serving in-memory series.

    Serves ``GET /fred/series/observations`` and ``GET /fred/series`` with
    FRED's XML format, validates the API key like FRED, and can inject faults.
    All public methods are thread-safe.
    """

    def __init__(
        self,
        series: Mapping[str, pd.Series] | None = None,
        *,
        api_key: str = "test-key",
        host: str = "127.0.0.1",
        port: int = 0,
        realtime: str = "2026-11-23",
    ) -> None:
        """Create a server (not yet listening; call ``start``).

        Args:
            series: Mapping of series id to a Series indexed by date (DatetimeIndex
                or date-like), float values, NaN for missing (served as ".").
            api_key: The only API key accepted.
            host: Address to bind; must be a loopback address.
            port: Port to bind; 0 picks a free port.
            realtime: Fixed date used for ``realtime_start``/``realtime_end``
                so output never depends on today's date.

        Raises:
            ValueError: If ``host`` is not loopback or ``realtime`` is not YYYY-MM-DD.
        """
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"FredServer only binds to loopback, not {host!r}")
        dt.date.fromisoformat(realtime)
        self._api_key = api_key
        self._host = host
        self._requested_port = port
        self._realtime = realtime
        self._lock = threading.Lock()
        self._series: dict[str, _StoredSeries] = {}
        self._faults: list[tuple[str | None, Fault]] = []
        self._log: list[Request] = []
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._stopped = False
        for series_id, values in (series or {}).items():
            self.set_series(series_id, values)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FredServer:
        """Bind and serve in a daemon thread.

        Returns:
            self, so ``server = FredServer(...).start()`` works.

        Raises:
            RuntimeError: If the server was already stopped (servers are single-use).
        """
        with self._lock:
            if self._stopped:
                raise RuntimeError("FredServer cannot be restarted after stop(); create a new one")
            if self._httpd is not None:
                return self
            httpd = _HTTPServer((self._host, self._requested_port), _Handler)
            httpd.fred = self
            self._httpd = httpd
            self._port = int(httpd.server_address[1])
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FredServer:{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Idempotent; safe before ``start``.

        Any handler sleeping in a ``"timeout"`` fault is woken and drops its
        connection without answering.
        """
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = None
            self._thread = None
            self._stopped = True
        self._stop_event.set()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (still available after ``stop``).

        Raises:
            RuntimeError: If the server has never been started.
        """
        if self._port is None:
            raise RuntimeError("FredServer is not started; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """The FRED root URL to give ``fredapi`` as ``root_url``, e.g. ``http://127.0.0.1:PORT/fred``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/fred"

    @property
    def api_key(self) -> str:
        """The API key this server accepts."""
        return self._api_key

    def environment(self) -> dict[str, str]:
        """The variables that point the pipeline at this server: FRED_API_KEY and FRED_API_URL."""
        return {"FRED_API_KEY": self.api_key, "FRED_API_URL": self.url}

    # ---------------------------------------------------------------------- data
    def set_series(self, series_id: str, values: pd.Series, *, info: Mapping[str, str] | None = None) -> None:
        """Add or replace a series.

        Args:
            series_id: FRED series id, e.g. ``"SP500"``.
            values: Series indexed by date (DatetimeIndex or date-like); float
                values; NaN is served as ".".
            info: Optional overrides for the ``/series`` metadata attributes
                (``title``, ``units``, ``frequency`` ...). Defaults are derived
                from the data.

        Raises:
            TypeError: If ``values`` is not a Series.
            ValueError: If dates are missing/duplicated or values are infinite.
        """
        if not series_id:
            raise ValueError("series_id must be a non-empty string")
        stored = _prepare_series(series_id, values, info, self._realtime)
        with self._lock:
            self._series[series_id] = stored

    def series_ids(self) -> list[str]:
        """Return the ids of the series currently served, sorted."""
        with self._lock:
            return sorted(self._series)

    # -------------------------------------------------------------------- faults
    def inject(self, *faults: Fault | str | int, series_id: str | None = None) -> None:
        """Queue faults, consumed one per matching request, in order.

        Args:
            *faults: Each an int HTTP status (400, 404, 423, 429, 500, 502, 503),
                ``"timeout"``, ``"badxml"``, ``"reset"`` or a ``Fault``.
            series_id: Only requests for this series consume these faults;
                ``None`` means any request (any path).

        Raises:
            ValueError: If a fault is not recognised (nothing is queued then).
        """
        parsed = [Fault.coerce(f) for f in faults]
        with self._lock:
            self._faults.extend((series_id, f) for f in parsed)

    def pending_faults(self) -> list[tuple[str | None, Fault]]:
        """Return the faults not yet consumed, as ``(series_id, fault)`` pairs."""
        with self._lock:
            return list(self._faults)

    def requests(self) -> list[Request]:
        """Return a copy of the request log (oldest first); API keys are redacted."""
        with self._lock:
            return list(self._log)

    def clear(self) -> None:
        """Drop all queued faults and the request log."""
        with self._lock:
            self._faults.clear()
            self._log.clear()

    # ----------------------------------------------------------------- CSV input
    @classmethod
    def from_csv_folder(cls, folder: str | Path, **kw: Any) -> FredServer:
        """Build a server from FRED download CSVs in ``folder`` (not recursive).

        Each ``*.csv`` has a header ``observation_date,<SERIES_ID>[,<ID2>...]``
        (older downloads use ``DATE``); an empty value (or ".") is missing. The
        series id is the column name.

        Args:
            folder: Directory containing the CSV files.
            **kw: Passed to the constructor (``api_key``, ``port`` ...).

        Returns:
            A new, not yet started, FredServer.

        Raises:
            FileNotFoundError: If ``folder`` is not a directory.
            ValueError: If there are no CSVs, a header is malformed, or a series
                id appears twice.
        """
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"not a directory: {root}")
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
        if not files:
            raise ValueError(f"no .csv files in {root}")
        series: dict[str, pd.Series] = {}
        for path in files:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            if frame.shape[1] < 2 or frame.columns[0] not in ("observation_date", "DATE"):
                raise ValueError(
                    f"{path}: expected a FRED CSV header 'observation_date,<SERIES_ID>', got {list(frame.columns)}"
                )
            dates = pd.to_datetime(frame.iloc[:, 0], format="%Y-%m-%d")
            for column in frame.columns[1:]:
                series_id = str(column).strip()
                if series_id in series:
                    raise ValueError(f"{path}: series {series_id!r} already read from another file")
                raw = frame[column].str.strip().replace({"": None, ".": None})
                values = pd.to_numeric(raw, errors="raise").to_numpy(dtype="float64", na_value=math.nan)
                series[series_id] = pd.Series(values, index=pd.DatetimeIndex(dates), name=series_id)
        return cls(series, **kw)

    # ---------------------------------------------------------------- internals
    def _take_fault(self, series_id: str | None) -> Fault | None:
        with self._lock:
            for i, (target, fault) in enumerate(self._faults):
                if target is None or target == series_id:
                    del self._faults[i]
                    return fault
        return None

    def _record(self, path: str, series_id: str | None, params: dict[str, str], status: int) -> None:
        redacted = {k: ("***" if k == "api_key" else v) for k, v in params.items()}
        with self._lock:
            self._log.append(
                Request(path=path, series_id=series_id, params=redacted, status=status, at=time.monotonic())
            )

    def _handle(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        series_id = params.get("series_id")
        fault = self._take_fault(series_id)

        if fault is not None and fault.kind == "reset":
            self._record(path, series_id, params, STATUS_RESET)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return

        if fault is not None and fault.kind == "status":
            assert fault.status is not None
            status = fault.status
            if status in HTML_STATUSES:
                response = _Response(status, _html_error_body(status, STATUS_MESSAGES[status]), "text/html")
            else:
                response = _Response(status, _error_body(status, STATUS_MESSAGES[status]))
        elif fault is not None and fault.kind == "badxml":
            response = _Response(200, BAD_XML_BODY, "text/html")
        else:
            response = self._route(path, params)

        # Log before answering so a client that has its response always sees its request logged.
        self._record(path, series_id, params, response.status)

        if fault is not None and fault.kind == "timeout":
            deadline = time.monotonic() + fault.delay
            while (remaining := deadline - time.monotonic()) > 0:
                if self._stop_event.wait(min(_SLEEP_STEP, remaining)):
                    handler.close_connection = True
                    return  # server stopping: drop the connection unanswered

        try:
            self._answer(handler, response, trickle=fault if fault is not None and fault.kind == "trickle" else None)
        except (ConnectionError, TimeoutError):
            handler.close_connection = True  # client gave up (e.g. its own timeout)

    def _answer(self, handler: _Handler, response: _Response, *, trickle: Fault | None) -> None:
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        if trickle is None:
            handler.wfile.write(response.body)
            return
        for start in range(0, len(response.body), TRICKLE_BYTES):
            handler.wfile.write(response.body[start : start + TRICKLE_BYTES])
            handler.wfile.flush()
            if self._stop_event.wait(trickle.delay):
                handler.close_connection = True  # server stopping
                return

    def _route(self, path: str, params: dict[str, str]) -> _Response:
        path = path.rstrip("/")
        if path not in ("/fred/series/observations", "/fred/series"):
            return _Response(404, _error_body(404, MSG_NOT_FOUND))
        key = params.get("api_key", "")
        if not key:
            return _Response(400, _error_body(400, MSG_KEY_NOT_SET))
        if key != self._api_key:
            return _Response(400, _error_body(400, MSG_KEY_NOT_REGISTERED))
        series_id = params.get("series_id", "")
        if not series_id:
            return _Response(400, _error_body(400, MSG_SERIES_ID_NOT_SET))
        with self._lock:
            stored = self._series.get(series_id)
        if stored is None:
            return _Response(400, _error_body(400, MSG_SERIES_NOT_FOUND))
        if path == "/fred/series":
            return _Response(200, self._series_xml(stored))
        try:
            start = _parse_date_param("observation_start", params.get("observation_start") or _EARLIEST)
            end = _parse_date_param("observation_end", params.get("observation_end") or _LATEST)
        except ValueError as exc:
            return _Response(400, _error_body(400, str(exc)))
        if start > end:
            message = (
                f"Bad Request.  The value for variable observation_start ({start}) "
                f"is after variable observation_end ({end})."
            )
            return _Response(400, _error_body(400, message))
        return _Response(200, self._observations_xml(stored, start, end))

    def _observations_xml(self, stored: _StoredSeries, start: str, end: str) -> bytes:
        rt = self._realtime
        rows = [
            f'<observation realtime_start="{rt}" realtime_end="{rt}" date="{d}" value="{v}"/>'
            for d, v in zip(stored.dates, stored.values, strict=False)
            if start <= d <= end
        ]
        head = _attrs(
            [
                ("realtime_start", rt),
                ("realtime_end", rt),
                ("observation_start", start),
                ("observation_end", end),
                ("units", "lin"),
                ("output_type", "1"),
                ("file_type", "xml"),
                ("order_by", "observation_date"),
                ("sort_order", "asc"),
                ("count", str(len(rows))),
                ("offset", "0"),
                ("limit", "100000"),
            ]
        )
        return (_XML_DECL + f"<observations {head}>\n" + "\n".join(rows) + "\n</observations>\n").encode("utf-8")

    def _series_xml(self, stored: _StoredSeries) -> bytes:
        rt = self._realtime
        head = _attrs([("realtime_start", rt), ("realtime_end", rt)])
        body = _attrs(list(stored.info.items()))
        return (_XML_DECL + f"<seriess {head}>\n<series {body}/>\n</seriess>\n").encode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a folder of FRED CSVs on loopback until interrupted (Ctrl-C or SIGTERM).

    Args:
        argv: Command-line arguments (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.fred_server",
        description="Serve FRED download CSVs through a local FRED-compatible API on 127.0.0.1.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of FRED CSVs (observation_date,<ID>)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free port)")
    parser.add_argument("--api-key", default="test-key", help="API key to accept (default: test-key)")
    args = parser.parse_args(argv)

    try:
        server = FredServer.from_csv_folder(args.data, api_key=args.api_key, port=args.port)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM stop it however it was started: a shell passes a background job SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler of its own.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    server.start()
    try:
        ids = server.series_ids()
        print(f"Serving {len(ids)} series ({', '.join(ids)}) at {server.url}")
        print("Set these environment variables to use it:")
        print(f"FRED_API_URL={server.url}")
        print(f"FRED_API_KEY={server.api_key}")
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

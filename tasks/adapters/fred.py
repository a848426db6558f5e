"""FRED adapter: the only code that talks to FRED (through fredapi) or to the embedded demo source.

Every request first takes a slot of the FRED budget: the Prefect global concurrency limit named
by settings.fetch.rate_limit_name (a rate limit with a slot decay, shared by every process,
container and Dask worker on the same Prefect server), or, when the server has none, a token
bucket of this process.

Where the data comes from is decided once per run (`load_source`): a named `FredCredentials` block;
else the environment variables `FRED_API_KEY` / `FRED_API_URL`; else the offline demo source,
loudly labelled. Failures are classified here: transient ones (timeouts, connection errors, HTTP
5xx and 429, truncated bodies) raise `FredTransientError`, which the fetch stage retries; permanent
ones (bad key, unknown series) raise `FredRequestError` with FRED's own message. The API key is
removed from every message before it can reach a log or an error.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar, Literal, cast
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

import pandas as pd
from fredapi import Fred
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from pydantic import SecretStr

from blocks.fred import FRED_API_URL, FredCredentials
from blocks.redaction import redact
from tasks.core.demo import generate_demo_series
from tasks.core.errors import FredConfigurationError, FredError, FredRequestError, FredTransientError
from tasks.core.settings import FetchSettings

DEMO_LABEL = "DEMO DATA (synthetic, no FRED key configured)"


@dataclass(frozen=True)
class FredSource:
    """Fetch from the FRED API (or a FRED-compatible mirror) with this key."""

    api_key: SecretStr
    api_url: str
    origin: str  # where the key came from, for the log: "block 'fred'" or "environment"
    kind: Literal["fred"] = "fred"

    def describe(self) -> str:
        """One line for the log, without the key (or a password in the URL of a proxy or mirror)."""
        return f"FRED at {redact(self.api_url)} (credentials from {self.origin})"


@dataclass(frozen=True)
class DemoSource:
    """Generate the offline demo series (see tasks.core.demo)."""

    seed: int = 0
    kind: Literal["demo"] = "demo"

    def describe(self) -> str:
        """One line for the log."""
        return DEMO_LABEL


Source = FredSource | DemoSource


def resolve_source(block: FredCredentials | None, env: Mapping[str, str], *, block_name: str | None = None) -> Source:
    """Choose the data source: the block if given, else FRED_API_KEY/FRED_API_URL, else the demo.

    Args:
        block: A loaded FredCredentials block, or None.
        env: Environment variables (injected so the choice is testable).
        block_name: Name the block was loaded under, for the log.

    Returns:
        A FredSource or a DemoSource.

    Raises:
        FredConfigurationError: FRED_API_URL is set without FRED_API_KEY, or a value is malformed.
    """
    if block is not None:
        return FredSource(block.api_key, block.api_url, origin=f"block {block_name!r}")
    key = env.get("FRED_API_KEY", "").strip()
    url = env.get("FRED_API_URL", "").strip()
    if not key:
        if url:
            raise FredConfigurationError(
                "FRED_API_URL is set but FRED_API_KEY is not: set FRED_API_KEY to your FRED API key, "
                "or unset FRED_API_URL to run on the offline demo data."
            )
        return DemoSource()
    try:
        creds = FredCredentials(api_key=SecretStr(key), api_url=url or FRED_API_URL)
    except ValueError as exc:
        raise FredConfigurationError(f"FRED_API_URL / FRED_API_KEY are not usable: {redact(str(exc), key)}") from None
    return FredSource(creds.api_key, creds.api_url, origin="environment (FRED_API_KEY)")


def load_source(block_name: str | None) -> Source:
    """Load the named FredCredentials block (which must exist) or fall back to the environment.

    Raises:
        FredConfigurationError: `block_name` was given but no such block is saved.
    """
    if block_name is None:
        return resolve_source(None, os.environ)
    try:
        block = cast(FredCredentials, FredCredentials.load(block_name))  # sync here; typed as either
    except ValueError as exc:
        raise FredConfigurationError(
            f"No FredCredentials block named {block_name!r} could be loaded ({exc}). Create it with "
            "`python -m blocks setup` (reads FRED_API_KEY) or in the Prefect UI under Blocks, or "
            "run without fred_block to use FRED_API_KEY from the environment."
        ) from None
    return resolve_source(block, os.environ, block_name=block_name)


# ---------------------------------------------------------------- FRED client


class _RateLimiter:
    """A token bucket per API root, shared by the threads of a process (the fallback budget).

    Up to `burst` requests go out at once; after that they are spaced to `requests_per_minute`.
    Each caller reserves its slot under the lock and sleeps outside it.
    """

    _lock = threading.Lock()
    _state: ClassVar[dict[str, tuple[float, float]]] = {}  # key -> (tokens, time they were counted)

    @classmethod
    def wait(cls, key: str, requests_per_minute: float, burst: int) -> None:
        rate = requests_per_minute / 60.0
        with cls._lock:
            now = time.monotonic()
            tokens, counted = cls._state.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - counted) * rate) - 1.0
            cls._state[key] = (tokens, now)
        if tokens < 0:
            time.sleep(-tokens / rate)


@dataclass(frozen=True)
class RequestBudget:
    """Where this process takes its FRED request slots from.

    Attributes:
        global_limit: Name of the Prefect global concurrency limit shared by every process, or None
            when the per-process token bucket applies.
        description: One line for the log.
    """

    global_limit: str | None
    description: str


_budgets: dict[tuple[str, str], RequestBudget] = {}
_budgets_lock = threading.Lock()


def request_budget(settings: FetchSettings) -> RequestBudget:
    """The FRED budget of this process.

    The global limit `settings.rate_limit_name` when the Prefect API has one with a slot decay
    (looked up once per process and API), else the local token bucket.
    """
    local = RequestBudget(
        None,
        f"{settings.requests_per_minute:g} requests/minute, {settings.burst} at once, in this process only",
    )
    name = settings.rate_limit_name
    if not name:
        return local
    api = get_current_settings().api.url or "ephemeral"
    with _budgets_lock:
        if (api, name) in _budgets:
            return _budgets[(api, name)]
        budget = _look_up_global_limit(name) or RequestBudget(
            None,
            f"no global concurrency limit {name!r} with a slot decay on the Prefect server (create it with "
            f"`python -m blocks setup`): {local.description}",
        )
        _budgets[(api, name)] = budget
        return budget


def _look_up_global_limit(name: str) -> RequestBudget | None:
    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        return None
    except Exception:  # noqa: BLE001 - no reachable API: the local budget still protects FRED
        return None
    if not limit.active or not limit.slot_decay_per_second:
        return None
    per_minute = 60 * limit.slot_decay_per_second
    return RequestBudget(
        name,
        f"global concurrency limit {name!r}: {per_minute:g} requests/minute, {limit.limit} at once, "
        "shared by every process",
    )


def take_request_slot(settings: FetchSettings, key: str) -> None:
    """Wait until the FRED budget allows one more request."""
    budget = request_budget(settings)
    if budget.global_limit is None:
        _RateLimiter.wait(key, settings.requests_per_minute, settings.burst)
        return
    rate_limit(budget.global_limit, occupy=1, strict=True)


class _FredClient(Fred):  # type: ignore[misc]  # fredapi ships no type information
    """fredapi's client with a request timeout, a rate limit and HTTP status kept on errors.

    fredapi builds the URLs and parses the XML; only its private fetch helper is replaced,
    because it calls urlopen without a timeout and folds the HTTP status into a bare ValueError,
    and its date parser, which calls pandas once per observation (0.2 s for 1,400 of them).
    """

    def __init__(self, source: FredSource, settings: FetchSettings, series_id: str) -> None:
        super().__init__(api_key=source.api_key.get_secret_value())
        self.root_url = source.api_url
        self._settings = settings
        self._series_id = series_id

    def _fail(self, cls: type[FredError], message: str, status: int | None = None) -> FredError:
        return cls(self._series_id, redact(message, self.api_key), status=status)

    def _parse(self, date_str: str, format: str = "%Y-%m-%d") -> datetime:
        """The date parser of fredapi without pandas: the same naive datetime, the same ValueError."""
        return datetime.strptime(date_str, format)

    # fredapi's name-mangled private helper; no public hook exists for a timeout or the HTTP
    # status (tests/fred/test_fetch.py pins the behaviour: timeouts, 5xx, 429, bad XML, bad key).
    def _Fred__fetch_data(self, url: str) -> ET.Element:  # noqa: N802 - overrides Fred.__fetch_data
        url += "&api_key=" + self.api_key
        take_request_slot(self._settings, self.root_url)
        sid = self._series_id
        try:
            # The root is an http(s) URL: FredCredentials validates api_url.
            with urlopen(url, timeout=self._settings.timeout_seconds) as response:  # noqa: S310
                body = self._read_within_the_time_limit(response)
        except HTTPError as exc:
            raise self._http_error(exc) from None
        except (TimeoutError, URLError, ConnectionError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            limit = (
                f" (the time limit is fetch.timeout_seconds = {self._settings.timeout_seconds:g} s)"
                if isinstance(reason, TimeoutError)
                else ""
            )
            raise self._fail(
                FredTransientError,
                f"{sid}: could not reach FRED at {self.root_url}: {type(reason).__name__}: {reason}{limit}.",
            ) from None
        try:
            return ET.fromstring(body)  # noqa: S314 - FRED's XML, parsed as fredapi itself does
        except ET.ParseError as exc:
            raise self._fail(
                FredTransientError,
                f"{sid}: FRED answered with a body that is not XML ({exc}); a proxy error page or a "
                f"truncated response. First bytes: {body[:80]!r}.",
            ) from None

    def _read_within_the_time_limit(self, response: http.client.HTTPResponse) -> bytes:
        """The whole body, or TimeoutError once `timeout_seconds` have passed since the answer began.

        urlopen's timeout bounds each socket operation only: a server that sends a few bytes at a
        time would keep one request going for as long as it likes.
        """
        limit = self._settings.timeout_seconds
        deadline = time.monotonic() + limit
        pieces = []
        while piece := response.read1(65536):
            pieces.append(piece)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the answer was still arriving after {limit:g} s")
        return b"".join(pieces)

    def _http_error(self, exc: HTTPError) -> FredError:
        sid = self._series_id
        fred_message: str | None = None
        try:
            body = exc.read()
            # FRED's error body: <error code=".." message=".."/>
            fred_message = ET.fromstring(body).get("message")  # noqa: S314
            message = fred_message or body[:200].decode(errors="replace")
        except (ET.ParseError, OSError):
            message = exc.reason if isinstance(exc.reason, str) else "no error message"
        message = message if message.rstrip().endswith(".") else f"{message.rstrip()}."  # a hint may follow
        error: type[FredError] = FredRequestError
        hint = ""
        if exc.code == 429:
            error = FredTransientError
            hint = (
                " FRED allows about 120 requests a minute per API key: lower fetch.requests_per_minute, or look "
                "for another job using the same key."
            )
        elif exc.code >= 500:
            error = FredTransientError
            hint = " The failure is on FRED's side; a later run usually succeeds."
        elif "api_key" in message:
            hint = " Check the API key in the FredCredentials block or FRED_API_KEY."
        elif "series does not exist" in message:
            hint = " Check the series id in settings.series (FRED ids are case-sensitive)."
        elif exc.code == 404 or fred_message is None:  # FRED answers 400 for a bad key or series id
            hint = (
                f" {self.root_url} did not take the request as FRED's API does: check the API URL in the "
                f"FredCredentials block or FRED_API_URL (FRED's own is {FRED_API_URL})."
            )
        return self._fail(error, f"{sid}: FRED HTTP {exc.code}: {message}{hint}", exc.code)


def fetch_fred_series(
    source: FredSource, series_id: str, start: date, end: date, *, settings: FetchSettings
) -> pd.Series:
    """Fetch one series' observations from `start` to `end` through fredapi.

    Returns:
        Float series indexed by date ("." from FRED becomes NaN).

    Raises:
        FredTransientError: worth retrying (timeout, connection, HTTP 5xx/429, body not XML).
        FredRequestError: not worth retrying (bad key, unknown series, unparsable values).
    """
    client = _FredClient(source, settings, series_id)
    try:
        values = client.get_series(series_id, observation_start=start, observation_end=end)
    except FredError:
        raise
    except ValueError as exc:  # raised by fredapi's own parsing, e.g. float("n/a")
        raise FredRequestError(
            series_id, f"{series_id}: FRED data could not be parsed: {redact(str(exc), client.api_key)}"
        ) from None
    numeric = pd.Series(pd.to_numeric(values, errors="coerce"), dtype="float64")
    numeric.index = pd.DatetimeIndex(numeric.index, name="date").as_unit("ns")
    numeric.name = series_id
    return numeric


def fetch_series(source: Source, series_id: str, start: date, end: date, *, settings: FetchSettings) -> pd.Series:
    """Observations of one series between `start` and `end` (inclusive) from `source`."""
    if isinstance(source, DemoSource):
        values = generate_demo_series((series_id,), end, seed=source.seed)[series_id]
        return values.loc[pd.Timestamp(start) :]
    return fetch_fred_series(source, series_id, start, end, settings=settings)

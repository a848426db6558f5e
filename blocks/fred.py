"""`FredCredentials`: the Prefect block holding the FRED API key and the API root URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, SecretStr, field_validator

from blocks.redaction import redact

FRED_API_URL = "https://api.stlouisfed.org/fred"

# The FRED request budget shared by every process: a Prefect global concurrency limit with a slot
# decay, created by `python -m blocks setup` and named by the flows' settings.fetch.rate_limit_name.
# FRED allows about 120 requests per minute per key; these defaults leave a margin.
FRED_RATE_LIMIT = "fred-api"
FRED_REQUESTS_PER_MINUTE = 100.0
FRED_BURST = 5


class FredCredentials(Block):
    """Credentials of the FRED API (Federal Reserve Economic Data, St. Louis Fed).

    Attributes:
        api_key: The 32-character FRED API key.
        api_url: Root of the FRED API; change it to go through a mirror or a proxy.

    Example:
        ```python
        from blocks.fred import FredCredentials
        FredCredentials(api_key="...").save("fred", overwrite=True)
        ```
    """

    _block_type_name = "FRED Credentials"
    _block_type_slug = "fred-credentials"
    _logo_url = HttpUrl("https://fred.stlouisfed.org/images/fred-logo-2x.png")
    _documentation_url = HttpUrl("https://fred.stlouisfed.org/docs/api/api_key.html")
    _description = "API key and root URL of the FRED API, used by the market-forecast flows."

    api_key: SecretStr = Field(
        default=...,
        description="FRED API key (free at https://fred.stlouisfed.org/docs/api/api_key.html).",
    )
    api_url: str = Field(
        default=FRED_API_URL,
        description="Root URL of the FRED API, without a trailing slash; point it at a mirror or proxy.",
    )

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key.strip():
            raise ValueError("api_key is empty: paste the FRED API key from your FRED account page")
        if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
            # Never the key itself: only what is wrong with it.
            raise ValueError(
                "api_key holds a space, a line break or a character outside ASCII (quotes pasted around it?); "
                "a FRED API key is 32 lower-case letters and digits: paste it again from your FRED account page"
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_url must be an http(s) URL such as {FRED_API_URL!r}, got {redact(value)!r}")
        return value.rstrip("/")

"""The one way the project hides secrets in text: error messages, log lines, alert e-mails.

Pure and light (standard library only): the FRED and storage adapters, the failure hook, the
`EmailAlerts` block and the setup command all call it, so a secret is hidden the same way
wherever it could surface.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MASK = "***"
# Shorter "secrets" are not replaced: masking every "ab" would shred a message.
MIN_SECRET_LENGTH = 4

# key=value secrets that may sit in an URL or a connection string inside a message.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(api_key=)[^&\s'\"<>]+"),
    re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"),
    re.compile(r"(?i)([?&]sig=)[^&;\s'\"]+"),
    re.compile(r"(?i)(password=)[^&;\s'\"]+"),
    re.compile(r"(?i)(://[^:/@\s]+:)[^@/\s]+(?=@)"),  # scheme://user:password@host
)

# Environment variables of the system this project replaces that hold secrets.
SECRET_VARIABLES = ("FRED_API_KEY", "EMAIL_PASS", "AZURE_STORAGE_CONNECTION_STRING")


def redact(text: str, *secrets: str | None) -> str:
    """Hide secrets in `text`: each given value, and key=value secrets of URLs and connection strings.

    Args:
        text: Any message that might contain a secret (an URL with api_key=, a server's error
            body, a connection string).
        *secrets: The secret values to hide; None and values shorter than MIN_SECRET_LENGTH
            are ignored. Longer values are replaced first, so a secret containing another is
            hidden whole.

    Returns:
        The text with the secrets replaced by '***'.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def environment_secrets(env: Mapping[str, str], *extra: str | None) -> list[str]:
    """The secret values a message must not contain: those of the environment, plus `extra`.

    Args:
        env: The environment (FRED_API_KEY, EMAIL_PASS, AZURE_STORAGE_CONNECTION_STRING are read).
        *extra: Secrets known otherwise (the SMTP password of the alert block, a FRED block's key).

    Returns:
        The non-empty secret values, including the account key or SAS token of a connection string.
    """
    secrets: list[str | None] = [env.get(name) for name in SECRET_VARIABLES]
    secrets.extend(extra)
    connection = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        from blocks.azure import connection_string_secrets

        secrets.extend(connection_string_secrets(connection))
    return [s for s in secrets if s]

"""Azure Storage connection strings, read through the Azure SDK's public API (one parser for all).

`python -m blocks setup` validates AZURE_STORAGE_CONNECTION_STRING with it, the run store derives
the public URL of a published folder from it, and the redaction finds the account key or SAS token
in it. Messages never quote a value of the string.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class BlobAccount:
    """What a connection string says about the Blob service it points at.

    Attributes:
        account_name: The storage account (devstoreaccount1 for Azurite).
        endpoint: The Blob service URL, without credentials or query, ending in '/'.
        secrets: The account key and/or SAS token it carries.
    """

    account_name: str
    endpoint: str
    secrets: tuple[str, ...]


def parse_connection_string(value: str) -> BlobAccount:
    """Parse an Azure Storage connection string with `BlobServiceClient.from_connection_string`.

    Raises:
        ValueError: it is malformed, or it carries neither an account key nor a shared access
            signature (an anonymous client cannot write). The message never quotes the string.
    """
    from azure.storage.blob import BlobServiceClient

    try:
        client = BlobServiceClient.from_connection_string(value.strip())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(
            "it is not a connection string the Azure SDK can read (key=value parts separated by ';', "
            "with AccountName and AccountKey, or BlobEndpoint and SharedAccessSignature)"
        ) from None
    secrets: list[str] = []
    account_key = getattr(client.credential, "account_key", None)
    if account_key:
        secrets.append(str(account_key))
    parts = urlsplit(client.url)
    if parts.query:
        secrets.append(parts.query)
    if not secrets:
        raise ValueError(
            "it needs AccountName and AccountKey (or BlobEndpoint and SharedAccessSignature): "
            "without a key or a signature the client cannot write"
        )
    endpoint = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))
    return BlobAccount(account_name=str(client.account_name or ""), endpoint=endpoint, secrets=tuple(secrets))


def connection_string_secrets(value: str) -> list[str]:
    """The account key and SAS token inside a connection string; none if it cannot be parsed."""
    try:
        return list(parse_connection_string(value).secrets)
    except ValueError:
        return []

"""`python -m blocks setup`: register the block types and create or update the block documents
from the environment variables of the system this project replaces.

| variables                                                  | block (type/name)                                   |
|------------------------------------------------------------|-----------------------------------------------------|
| FRED_API_KEY (+ FRED_API_URL)                              | fred-credentials/fred                               |
| EMAIL_HOST, EMAIL_PORT, EMAIL_USER, EMAIL_PASS             | email-server-credentials/market-forecast-smtp       |
|   (+ EMAIL_SMTP_TYPE for a non-standard port, EMAIL_FROM)  |                                                     |
| NOTIFICATION_EMAIL (needs the SMTP block)                  | email-alerts/market-forecast-alerts                 |
| AZURE_STORAGE_CONNECTION_STRING                            | azure-blob-storage-credentials/market-forecast-azure|
| AZURE_CONTAINER_NAME (needs the connection string)         | azure-blob-storage-container/market-forecast        |

Idempotent: a block whose values did not change is left alone ("unchanged"), a changed one is
updated in place under the same name, nothing is ever duplicated. Every variable is validated
before anything is saved; a missing or malformed value gets a message naming the variable, and
no secret value is ever printed. Blocks whose variables are absent are skipped, with the reason.
`--create-container` also creates the Azure container when it does not exist.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TextIO

from prefect.blocks.core import Block
from pydantic import SecretStr, ValidationError

from blocks.azure import BlobAccount, parse_connection_string
from blocks.fred import FRED_API_URL, FredCredentials
from blocks.notifications import ALERTS_BLOCK, EmailAlerts, parse_recipients
from blocks.redaction import environment_secrets, redact

FRED_BLOCK = "fred"
SMTP_BLOCK = "market-forecast-smtp"
AZURE_CREDENTIALS_BLOCK = "market-forecast-azure"
STORAGE_BLOCK = "market-forecast"  # the name prefect.yaml and the flows' docstrings use

VARIABLES = (
    "FRED_API_KEY",
    "EMAIL_USER",
    "EMAIL_PASS",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "NOTIFICATION_EMAIL",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CONTAINER_NAME",
)
OPTIONAL_VARIABLES = ("FRED_API_URL", "EMAIL_SMTP_TYPE", "EMAIL_FROM")

_FRED_KEY = re.compile(r"^[a-z0-9]{32}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_PORT_TYPES = {465: "SSL", 587: "STARTTLS", 25: "STARTTLS"}


class SetupError(Exception):
    """The environment cannot be turned into blocks; the message names every variable to fix."""


@dataclass
class PlannedBlock:
    """One block document to create or update."""

    slug: str
    name: str
    block: Block
    summary: str  # what it holds, without any secret
    children: dict[str, str] = field(default_factory=dict)  # field -> name of a planned block

    @property
    def reference(self) -> str:
        return f"{self.slug}/{self.name}"


@dataclass
class Plan:
    """What `setup` will do: blocks to save, blocks skipped (with why), problems found."""

    blocks: list[PlannedBlock] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value and value.strip() else None


def _first_error(exc: ValidationError) -> str:
    return "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())


def _plan_fred(env: Mapping[str, str], plan: Plan) -> None:
    key = _get(env, "FRED_API_KEY")
    if key is None:
        plan.skipped.append((f"fred-credentials/{FRED_BLOCK}", "FRED_API_KEY is not set"))
        return
    if not _FRED_KEY.match(key):
        plan.errors.append(
            f"FRED_API_KEY is malformed: a FRED API key is 32 lower-case letters and digits, the value given "
            f"has {len(key)} character(s){' and other characters' if not key.isalnum() or key != key.lower() else ''}. "
            "Copy it from https://fredaccount.stlouisfed.org/apikeys."
        )
        return
    url = _get(env, "FRED_API_URL") or FRED_API_URL
    try:
        block = FredCredentials(api_key=SecretStr(key), api_url=url)
    except ValidationError as exc:
        plan.errors.append(f"FRED_API_URL is malformed: {_first_error(exc)}")
        return
    plan.blocks.append(
        PlannedBlock("fred-credentials", FRED_BLOCK, block, f"FRED API key from FRED_API_KEY, api_url {block.api_url}")
    )


def _plan_email(env: Mapping[str, str], plan: Plan) -> bool:
    """Plan the SMTP block; True when it will exist."""
    from prefect_email import EmailServerCredentials

    host = _get(env, "EMAIL_HOST")
    if host is None:
        used = [v for v in ("EMAIL_PORT", "EMAIL_USER", "EMAIL_PASS") if _get(env, v)]
        why = "EMAIL_HOST is not set" + (f" (ignoring {', '.join(used)})" if used else "")
        plan.skipped.append((f"email-server-credentials/{SMTP_BLOCK}", why))
        return False
    ok = True
    if not _HOST.match(host):
        plan.errors.append(
            f"EMAIL_HOST={host!r} is malformed: give the SMTP server's host name only, such as "
            "smtp.gmail.com (no scheme, no port, no spaces); the port goes in EMAIL_PORT."
        )
        ok = False
    port: int | None = None
    raw_port = _get(env, "EMAIL_PORT")
    if raw_port is not None:
        if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
            plan.errors.append(f"EMAIL_PORT={raw_port!r} is malformed: give a port number from 1 to 65535, such as 465 or 587.")
            ok = False
        else:
            port = int(raw_port)
    smtp_type = _get(env, "EMAIL_SMTP_TYPE")
    if smtp_type is not None:
        smtp_type = smtp_type.upper()
        if smtp_type not in ("SSL", "STARTTLS", "INSECURE"):
            plan.errors.append(f"EMAIL_SMTP_TYPE={smtp_type!r} is malformed: use SSL, STARTTLS or INSECURE.")
            ok = False
    elif port is None:
        smtp_type = "SSL"
    elif port in _PORT_TYPES:
        smtp_type = _PORT_TYPES[port]
    elif ok:
        plan.errors.append(
            f"EMAIL_PORT={port} is not a standard SMTP port (465 = SSL, 587 = STARTTLS), so the connection "
            "type cannot be guessed: set EMAIL_SMTP_TYPE to SSL, STARTTLS or INSECURE (INSECURE only for a "
            "relay on a trusted network)."
        )
        ok = False
    user = _get(env, "EMAIL_USER")
    password = env.get("EMAIL_PASS") or None  # a password may legitimately have edge spaces
    if user and not password:
        plan.errors.append("EMAIL_PASS is not set but EMAIL_USER is: set both (SMTP login) or neither (no login).")
        ok = False
    if password and not user:
        plan.errors.append("EMAIL_USER is not set but EMAIL_PASS is: set both (SMTP login) or neither (no login).")
        ok = False
    if not ok:
        return False
    block = EmailServerCredentials(
        smtp_server=host,
        smtp_port=port,
        smtp_type=smtp_type,
        username=user,
        password=SecretStr(password or ""),
    )
    login = f"login {user}" if user else "no login"
    where = f"{host}:{port}" if port else host
    if smtp_type == "INSECURE" and user:
        login += " (WARNING: INSECURE sends the password unencrypted)"
    plan.blocks.append(PlannedBlock("email-server-credentials", SMTP_BLOCK, block, f"{where} {smtp_type}, {login}"))
    return True


def _plan_alerts(env: Mapping[str, str], plan: Plan, *, smtp_planned: bool) -> None:
    raw = _get(env, "NOTIFICATION_EMAIL")
    reference = f"email-alerts/{ALERTS_BLOCK}"
    if raw is None:
        plan.skipped.append((reference, "NOTIFICATION_EMAIL is not set"))
        return
    try:
        recipients = parse_recipients(raw)
    except ValueError as exc:
        plan.errors.append(f"NOTIFICATION_EMAIL is malformed: {exc}. Separate several addresses with commas.")
        return
    sender = _get(env, "EMAIL_FROM")
    if not smtp_planned:
        plan.skipped.append((reference, f"it needs the SMTP block email-server-credentials/{SMTP_BLOCK} (see above)"))
        return
    smtp = next(b.block for b in plan.blocks if b.name == SMTP_BLOCK)
    try:
        block = EmailAlerts(email_server_credentials=smtp, recipients=recipients, sender=sender)
    except ValidationError as exc:
        plan.errors.append(f"EMAIL_FROM is malformed: {_first_error(exc)}")
        return
    plan.blocks.append(
        PlannedBlock(
            "email-alerts",
            ALERTS_BLOCK,
            block,
            f"{len(recipients)} recipient(s): {', '.join(recipients)}; from {block.from_address}",
            children={"email_server_credentials": SMTP_BLOCK},
        )
    )


def _plan_azure(env: Mapping[str, str], plan: Plan) -> None:
    from prefect_azure import AzureBlobStorageContainer, AzureBlobStorageCredentials

    connection = _get(env, "AZURE_STORAGE_CONNECTION_STRING")
    container = _get(env, "AZURE_CONTAINER_NAME")
    credentials_ref = f"azure-blob-storage-credentials/{AZURE_CREDENTIALS_BLOCK}"
    container_ref = f"azure-blob-storage-container/{STORAGE_BLOCK}"
    parts: BlobAccount | None = None
    if connection is None:
        plan.skipped.append((credentials_ref, "AZURE_STORAGE_CONNECTION_STRING is not set"))
    else:
        try:
            parts = parse_connection_string(connection)
        except ValueError as exc:
            plan.errors.append(
                f"AZURE_STORAGE_CONNECTION_STRING is malformed: {exc}. Copy it from the Azure portal "
                "(Storage account > Security + networking > Access keys > Connection string)."
            )
    if container is not None and not _CONTAINER.match(container):
        plan.errors.append(
            f"AZURE_CONTAINER_NAME={container!r} is malformed: a container name is 3-63 characters, lower-case "
            "letters, digits and single hyphens, starting and ending with a letter or digit."
        )
        container = None
        if parts is None:
            return
    if parts is None:
        if connection is None:
            why = "AZURE_STORAGE_CONNECTION_STRING is not set" if container else "AZURE_CONTAINER_NAME and AZURE_STORAGE_CONNECTION_STRING are not set"
            plan.skipped.append((container_ref, why))
        return
    account = parts.account_name or "development storage"
    credentials = AzureBlobStorageCredentials(connection_string=SecretStr(connection))
    plan.blocks.append(
        PlannedBlock(
            "azure-blob-storage-credentials",
            AZURE_CREDENTIALS_BLOCK,
            credentials,
            f"connection string of storage account {account}",
        )
    )
    if container is None:
        if _get(env, "AZURE_CONTAINER_NAME") is None:
            plan.skipped.append((container_ref, "AZURE_CONTAINER_NAME is not set"))
        return
    plan.blocks.append(
        PlannedBlock(
            "azure-blob-storage-container",
            STORAGE_BLOCK,
            AzureBlobStorageContainer(container_name=container, credentials=credentials),
            f"container {container} in storage account {account}",
            children={"credentials": AZURE_CREDENTIALS_BLOCK},
        )
    )


def plan_blocks(env: Mapping[str, str]) -> Plan:
    """Validate the environment and decide which block documents to save. Pure: nothing is saved.

    Args:
        env: The environment variables (os.environ).

    Returns:
        The plan: the blocks, the skipped blocks with the reason, and every problem found.
    """
    plan = Plan()
    _plan_fred(env, plan)
    smtp_planned = _plan_email(env, plan)
    _plan_alerts(env, plan, smtp_planned=smtp_planned)
    _plan_azure(env, plan)
    return plan


def _comparable(value: Any, *, top: bool = True) -> Any:
    """A block's values in a form that compares equal when nothing changed (secrets revealed).

    A nested block saved under a name compares as that reference, not as its values: the parent
    document points at it, and the nested document is compared on its own.
    """
    if isinstance(value, Block):
        if not top and value._block_document_name and not value._is_anonymous:
            return ("block", value.get_block_type_slug(), value._block_document_name)
        return {name: _comparable(getattr(value, name), top=False) for name in type(value).model_fields}
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_comparable(v, top=False) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v, top=False) for k, v in value.items()}
    return value


def _load_existing(planned: PlannedBlock) -> Block | None:
    try:
        return type(planned.block).load(planned.name)
    except ValueError:  # "Unable to find block document named ..."
        return None


def register_block_types() -> list[str]:
    """Register (or refresh) the block types the project uses; returns their slugs."""
    from prefect_azure import AzureBlobStorageContainer, AzureBlobStorageCredentials
    from prefect_email import EmailServerCredentials

    types: list[type[Block]] = [
        FredCredentials,
        EmailAlerts,
        EmailServerCredentials,
        AzureBlobStorageCredentials,
        AzureBlobStorageContainer,
    ]
    for block_type in types:
        block_type.register_type_and_schema()
    return [t.get_block_type_slug() for t in types]


def save_planned(plan: Plan) -> list[tuple[str, PlannedBlock]]:
    """Create, update or leave each planned block; nested blocks point at the saved documents.

    Returns:
        (action, planned block) per block, action being 'created', 'updated' or 'unchanged'.
    """
    saved: dict[str, Block] = {}
    results: list[tuple[str, PlannedBlock]] = []
    for planned in plan.blocks:
        block = planned.block
        for field_name, child in planned.children.items():
            setattr(block, field_name, saved[child])  # a reference to the saved document, not a copy
        existing = _load_existing(planned)
        if existing is not None and _comparable(existing) == _comparable(block):
            saved[planned.name] = existing
            results.append(("unchanged", planned))
            continue
        block.save(planned.name, overwrite=True)
        saved[planned.name] = block
        results.append(("created" if existing is None else "updated", planned))
    return results


def create_container(connection_string: str, container: str, *, timeout: float = 30) -> str:
    """Create the Azure Blob container if it does not exist; returns 'created' or 'exists'.

    Raises:
        SetupError: the storage account refused or could not be reached (no secret in the message).
    """
    from azure.core.exceptions import AzureError, ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    try:
        with BlobServiceClient.from_connection_string(
            connection_string, retry_total=2, connection_timeout=timeout, read_timeout=timeout
        ) as client:
            try:
                client.create_container(container)
            except ResourceExistsError:
                return "exists"
            return "created"
    except AzureError as exc:
        code = getattr(exc, "error_code", None) or type(exc).__name__
        reason = str(exc).splitlines()[0] if str(exc) else code
        reason = redact(reason, *environment_secrets({"AZURE_STORAGE_CONNECTION_STRING": connection_string}))
        raise SetupError(
            f"Could not create the Azure container {container!r} ({code}: {reason}). Check that the storage "
            "account in AZURE_STORAGE_CONNECTION_STRING exists and that its key allows creating containers, "
            "or create the container in the Azure portal."
        ) from None


def _api_description() -> str:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return url or "none set: a local ephemeral server using the database under PREFECT_HOME"


def run_setup(env: Mapping[str, str], *, create_missing_container: bool = False, out: TextIO = sys.stdout) -> int:
    """The `setup` command: validate, register the block types, save, report.

    Args:
        env: The environment variables to read.
        create_missing_container: Also create the Azure container (`--create-container`).
        out: Where the report goes; it never contains a secret.

    Returns:
        The exit code: 0 done, 1 nothing to do, 2 malformed variables (nothing saved) or an
        Azure error while creating the container.
    """
    plan = plan_blocks(env)
    if plan.errors:
        print("Nothing was saved. Fix these environment variables and run again:", file=out)
        for error in plan.errors:
            print(f"  - {error}", file=out)
        return 2
    if create_missing_container and not any(b.name == STORAGE_BLOCK for b in plan.blocks):
        print(
            "--create-container needs AZURE_STORAGE_CONNECTION_STRING and AZURE_CONTAINER_NAME; nothing was saved.",
            file=out,
        )
        return 2
    print(f"Prefect API: {_api_description()}", file=out)
    print(f"Registered block types: {', '.join(register_block_types())}", file=out)
    if not plan.blocks:
        print(f"No block to save: none of {', '.join(VARIABLES)} is set.", file=out)
        for reference, why in plan.skipped:
            print(f"  skipped    {reference}: {why}", file=out)
        return 1
    for action, planned in save_planned(plan):
        print(f"  {action:<10} {planned.reference}  ({planned.summary})", file=out)
    for reference, why in plan.skipped:
        print(f"  skipped    {reference}: {why}", file=out)
    if create_missing_container:
        storage = next(b for b in plan.blocks if b.name == STORAGE_BLOCK)
        container = storage.block.container_name  # type: ignore[attr-defined]
        try:
            result = create_container(env["AZURE_STORAGE_CONNECTION_STRING"].strip(), container)
        except SetupError as exc:
            print(str(exc), file=out)
            return 2
        print(f"  container  {container}: {'created' if result == 'created' else 'already exists'}", file=out)
    names = {b.name for b in plan.blocks}
    hints = []
    if FRED_BLOCK in names:
        hints.append(f"fred_block={FRED_BLOCK!r}")
    if STORAGE_BLOCK in names:
        hints.append(f"storage_block='azure-blob-storage-container/{STORAGE_BLOCK}'")
    if hints:
        print(f"Flow parameters: {', '.join(hints)}", file=out)
    if ALERTS_BLOCK in names:
        print(f"Failure alerts go through email-alerts/{ALERTS_BLOCK}; next: python -m blocks automations", file=out)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `setup` command's options."""
    parser.add_argument(
        "--create-container",
        action="store_true",
        help="also create the Azure Blob container AZURE_CONTAINER_NAME if it does not exist",
    )

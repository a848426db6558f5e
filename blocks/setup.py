"""`python -m blocks setup`: the block documents from the environment variables of the old system.

It registers the block types and creates or updates the block documents from the environment
variables of the system this project replaces.

| variables                                                  | block (type/name)                                   |
|------------------------------------------------------------|-----------------------------------------------------|
| FRED_API_KEY (+ FRED_API_URL)                              | fred-credentials/fred                               |
| EMAIL_HOST, EMAIL_PORT, EMAIL_USER, EMAIL_PASS             | email-server-credentials/market-forecast-smtp       |
|   (+ EMAIL_SMTP_TYPE for a non-standard port, EMAIL_FROM)  |                                                     |
| NOTIFICATION_EMAIL (needs the SMTP block)                  | email-alerts/market-forecast-alerts                 |
| AZURE_STORAGE_CONNECTION_STRING                            | azure-blob-storage-credentials/market-forecast-azure|
| AZURE_CONTAINER_NAME (needs the connection string)         | azure-blob-storage-container/market-forecast        |

The variables are read by pydantic-settings (the environment, or a ./.env file) and validated by
one pydantic model, `SetupVariables`. Idempotent: a block whose values did not change is left alone
("unchanged"), a changed one is updated in place under the same name, nothing is ever duplicated.
Every variable is validated before anything is saved; a missing or malformed value gets a message
naming the variable, and no secret value is ever printed. Blocks whose variables are absent are
skipped, with the reason. The command also creates (or updates) the global concurrency limit
`fred-api`, the FRED request budget every process shares. `--create-container` also creates the
Azure container when it does not exist.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, TextIO, cast

from prefect.blocks.core import Block
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, EnvSettingsSource, SettingsConfigDict

from blocks.azure import parse_connection_string
from blocks.fred import FRED_API_URL, FRED_BURST, FRED_RATE_LIMIT, FRED_REQUESTS_PER_MINUTE, FredCredentials
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
        """'<block-type-slug>/<name>'."""
        return f"{self.slug}/{self.name}"


@dataclass
class Plan:
    """What `setup` will do: blocks to save, blocks skipped (with why), problems found."""

    blocks: list[PlannedBlock] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _first_error(exc: ValidationError) -> str:
    return "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())


class SetupVariables(BaseModel):
    """The environment variables `setup` reads, each validated on its own.

    Every message names the variable and what to do, and never contains a secret value. Empty
    values count as not set.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    FRED_API_KEY: SecretStr | None = Field(default=None, description="FRED API key (32 lower-case letters and digits).")
    FRED_API_URL: str | None = Field(default=None, description="Root of the FRED API, for a mirror or a proxy.")
    EMAIL_HOST: str | None = Field(default=None, description="SMTP server host name.")
    EMAIL_PORT: int | None = Field(
        default=None, description="SMTP port: 465 (SSL), 587 (STARTTLS), or any with EMAIL_SMTP_TYPE."
    )
    EMAIL_SMTP_TYPE: Literal["SSL", "STARTTLS", "INSECURE"] | None = Field(
        default=None, description="SMTP connection type."
    )
    EMAIL_USER: str | None = Field(default=None, description="SMTP login.")
    EMAIL_PASS: SecretStr | None = Field(default=None, description="SMTP password.")
    EMAIL_FROM: str | None = Field(default=None, description="From address of the alerts.")
    NOTIFICATION_EMAIL: str | None = Field(default=None, description="Alert recipients, separated by commas.")
    AZURE_STORAGE_CONNECTION_STRING: SecretStr | None = Field(
        default=None, description="Azure Storage connection string."
    )
    AZURE_CONTAINER_NAME: str | None = Field(default=None, description="Blob container of the runs and models.")

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> SetupVariables:
        """Validate the variables of `env` (other keys are ignored).

        Raises:
            ValidationError: one error per malformed variable.
        """
        given = {k: v for k, v in env.items() if k in cls.model_fields and v is not None and str(v).strip()}
        return cls.model_validate(given)

    @field_validator("FRED_API_KEY", "EMAIL_PASS", "AZURE_STORAGE_CONNECTION_STRING", mode="before")
    @classmethod
    def _secret_as_text(cls, value: object) -> object:
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    @field_validator(
        "FRED_API_URL",
        "EMAIL_HOST",
        "EMAIL_USER",
        "EMAIL_FROM",
        "NOTIFICATION_EMAIL",
        "AZURE_CONTAINER_NAME",
        mode="before",
    )
    @classmethod
    def _stripped(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("FRED_API_KEY", mode="before")
    @classmethod
    def _fred_key(cls, value: object) -> object:
        if value is None:
            return None
        key = str(value).strip()
        if not _FRED_KEY.match(key):
            other = " and other characters" if not key.isalnum() or key != key.lower() else ""
            raise ValueError(
                f"FRED_API_KEY is malformed: a FRED API key is 32 lower-case letters and digits, the value given "
                f"has {len(key)} character(s){other}. Copy it from https://fredaccount.stlouisfed.org/apikeys."
            )
        return key

    @field_validator("EMAIL_HOST")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.match(value):
            raise ValueError(
                f"EMAIL_HOST={value!r} is malformed: give the SMTP server's host name only, such as "
                "smtp.gmail.com (no scheme, no port, no spaces); the port goes in EMAIL_PORT."
            )
        return value

    @field_validator("EMAIL_PORT", mode="before")
    @classmethod
    def _port(cls, value: object) -> object:
        if value is None:
            return None
        text = str(value).strip()
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ValueError(
                f"EMAIL_PORT={text!r} is malformed: give a port number from 1 to 65535, such as 465 or 587."
            )
        return int(text)

    @field_validator("EMAIL_SMTP_TYPE", mode="before")
    @classmethod
    def _smtp_type(cls, value: object) -> object:
        if value is None:
            return None
        text = str(value).strip().upper()
        if text not in ("SSL", "STARTTLS", "INSECURE"):
            raise ValueError(f"EMAIL_SMTP_TYPE={text!r} is malformed: use SSL, STARTTLS or INSECURE.")
        return text

    @field_validator("NOTIFICATION_EMAIL")
    @classmethod
    def _recipients(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_recipients(value)
            except ValueError as exc:
                raise ValueError(
                    f"NOTIFICATION_EMAIL is malformed: {exc}. Separate several addresses with commas."
                ) from None
        return value

    @field_validator("AZURE_STORAGE_CONNECTION_STRING", mode="before")
    @classmethod
    def _connection_string(cls, value: object) -> object:
        if value is None:
            return None
        text = str(value).strip()
        try:
            parse_connection_string(text)
        except ValueError as exc:
            raise ValueError(
                f"AZURE_STORAGE_CONNECTION_STRING is malformed: {exc}. Copy it from the Azure portal "
                "(Storage account > Security + networking > Access keys > Connection string)."
            ) from None
        return text

    @field_validator("AZURE_CONTAINER_NAME")
    @classmethod
    def _container(cls, value: str | None) -> str | None:
        if value is not None and not _CONTAINER.match(value):
            raise ValueError(
                f"AZURE_CONTAINER_NAME={value!r} is malformed: a container name is 3-63 characters, lower-case "
                "letters, digits and single hyphens, starting and ending with a letter or digit."
            )
        return value

    def secret(self, name: str) -> str | None:
        """The value of a secret variable, or None."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None


class SetupEnvironment(SetupVariables, BaseSettings):
    """Where pydantic-settings finds the variables: the process environment, then ./.env."""

    model_config = SettingsConfigDict(case_sensitive=True, env_file=".env", env_ignore_empty=True, extra="ignore")


def read_environment() -> dict[str, str]:
    """The setup variables as pydantic-settings reads them.

    A ./.env file, overridden by the process environment; raw text, validated by `plan_blocks`.
    """
    found: dict[str, str] = {}
    for source in (DotEnvSettingsSource(SetupEnvironment), EnvSettingsSource(SetupEnvironment)):
        found.update({name: str(value) for name, value in source().items() if value is not None})
    return found


def _pairing_errors(env: SetupVariables) -> list[str]:
    """EMAIL_USER and EMAIL_PASS come together (an SMTP login) or not at all."""
    if env.EMAIL_USER and env.EMAIL_PASS is None:
        return ["EMAIL_PASS is not set but EMAIL_USER is: set both (SMTP login) or neither (no login)."]
    if env.EMAIL_PASS is not None and not env.EMAIL_USER:
        return ["EMAIL_USER is not set but EMAIL_PASS is: set both (SMTP login) or neither (no login)."]
    return []


def _given(**fields: object) -> dict[str, Any]:
    """The fields a variable gives (set and not empty); a saved block keeps its own values of the others."""
    return {name: value for name, value in fields.items() if value not in (None, "")}


def _plan_fred(env: SetupVariables, plan: Plan) -> None:
    key = env.secret("FRED_API_KEY")
    if key is None:
        plan.skipped.append((f"fred-credentials/{FRED_BLOCK}", "FRED_API_KEY is not set"))
        return
    try:
        # api_url only from FRED_API_URL: without it a saved block keeps its own (FRED's by default).
        url = _given(api_url=env.FRED_API_URL)
        block = FredCredentials(api_key=SecretStr(key), **url)
    except ValidationError as exc:
        plan.errors.append(f"FRED_API_KEY or FRED_API_URL is malformed: {_first_error(exc)}")
        return
    where = f"api_url {redact(block.api_url)}" if url else f"api_url as saved, else {FRED_API_URL}"
    plan.blocks.append(PlannedBlock("fred-credentials", FRED_BLOCK, block, f"FRED API key from FRED_API_KEY, {where}"))


def _plan_email(env: SetupVariables, plan: Plan) -> bool:
    """Plan the SMTP block; True when it will exist."""
    from prefect_email import EmailServerCredentials

    host, port, user, password = env.EMAIL_HOST, env.EMAIL_PORT, env.EMAIL_USER, env.secret("EMAIL_PASS")
    if host is None:
        used = [v for v in ("EMAIL_PORT", "EMAIL_USER", "EMAIL_PASS") if getattr(env, v) is not None]
        why = "EMAIL_HOST is not set" + (f" (ignoring {', '.join(used)})" if used else "")
        plan.skipped.append((f"email-server-credentials/{SMTP_BLOCK}", why))
        return False
    smtp_type = env.EMAIL_SMTP_TYPE
    if smtp_type is None:
        if port is not None and port not in _PORT_TYPES:
            plan.errors.append(
                f"EMAIL_PORT={port} is not a standard SMTP port (465 = SSL, 587 = STARTTLS), so the connection "
                "type cannot be guessed: set EMAIL_SMTP_TYPE to SSL, STARTTLS or INSECURE (INSECURE only for a "
                "relay on a trusted network)."
            )
            return False
        if port is not None:
            smtp_type = _PORT_TYPES[port]  # type: ignore[assignment]
    if bool(user) != bool(password):
        return False  # reported by _pairing_errors
    # Port and type only when a variable gives them: a saved block keeps its own (an edit in the UI).
    block = EmailServerCredentials(
        smtp_server=host,
        username=user,
        password=SecretStr(password or ""),
        **_given(smtp_port=port, smtp_type=smtp_type),
    )
    login = f"login {user}" if user else "no login"
    if block.smtp_type.name == "INSECURE" and user:
        login += " (WARNING: INSECURE sends the password unencrypted)"
    if port is not None:
        where = f"{host}:{port} {smtp_type}"
    elif smtp_type is not None:
        where = f"{host} {smtp_type} (port as saved, else {smtp_type}'s default)"
    else:
        where = f"{host} (port and type as saved, else {block.smtp_type.name} on its default port)"
    plan.blocks.append(PlannedBlock("email-server-credentials", SMTP_BLOCK, block, f"{where}, {login}"))
    return True


def _plan_alerts(env: SetupVariables, plan: Plan, *, smtp_planned: bool) -> None:
    reference = f"email-alerts/{ALERTS_BLOCK}"
    if env.NOTIFICATION_EMAIL is None:
        plan.skipped.append((reference, "NOTIFICATION_EMAIL is not set"))
        return
    if not smtp_planned:
        plan.skipped.append((reference, f"it needs the SMTP block email-server-credentials/{SMTP_BLOCK} (see above)"))
        return
    recipients = parse_recipients(env.NOTIFICATION_EMAIL)
    smtp = next(b.block for b in plan.blocks if b.name == SMTP_BLOCK)
    try:
        # sender only from EMAIL_FROM: without it a saved block keeps its own (by default the SMTP login).
        sender = _given(sender=env.EMAIL_FROM)
        block = EmailAlerts(email_server_credentials=smtp, recipients=recipients, **sender)
    except ValidationError as exc:
        plan.errors.append(f"EMAIL_FROM is malformed: {_first_error(exc)}")
        return
    plan.blocks.append(
        PlannedBlock(
            "email-alerts",
            ALERTS_BLOCK,
            block,
            f"{len(recipients)} recipient(s): {', '.join(recipients)}; "
            + (f"from {block.from_address}" if sender else f"from as saved, else {block.from_address}"),
            children={"email_server_credentials": SMTP_BLOCK},
        )
    )


def _plan_azure(env: SetupVariables, plan: Plan) -> None:
    from prefect_azure import AzureBlobStorageContainer, AzureBlobStorageCredentials

    connection, container = env.secret("AZURE_STORAGE_CONNECTION_STRING"), env.AZURE_CONTAINER_NAME
    container_ref = f"azure-blob-storage-container/{STORAGE_BLOCK}"
    if connection is None:
        plan.skipped.append(
            (f"azure-blob-storage-credentials/{AZURE_CREDENTIALS_BLOCK}", "AZURE_STORAGE_CONNECTION_STRING is not set")
        )
        why = (
            "AZURE_STORAGE_CONNECTION_STRING is not set"
            if container
            else "AZURE_CONTAINER_NAME and AZURE_STORAGE_CONNECTION_STRING are not set"
        )
        plan.skipped.append((container_ref, why))
        return
    account = parse_connection_string(connection).account_name or "development storage"
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
        The plan: the blocks, the skipped blocks with the reason, and every problem found (one per
        malformed variable; then the rules between variables, once each variable is well-formed).
    """
    plan = Plan()
    try:
        variables = SetupVariables.from_mapping(env)
    except ValidationError as exc:
        # Name every malformed variable; plan the rest too, so the rules between variables are checked.
        plan.errors.extend(err["msg"].removeprefix("Value error, ") for err in exc.errors())
        malformed = {str(err["loc"][0]) for err in exc.errors()}
        variables = SetupVariables.from_mapping({k: v for k, v in env.items() if k not in malformed})
    plan.errors.extend(_pairing_errors(variables))
    _plan_fred(variables, plan)
    smtp_planned = _plan_email(variables, plan)
    _plan_alerts(variables, plan, smtp_planned=smtp_planned)
    _plan_azure(variables, plan)
    return plan


def _comparable(value: object) -> object:
    """A block's values in a form that compares equal when nothing changed (secrets revealed).

    A nested block compares by its values. Nested blocks are saved before their parents, so a
    parent loaded for comparison already resolves its references to the new values: it is
    unchanged when only a nested block changed, as its document still points at the same one.
    """
    if isinstance(value, Block):
        return {name: _comparable(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def _load_existing(planned: PlannedBlock) -> Block | None:
    try:
        return cast(Block, type(planned.block).load(planned.name))  # sync here: Prefect types it as either
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


def _keep_saved_values(block: Block, existing: Block) -> None:
    """Give `block` the saved values of the fields no variable sets (an edit in the UI stays)."""
    for name in type(block).model_fields:
        if name not in block.model_fields_set:
            setattr(block, name, getattr(existing, name))


def save_planned(plan: Plan) -> list[tuple[str, PlannedBlock]]:
    """Create, update or leave each planned block; nested blocks point at the saved documents.

    Only the fields the variables set are changed in a saved block: the others keep their saved
    values (e.g. the SMTP block's `verify` or the container block's `base_folder`, edited in the UI).

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
        if existing is not None:
            _keep_saved_values(block, existing)
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
    return redact(url) if url else "none set: a local ephemeral server using the database under PREFECT_HOME"


def ensure_fred_rate_limit(*, requests_per_minute: float, burst: int, name: str = FRED_RATE_LIMIT) -> str:
    """Create or update the global concurrency limit that is the FRED request budget of every process.

    A rate limit in Prefect's sense: `burst` slots that free up at `requests_per_minute` / 60 per
    second. Returns 'created', 'updated' or 'unchanged'.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    decay = requests_per_minute / 60.0
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            existing = None
        if (
            existing is not None
            and existing.limit == burst
            and existing.active
            and existing.slot_decay_per_second == decay
        ):
            return "unchanged"
        client.upsert_global_concurrency_limit_by_name(name=name, limit=burst, slot_decay_per_second=decay)
        if existing is not None and not existing.active:
            from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=True))
    return "created" if existing is None else "updated"


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number above 0 (a FRED budget of 0 would stop every fetch of every run)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def run_setup(
    env: Mapping[str, str],
    *,
    create_missing_container: bool = False,
    requests_per_minute: float = FRED_REQUESTS_PER_MINUTE,
    burst: int = FRED_BURST,
    out: TextIO = sys.stdout,
) -> int:
    """The `setup` command: validate, register the block types, save, create the FRED budget, report.

    Args:
        env: The environment variables to read.
        create_missing_container: Also create the Azure container (`--create-container`).
        requests_per_minute: Rate of the FRED budget shared by every process.
        burst: Requests of the FRED budget that may go out at once.
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
    action = ensure_fred_rate_limit(requests_per_minute=requests_per_minute, burst=burst)
    print(
        f"  {action:<10} global concurrency limit {FRED_RATE_LIMIT}  (FRED budget of every process: "
        f"{requests_per_minute:g} requests/minute, {burst} at once)",
        file=out,
    )
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
    _print_next_steps({b.name for b in plan.blocks}, out)
    return 0


def _print_next_steps(saved: set[str], out: TextIO) -> None:
    """How to use what was saved: the flows' parameters, the automations."""
    hints = []
    if FRED_BLOCK in saved:
        hints.append(f"fred_block={FRED_BLOCK!r}")
    if STORAGE_BLOCK in saved:
        hints.append(f"storage_block='azure-blob-storage-container/{STORAGE_BLOCK}'")
    if hints:
        print(f"Flow parameters: {', '.join(hints)}", file=out)
    if ALERTS_BLOCK in saved:
        print(f"Failure alerts go through email-alerts/{ALERTS_BLOCK}; next: python -m blocks automations", file=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `setup` command's options, and the variables it reads in its --help."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Register the block types, then create or update the blocks from the environment variables\n"
        "(or ./.env) and the shared FRED budget `fred-api`. Blocks whose variables are absent are\n"
        "skipped with the reason; a malformed variable is named and nothing is saved. Idempotent."
    )
    parser.epilog = "environment variables:\n" + "\n".join(
        f"  {name:<34}{field.description}" for name, field in SetupVariables.model_fields.items()
    )
    parser.add_argument(
        "--create-container",
        action="store_true",
        help="also create the Azure Blob container AZURE_CONTAINER_NAME if it does not exist",
    )
    parser.add_argument(
        "--fred-requests-per-minute",
        type=_positive(float),
        default=FRED_REQUESTS_PER_MINUTE,
        help=f"rate of the FRED budget of every process (default {FRED_REQUESTS_PER_MINUTE:g}; FRED allows ~120)",
    )
    parser.add_argument(
        "--fred-burst",
        type=_positive(int),
        default=FRED_BURST,
        help=f"FRED requests that may go out at once (default {FRED_BURST})",
    )

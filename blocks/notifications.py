"""`EmailAlerts`: a Prefect notification block that e-mails a list of recipients through SMTP.

Prefect's server sends automation notifications only through blocks with the `notify` capability
(`NotificationBlock`), and prefect-email's `EmailServerCredentials` is not one. This block wraps a
saved `EmailServerCredentials` block and adds the recipients, so the same document serves the
in-run failure hook (`tasks.ops.alerts`) and the automations' `SendNotification` action.

The Prefect server process must be able to import this module to run the automation's action:
it does when the market-forecast package is installed where the server runs, through the
`prefect.collections` entry point (`blocks/__init__.py` imports this module).
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect_email import EmailServerCredentials
from prefect_email.credentials import SMTPServer, SMTPType
from pydantic import Field, HttpUrl, field_validator

from blocks.redaction import environment_secrets, redact

# The alert block `python -m blocks setup` saves, which the failure hook loads unless
# MARKET_FORECAST_ALERT_BLOCK names another notification block ('<block-type-slug>/<name>').
ALERTS_BLOCK = "market-forecast-alerts"
DEFAULT_ALERT_BLOCK = f"email-alerts/{ALERTS_BLOCK}"
ALERT_BLOCK_VARIABLE = "MARKET_FORECAST_ALERT_BLOCK"
# Emitted by the failure hook once its alert went out; the failure automation waits for it.
ALERT_SENT_EVENT = "market-forecast.alert.sent"

# Deliberately simple: one "@", no spaces, a dot in the domain (or a bare host such as localhost).
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")


def parse_recipients(value: str | list[str]) -> list[str]:
    """Split a comma- or semicolon-separated list of addresses and check each one.

    Args:
        value: "a@x.org, b@y.org" or a list of addresses.

    Returns:
        The addresses, stripped, in order, without duplicates.

    Raises:
        ValueError: the list is empty or an entry is not an e-mail address (the entry is named).
    """
    parts = re.split(r"[,;]", value) if isinstance(value, str) else list(value)
    recipients: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if not _ADDRESS.match(part):
            raise ValueError(f"{part!r} is not an e-mail address (expected name@domain)")
        if part not in recipients:
            recipients.append(part)
    if not recipients:
        raise ValueError("no recipient given: list at least one e-mail address, separated by commas")
    return recipients


def send_email(
    credentials: EmailServerCredentials,
    *,
    subject: str,
    body: str,
    recipients: list[str],
    sender: str,
    timeout: float,
) -> None:
    """Send one plain-text e-mail through the SMTP server an `EmailServerCredentials` block describes.

    Honours the block's smtp_server, smtp_type (SSL, STARTTLS, INSECURE), smtp_port, verify,
    username and password exactly as `EmailServerCredentials.get_server()` does, but with a
    socket timeout: `get_server()` has none, so an unreachable server would hang the caller (the
    failure hook, or the Prefect server's event loop running an automation).

    Raises:
        OSError, smtplib.SMTPException: the server refused or could not be reached.
    """
    host = credentials.smtp_server
    if isinstance(host, SMTPServer):
        host = host.value
    smtp_type = credentials.smtp_type
    if isinstance(smtp_type, str):  # the block's validator normally casts it already
        smtp_type = SMTPType[smtp_type.upper()]
    port = credentials.smtp_port or smtp_type.value

    # Lines up to RFC 5322's 998-character limit: the default 78 folds a long subject right after
    # "Subject:", and readers then see it with a leading space.
    message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="market-forecast")
    message.set_content(body)

    context = ssl.create_default_context()
    if not credentials.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    server: smtplib.SMTP
    if smtp_type == SMTPType.SSL:
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if smtp_type == SMTPType.STARTTLS:
            server.starttls(context=context)
        if credentials.username:
            server.login(credentials.username, credentials.password.get_secret_value())
        server.send_message(message)


class EmailAlerts(NotificationBlock):
    """E-mail alerts: a saved SMTP server (prefect-email's EmailServerCredentials) and its recipients.

    Attributes:
        email_server_credentials: The SMTP server and login (a saved EmailServerCredentials block).
        recipients: Who receives the alerts.
        sender: The From address; default the SMTP username, else market-forecast@localhost.
        subject_prefix: Put in front of every subject, to let mail rules sort the alerts.
        timeout_seconds: Socket timeout of each SMTP operation.

    Example:
        ```python
        from prefect_email import EmailServerCredentials
        from blocks.notifications import EmailAlerts
        smtp = EmailServerCredentials.load("market-forecast-smtp")
        EmailAlerts(email_server_credentials=smtp, recipients=["ops@example.org"]).save(
            "market-forecast-alerts", overwrite=True
        )
        await EmailAlerts.load("market-forecast-alerts").notify("body", subject="subject")
        ```
    """

    _block_type_name = "Email Alerts"
    _block_type_slug = "email-alerts"
    _logo_url = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/82bc6ed16ca42a2252a5512c72233a253b8a58eb-250x250.png"
    )  # prefect-email's logo
    _documentation_url = HttpUrl("https://docs.prefect.io/integrations/prefect-email")
    _description = "Sends notifications by e-mail to a list of recipients through a saved SMTP server block."

    email_server_credentials: EmailServerCredentials = Field(
        default=...,
        description="The SMTP server and its login: a saved Email Server Credentials block.",
    )
    recipients: list[str] = Field(
        default=...,
        description="E-mail addresses that receive the alerts.",
    )
    sender: str | None = Field(
        default=None,
        description="From address; default the SMTP username, else market-forecast@localhost.",
    )
    subject_prefix: str = Field(
        default="[market-forecast]",
        description="Text put in front of every subject; empty for none.",
    )
    timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=300,
        description="Timeout of each SMTP operation (connect, login, send), in seconds.",
    )

    @field_validator("recipients", mode="before")
    @classmethod
    def _valid_recipients(cls, value: str | list[str]) -> list[str]:
        try:
            return parse_recipients(value)
        except ValueError as exc:
            raise ValueError(f"recipients: {exc}") from None

    @field_validator("sender")
    @classmethod
    def _valid_sender(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value.strip()):
            raise ValueError(f"sender {value!r} is not an e-mail address (expected name@domain)")
        return value.strip() if value else None

    @property
    def from_address(self) -> str:
        """The From address actually used."""
        username = self.email_server_credentials.username
        if self.sender:
            return self.sender
        if username and "@" in username:
            return str(username)
        return "market-forecast@localhost"

    async def notify(self, body: str, subject: str | None = None) -> None:
        """E-mail `body` to the recipients.

        A failure is logged; under `raise_on_failure()` (how the automation action and the failure
        hook call it) it raises NotificationError instead. The log never contains the password.
        """
        # Automation templates quote state messages verbatim: hide key=value secrets and the
        # SMTP password there too, whoever wrote the message.
        secrets = environment_secrets(os.environ, self.email_server_credentials.password.get_secret_value())
        full_subject = " ".join(p for p in (self.subject_prefix, subject or "Prefect notification") if p)
        full_subject = redact(full_subject, *secrets)
        body = redact(body, *secrets)
        try:
            await asyncio.to_thread(
                send_email,
                self.email_server_credentials,
                subject=full_subject,
                body=body,
                recipients=list(self.recipients),
                sender=self.from_address,
                timeout=self.timeout_seconds,
            )
        except (OSError, smtplib.SMTPException) as exc:
            host = self.email_server_credentials.smtp_server
            host = host.value if isinstance(host, SMTPServer) else host
            port = self.email_server_credentials.smtp_port
            where = f"{host}:{port}" if port else str(host)
            reason = redact(f"{type(exc).__name__}: {exc}", *secrets)
            message = (
                f"Could not e-mail {len(self.recipients)} recipient(s) through the SMTP server {where} "
                f"({reason}). Check the server, port and login in the Email Server Credentials block."
            )
            self.logger.error(message)
            if self._raise_on_failure:  # set by NotificationBlock.raise_on_failure(), as Prefect's own blocks read it
                raise NotificationError(log=message) from None

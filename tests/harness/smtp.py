"""An SMTP sink for tests: aiosmtpd on 127.0.0.1, in this process, keeping every e-mail it receives.

with SmtpSink() as sink:                       # or sink = SmtpSink().start() ... sink.stop()
    send_to("127.0.0.1", sink.port)
    mail = sink.wait_for("subject words", timeout=10)
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from tests.harness.process import HOST, Service, free_port

__all__ = ["Mail", "SmtpSink"]


@dataclass(frozen=True)
class Mail:
    """One received e-mail, decoded."""

    received: float  # time.time()
    subject: str
    sender: str
    to: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.subject}\n{self.body}"


class SmtpSink(Service):
    """aiosmtpd on 127.0.0.1 keeping every message it receives.

    Args:
        port: Port to listen on; None picks a free one.
    """

    def __init__(self, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self._auto_port = port is None
        self.port = free_port() if port is None else port
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._controller = Controller(self, hostname=HOST, port=self.port)
        self._running = False

    def _start_controller(self) -> None:
        """Start aiosmtpd; a free port taken before it bound (another test's server) is replaced."""
        from aiosmtpd.controller import Controller

        for attempt in range(5):
            try:
                self._controller.start()
                return
            except OSError:
                if not self._auto_port or attempt == 4:
                    raise
                self.port = free_port()
                self._controller = Controller(self, hostname=HOST, port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        mail = Mail(time.time(), str(message["Subject"]), str(message["From"]), str(message["To"]), body)
        with self._lock:
            self._mails.append(mail)
        return "250 OK"

    # -- life cycle ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> SmtpSink:
        """Start the SMTP server thread (ready when this returns). No-op if it runs."""
        if not self._running:
            self._start_controller()
            self._running = True
        return self

    def stop(self) -> None:
        """Stop the SMTP server thread. Idempotent."""
        if self._running:
            self._running = False
            with contextlib.suppress(Exception):
                self._controller.stop()

    # -- what came -------------------------------------------------------------------
    @property
    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)

    def about(self, *needles: str) -> list[Mail]:
        """The e-mails whose subject or body contains every needle."""
        return [m for m in self.mails if all(n in m.text for n in needles)]

    def wait_for(self, *needles: str, timeout: float) -> Mail:
        """The first e-mail containing every needle; AssertionError (listing what came) after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.about(*needles)
            if found:
                return found[0]
            time.sleep(0.25)
        subjects = [m.subject for m in self.mails]
        raise AssertionError(f"no e-mail with {needles!r} within {timeout:.0f} s; received: {subjects}")

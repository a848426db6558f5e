"""The SMTP sink the alert tests send to: it starts even when the free port it picked is taken."""

from __future__ import annotations

import itertools
import smtplib
import socket

import pytest

from tests.harness import smtp
from tests.harness.process import HOST


def test_a_sink_whose_port_was_taken_before_it_bound_starts_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        real_free_port = smtp.free_port
        picks = itertools.chain([busy], iter(real_free_port, None))  # first the taken port, then free ones
        monkeypatch.setattr(smtp, "free_port", lambda: next(picks))
        sink = smtp.SmtpSink().start()
        try:
            assert sink.port != busy
            with smtplib.SMTP(HOST, sink.port, timeout=10) as client:
                client.sendmail("alerts@example.org", ["ops@example.org"], "Subject: reached\n\nbody")
            assert sink.wait_for("reached", timeout=10).subject == "reached"
        finally:
            sink.stop()

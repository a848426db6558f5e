"""The alert's contents: the hook's message builder, secret scrubbing and the automation
definitions (pure), the EmailAlerts block against a local SMTP sink, and the hook when no alert
block exists (a run in this process, as a local demo run is)."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from blocks.automations import (
    DEADLINE_BODY,
    FAILURE_BODY,
    deadline_automation,
    failure_automation,
)
from blocks.notifications import ALERT_SENT_EVENT
from blocks.redaction import environment_secrets, redact
from tasks.ops.alerts import MAX_ERROR_CHARS, FailedTask, RunFailure, build_failure_alert
from tests.alerts.stack import delete_blocks
from tests.harness.process import free_port
from tests.harness.smtp import SmtpSink

SMTP_PASSWORD = "smtp-Pa55word-9d1c"
FRED_KEY = "0123456789abcdef0123456789abcdef"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=https;AccountName=mfprod;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
)
RUN_ID = "3f1c2d4e-0000-4000-8000-123456789abc"


def failure(**overrides: object) -> RunFailure:
    values: dict[str, object] = {
        "flow_name": "daily-forecast",
        "run_name": "daily-2026-11-20",
        "run_id": RUN_ID,
        "state_name": "Failed",
        "state_message": "Flow run encountered an exception: FredRequestError: SP500: HTTP 400 Bad Request",
        "as_of": "2026-11-20",
        "start_day": date(2026, 11, 23),
        "failed_task": FailedTask(
            "fetch-SP500-0", "Failed", "Task run encountered an exception FredRequestError: SP500: HTTP 400 Bad Request"
        ),
        "deployment": "daily-forecast/daily-forecast-docker",
        "ui_url": "https://prefect.example.org",
    }
    values.update(overrides)
    return RunFailure(**values)  # type: ignore[arg-type]


def test_failure_alert_names_flow_run_as_of_task_error_and_link() -> None:
    subject, body = build_failure_alert(failure())

    assert subject == "daily-forecast: run daily-2026-11-20 Failed"
    assert "Flow:         daily-forecast" in body
    assert f"Flow run:     daily-2026-11-20 (id {RUN_ID})" in body
    assert "Deployment:   daily-forecast/daily-forecast-docker" in body
    assert "as_of:        2026-11-20" in body
    assert "Failed task:  fetch-SP500-0 (Failed)" in body
    assert f"Run in UI:    https://prefect.example.org/runs/flow-run/{RUN_ID}" in body
    assert "FredRequestError: SP500: HTTP 400 Bad Request" in body


def test_failure_alert_says_what_the_failed_run_published() -> None:
    _, fetch_failed = build_failure_alert(failure())
    assert "Nothing was published by this run; latest.json still points at the last complete run." in fetch_failed
    _, promotion_failed = build_failure_alert(
        failure(flow_name="train-model", failed_task=FailedTask("promote-champion-default-1a2", "Failed", "boom"))
    )
    assert "This run's folder was published, but models/champion.json was not moved" in promotion_failed
    assert "Nothing was published" not in promotion_failed


def test_failure_alert_without_as_of_says_today_in_new_york() -> None:
    _, body = build_failure_alert(failure(as_of=None))

    assert "as_of:        None (today in New York: 2026-11-23)" in body


def test_failure_alert_without_ui_url_has_no_link() -> None:
    _, body = build_failure_alert(failure(ui_url=None))

    assert "Run in UI" not in body
    assert "/runs/flow-run/" not in body


def test_failure_alert_without_failed_task_shows_the_flow_error() -> None:
    _, body = build_failure_alert(
        failure(failed_task=None, state_message="Flow run encountered an exception: KeyError: 'x'")
    )

    assert "Failed task:  none recorded (the flow itself failed)" in body
    assert "KeyError: 'x'" in body


def test_a_long_error_is_clipped_after_its_secrets_are_hidden() -> None:
    # The key straddles the point where the error is cut: no piece of it may reach the e-mail.
    error = "x" * (MAX_ERROR_CHARS - 30) + f" key {FRED_KEY} rejected " + "y" * 500  # the cut keeps 10 of its 32
    _, body = build_failure_alert(
        failure(failed_task=FailedTask("fetch-SP500-0", "Failed", error), state_message=None), secrets=[FRED_KEY]
    )
    assert "(truncated)" in body
    assert FRED_KEY[:10] not in body


def test_failure_alert_contains_no_smtp_password_fred_key_or_connection_string_key() -> None:
    leaky = (
        f"urlopen https://api.stlouisfed.org/fred/series?series_id=SP500&api_key={FRED_KEY} failed; "
        f"client built from {CONNECTION_STRING}; smtp login {SMTP_PASSWORD} refused"
    )
    secrets = environment_secrets(
        {"AZURE_STORAGE_CONNECTION_STRING": CONNECTION_STRING, "FRED_API_KEY": FRED_KEY}, SMTP_PASSWORD
    )
    subject, body = build_failure_alert(
        failure(
            state_message=leaky,
            failed_task=FailedTask("fetch-SP500-0", "Failed", leaky),
            run_name=f"run {SMTP_PASSWORD}",
        ),
        secrets=secrets,
    )

    for secret in (SMTP_PASSWORD, FRED_KEY, ACCOUNT_KEY, CONNECTION_STRING):
        assert secret not in subject
        assert secret not in body
    assert "api_key=***" in body
    assert "client built from ***;" in body


def test_scrub_hides_key_value_secrets_it_was_not_told_about() -> None:
    text = (
        f"GET /fred/series?api_key={FRED_KEY}&file_type=json; AccountKey={ACCOUNT_KEY};"
        " https://acct.blob.core.windows.net/c?sv=2024&sig=AbC%2Bd3f&se=1 smtp://ops:hunter22@mail:587"
    )

    scrubbed = redact(text)

    assert FRED_KEY not in scrubbed and ACCOUNT_KEY not in scrubbed
    assert "AbC%2Bd3f" not in scrubbed and "hunter22" not in scrubbed
    assert "smtp://ops:***@mail:587" in scrubbed


def test_failure_automation_waits_for_the_hooks_event_per_flow_run() -> None:
    automation = failure_automation(
        block_document_id="00000000-0000-4000-8000-000000000001", tag="mf", hook_grace=timedelta(seconds=60)
    )
    trigger = automation.trigger

    assert automation.name == "mf: run failed, crashed or timed out"
    assert trigger.posture == "Proactive"
    assert trigger.after == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
    assert trigger.expect == {ALERT_SENT_EVENT}
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.within == timedelta(seconds=60)
    assert trigger.match_related.model_dump() == {
        "prefect.resource.role": "tag",
        "prefect.resource.id": "prefect.tag.mf",
    }


def test_deadline_automation_expects_a_final_state_after_late_or_running() -> None:
    automation = deadline_automation(
        block_document_id="00000000-0000-4000-8000-000000000001",
        tag="mf",
        flow_name="daily-forecast",
        deadline=timedelta(minutes=90),
    )
    trigger = automation.trigger

    assert trigger.after == {"prefect.flow-run.Late", "prefect.flow-run.Running"}
    assert {"prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Crashed"} <= trigger.expect
    assert trigger.within == timedelta(minutes=90)
    assert "within 1 hour(s)" not in automation.actions[0].body
    assert "within 90 minute(s)" in automation.actions[0].body


def test_automation_templates_quote_no_block_field() -> None:
    # The templates only use run, flow, deployment and work-pool fields: no credentials can leak.
    for template in (FAILURE_BODY, DEADLINE_BODY):
        assert "block" not in template.lower()
        assert "password" not in template.lower()


def test_email_alerts_rejects_a_malformed_recipient() -> None:
    from prefect_email import EmailServerCredentials

    from blocks.notifications import EmailAlerts

    with pytest.raises(ValidationError, match="'ops-at-example.org' is not an e-mail address"):
        EmailAlerts(
            email_server_credentials=EmailServerCredentials(smtp_server="127.0.0.1"), recipients="ops-at-example.org"
        )


def test_email_alerts_notify_delivers_to_every_recipient_and_scrubs_secrets(smtp_sink: SmtpSink) -> None:
    from prefect_email import EmailServerCredentials

    from blocks.notifications import EmailAlerts

    block = EmailAlerts(
        email_server_credentials=EmailServerCredentials(
            smtp_server="127.0.0.1", smtp_port=smtp_sink.port, smtp_type="INSECURE"
        ),
        recipients="a@example.org, b@example.org",
    )
    asyncio.run(block.notify(f"state message: api_key={FRED_KEY}", subject="unit-notify-5e1"))

    mail = smtp_sink.wait_for("unit-notify-5e1", timeout=10)
    assert mail.subject == "[market-forecast] unit-notify-5e1"
    assert mail.to == "a@example.org, b@example.org"
    assert FRED_KEY not in mail.body and "api_key=***" in mail.body


def test_email_alerts_notify_raises_notification_error_when_the_server_is_down() -> None:
    from prefect.blocks.abstract import NotificationError
    from prefect_email import EmailServerCredentials

    from blocks.notifications import EmailAlerts

    block = EmailAlerts(
        email_server_credentials=EmailServerCredentials(
            smtp_server="127.0.0.1", smtp_port=free_port(), smtp_type="INSECURE", username="ops", password=SMTP_PASSWORD
        ),
        recipients=["a@example.org"],
        timeout_seconds=5,
    )
    with pytest.raises(NotificationError) as caught, block.raise_on_failure():
        asyncio.run(block.notify("body", subject="down"))

    assert "Could not e-mail 1 recipient(s) through the SMTP server 127.0.0.1:" in caught.value.log
    assert SMTP_PASSWORD not in caught.value.log


def test_hook_without_alert_block_logs_not_configured_and_keeps_the_error(
    prefect_server: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.logging.handlers import APILogWorker

    from tests.alerts.sample_flows import failing_flow

    monkeypatch.setenv("MARKET_FORECAST_ALERT_BLOCK", "email-alerts/no-such-alerts-block")
    with prefect_server.settings(), caplog.at_level(logging.WARNING):  # a run in this process, as a local demo run
        state = failing_flow(as_of=date(2026, 11, 20), return_state=True)
        APILogWorker.drain_all()  # send the run's logs now, while this server is certainly up

    assert state.is_failed()
    assert "SampleFailure: prices for 2026-11-20 could not be loaded: sample outage 7f3a" in state.message
    assert "Failure alerts are not configured" in caplog.text
    assert "email-alerts/no-such-alerts-block" in caplog.text


def test_hook_sends_through_a_prefect_webhook_block_from_a_sync_flow(
    prefect_server: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prefect's own notification blocks dispatch notify() on the run context: in a sync flow's
    # async hook it runs synchronously and returns None, so `await block.notify()` raised after
    # sending and the hook never reported the alert as sent (the automation then sent a second).
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.logging.handlers import APILogWorker

    from tests.alerts.sample_flows import failing_flow

    received: list[dict[str, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with prefect_server.settings():
            CustomWebhookNotificationBlock(
                name="alerts-unit-webhook",
                url=f"http://127.0.0.1:{httpd.server_address[1]}/alerts",
                json_data={"subject": "{{subject}}", "body": "{{body}}"},
            ).save("alerts-unit-webhook", overwrite=True)
            monkeypatch.setenv("MARKET_FORECAST_ALERT_BLOCK", "custom-webhook/alerts-unit-webhook")
            with caplog.at_level(logging.INFO):
                state = failing_flow(as_of=date(2026, 11, 20), return_state=True)
            APILogWorker.drain_all()
    finally:
        httpd.shutdown()
        delete_blocks(prefect_server, ("custom-webhook/alerts-unit-webhook",))

    assert state.is_failed()
    assert len(received) == 1
    assert received[0]["subject"].startswith("alerts-sample-failing: run ")
    assert "sample outage 7f3a" in received[0]["body"]
    assert "sent through 'custom-webhook/alerts-unit-webhook'" in caplog.text
    assert "hook itself failed" not in caplog.text

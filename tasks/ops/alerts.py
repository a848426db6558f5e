"""Failure alerts sent from inside a run: the flows' `on_failure` hook and its message.

`notify_run_failure` is an `async def` hook (a sync hook calling prefect-email's async task
silently sends nothing). It loads the alert block (default `email-alerts/market-forecast-alerts`,
created by `python -m blocks setup`), e-mails what failed, and then emits the event
`market-forecast.alert.sent` for the flow run. The failure automation (`blocks.automations`)
waits for that event after a Failed, Crashed or TimedOut run and notifies only when it does not
come: so a run whose hook sent its e-mail gets exactly that one, and a run whose process was
killed (no hook runs) or whose hook could not send gets the automation's.

The hook never raises: whatever goes wrong is logged to the run, and the run's final state keeps
the original error. Without an alert block (a local demo run) it logs that alerts are not
configured and does nothing else.

The message builder `build_failure_alert` is a pure function, so its contents can be tested
without Prefect; every text passes through `blocks.redaction`, so no secret reaches a message or a
log line. A run killed outright (Crashed) runs no hook: the failure automation covers it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect.blocks.abstract import NotificationBlock, NotificationError

from blocks.fred import FredCredentials
from blocks.notifications import ALERT_BLOCK_VARIABLE, ALERT_SENT_EVENT, DEFAULT_ALERT_BLOCK
from blocks.redaction import environment_secrets, redact

if TYPE_CHECKING:  # pragma: no cover
    from prefect import Flow
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun, State

MARKET_TZ = ZoneInfo("America/New_York")
MAX_ERROR_CHARS = 3000


@dataclass(frozen=True)
class FailedTask:
    """The task run that failed first, as shown in the alert."""

    name: str
    state_name: str
    message: str | None


@dataclass(frozen=True)
class RunFailure:
    """What the alert says about a failed run. Plain data: built from Prefect objects by the hook."""

    flow_name: str
    run_name: str
    run_id: str
    state_name: str
    state_message: str | None
    as_of: str | None
    start_day: date | None
    failed_task: FailedTask | None = None
    deployment: str | None = None
    ui_url: str | None = None


def describe_as_of(as_of: str | None, start_day: date | None) -> str:
    """as_of as the run used it: the parameter, or 'today in New York' when it was None."""
    if as_of:
        return str(as_of)
    if start_day is not None:
        return f"None (today in New York: {start_day.isoformat()})"
    return "None (today in New York)"


def run_link(ui_url: str | None, run_id: str) -> str | None:
    """The run's page in the Prefect UI, or None without a UI URL."""
    if not ui_url:
        return None
    return f"{ui_url.rstrip('/')}/runs/flow-run/{run_id}"


def _clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 15].rstrip() + " ... (truncated)"


# The training flow's promotion task (tasks/stages/models.py), run after its run folder is complete
# (flows/train_model.py): when it is the task that failed, the folder was published.
PROMOTE_TASK = "promote-champion"


def _what_was_published(failed_task: FailedTask | None) -> str:
    """What the failed run left for its readers (Power BI, the daily runs)."""
    if failed_task is not None and failed_task.name.startswith(PROMOTE_TASK):
        return (
            "This run's folder was published, but models/champion.json was not moved by this run: the daily "
            "runs keep using the champion it names. Re-run the training flow to promote a new one."
        )
    return "Nothing was published by this run; latest.json still points at the last complete run."


def build_failure_alert(failure: RunFailure, *, secrets: Iterable[str | None] = ()) -> tuple[str, str]:
    """Subject and plain-text body of the e-mail about a failed or crashed run.

    Args:
        failure: The run's facts.
        secrets: Values that must not appear (they are replaced by '***', as are key=value
            secrets such as api_key=... and AccountKey=...).

    Returns:
        (subject, body).
    """
    secrets = list(secrets)
    error = failure.failed_task.message if failure.failed_task and failure.failed_task.message else None
    error = error or failure.state_message or "(no error message recorded)"
    subject = f"{failure.flow_name}: run {failure.run_name} {failure.state_name}"
    lines = [
        f"The flow run {failure.run_name} of {failure.flow_name} ended {failure.state_name}.",
        "",
        f"Flow:         {failure.flow_name}",
        f"Flow run:     {failure.run_name} (id {failure.run_id})",
    ]
    if failure.deployment:
        lines.append(f"Deployment:   {failure.deployment}")
    lines.append(f"as_of:        {describe_as_of(failure.as_of, failure.start_day)}")
    if failure.failed_task is not None:
        lines.append(f"Failed task:  {failure.failed_task.name} ({failure.failed_task.state_name})")
    else:
        lines.append("Failed task:  none recorded (the flow itself failed)")
    link = run_link(failure.ui_url, failure.run_id)
    if link:
        lines.append(f"Run in UI:    {link}")
    # Redacted before clipping: a secret cut in two by the clip would no longer be recognised.
    lines += ["", "Error:", _clip(redact(error, *secrets))]
    if failure.state_message and failure.state_message.strip() not in error:
        lines += ["", "Final state message:", _clip(redact(failure.state_message, *secrets))]
    lines += ["", _what_was_published(failure.failed_task)]
    body = "\n".join(lines) + "\n"
    return redact(subject, *secrets), redact(body, *secrets)


# ---------------------------------------------------------------- the hook (Prefect from here on)


def alert_block_reference(env: Mapping[str, str] | None = None) -> str:
    """'<block-type-slug>/<name>' of the notification block the hook uses."""
    env = os.environ if env is None else env
    return (env.get(ALERT_BLOCK_VARIABLE) or DEFAULT_ALERT_BLOCK).strip()


async def _first_failed_task(client: PrefectClient, flow_run_id: UUID) -> FailedTask | None:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    task_runs = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED]))
        ),
    )
    if not task_runs:
        return None
    first = min(task_runs, key=lambda t: t.end_time or t.expected_start_time or datetime.max.replace(tzinfo=UTC))
    state = first.state
    return FailedTask(
        name=first.name,
        state_name=(state.name if state else None) or "Failed",
        message=state.message if state else None,
    )


async def _deployment_name(client: PrefectClient, deployment_id: UUID | None, flow_name: str) -> str | None:
    if deployment_id is None:
        return None
    try:
        deployment = await client.read_deployment(deployment_id)
    except Exception:  # noqa: BLE001 - a name for the e-mail is not worth failing over
        return str(deployment_id)
    return f"{flow_name}/{deployment.name}"


def _start_day(flow_run: FlowRun) -> date | None:
    moment = getattr(flow_run, "start_time", None) or getattr(flow_run, "expected_start_time", None)
    return moment.astimezone(MARKET_TZ).date() if moment else None


async def _known_secrets(block: NotificationBlock, flow_run: FlowRun) -> list[str]:
    """Secrets the alert must hide: environment, the alert block's SMTP password, the run's FRED key."""
    extra: list[str | None] = []
    credentials = getattr(block, "email_server_credentials", None)
    if credentials is not None:
        extra.append(credentials.password.get_secret_value())
    fred_block = (flow_run.parameters or {}).get("fred_block")
    if fred_block:
        # The block may be the very thing that is missing: then there is no key to hide.
        with contextlib.suppress(Exception):
            credentials_block: FredCredentials = await FredCredentials.aload(fred_block)
            extra.append(credentials_block.api_key.get_secret_value())
    return environment_secrets(os.environ, *extra)


async def _notify(block: NotificationBlock, body: str, subject: str) -> None:
    """Send through any notification block from this async hook.

    Prefect's own blocks (Slack, Teams, custom webhook, ...) dispatch `notify` on the caller's
    run context: inside a sync flow's hook it runs synchronously and returns None, so awaiting it
    fails. Their `anotify` is the coroutine; EmailAlerts' `notify` is one already.
    """
    anotify = getattr(block, "anotify", None)
    result = anotify(body, subject=subject) if anotify is not None else block.notify(body, subject=subject)
    if inspect.isawaitable(result):
        await result


async def _emit_alert_sent(flow: Flow[..., Any], flow_run: FlowRun, state: State, block_reference: str) -> None:
    """Tell the failure automation that this run's alert went out (it then stays silent)."""
    from prefect.events import Event, RelatedResource, Resource
    from prefect.events.clients import get_events_client

    related = [
        RelatedResource(
            {
                "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": flow.name,
            }
        ),
        *(
            RelatedResource({"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"})
            for tag in sorted(flow_run.tags or [])
        ),
    ]
    if flow_run.deployment_id:
        related.append(
            RelatedResource(
                {
                    "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                    "prefect.resource.role": "deployment",
                }
            )
        )
    event = Event(
        event=ALERT_SENT_EVENT,
        resource=Resource(
            {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.name": flow_run.name}
        ),
        related=related,
        payload={"state": state.name, "channel": block_reference},
    )
    # A client of our own, closed (and so flushed) before the hook returns: the process may exit
    # right after the hook, before Prefect's background events worker sends anything.
    async with get_events_client() as events:
        await events.emit(event)


async def notify_run_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """`on_failure` hook: notify the alert recipients that this run failed.

    Loads the notification block named by MARKET_FORECAST_ALERT_BLOCK (default
    'email-alerts/market-forecast-alerts'), sends the message of `build_failure_alert`, then
    emits `market-forecast.alert.sent` for the run. Never raises: a failure to send is logged and
    the run's final state keeps its own error.
    """
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client
    from prefect.logging.loggers import flow_run_logger
    from prefect.settings import get_current_settings

    logger = flow_run_logger(flow_run=flow_run, flow=flow)
    reference = alert_block_reference()
    try:
        try:
            loaded = await Block.aload(reference)
        except (ValueError, KeyError) as exc:
            logger.warning(
                "Failure alerts are not configured: no notification block %r could be loaded (%s). "
                "Create it with `python -m blocks setup` (EMAIL_HOST, NOTIFICATION_EMAIL, ...) or set %s "
                "to '<block-type-slug>/<name>' of another notification block. No alert was sent.",
                reference,
                type(exc).__name__,
                ALERT_BLOCK_VARIABLE,
            )
            return
        if not isinstance(loaded, NotificationBlock):
            logger.error(
                "Block %r is a %s, which cannot send notifications; point %s at an e-mail, Slack, Teams "
                "or webhook notification block. No alert was sent.",
                reference,
                type(loaded).__name__,
                ALERT_BLOCK_VARIABLE,
            )
            return
        block = loaded

        async with get_client() as client:
            failed_task = await _first_failed_task(client, flow_run.id)
            deployment = await _deployment_name(client, flow_run.deployment_id, flow.name)
        failure = RunFailure(
            flow_name=flow.name,
            run_name=flow_run.name,
            run_id=str(flow_run.id),
            state_name=state.name or state.type.value.title(),
            state_message=state.message,
            as_of=(flow_run.parameters or {}).get("as_of"),
            start_day=_start_day(flow_run),
            failed_task=failed_task,
            deployment=deployment,
            ui_url=get_current_settings().ui_url,
        )
        subject, body = build_failure_alert(failure, secrets=await _known_secrets(block, flow_run))
        try:
            # NotificationBlock.raise_on_failure is a @contextmanager method mypy cannot resolve.
            with block.raise_on_failure():  # type: ignore[attr-defined]
                await _notify(block, body, subject)
        except NotificationError as exc:
            logger.error(
                "The failure alert could not be sent through %r: %s The failure automation, if created "
                "with `python -m blocks automations`, will try again. The run's own error is unchanged.",
                reference,
                exc.log,
            )
            return
        logger.info("Failure alert for %s sent through %r.", flow_run.name, reference)
        await _emit_alert_sent(flow, flow_run, state, reference)
    except Exception as exc:  # noqa: BLE001 - a hook must never replace the run's own error
        logger.error(
            "The failure alert hook itself failed (%s: %s); the run's own error is unchanged.",
            type(exc).__name__,
            redact(str(exc), *environment_secrets(os.environ)),
        )

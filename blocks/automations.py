"""`python -m blocks automations`: create or update the project's alerting automations, by name.

Two automations, both scoped to flow runs tagged `market-forecast` (the tag the project's
deployments carry; `--tag` changes it) and both notifying through one notification block
(default `email-alerts/market-forecast-alerts`; any block with the notify capability works, e.g.
`slack-webhook/ops`):

1. `<tag>: run failed, crashed or timed out` (proactive). After a flow run enters Failed, Crashed
   or TimedOut it waits `--hook-grace-seconds` (default 90) for `market-forecast.alert.sent` for
   the same flow run (the event the in-run hook `tasks.ops.alerts.notify_run_failure` emits after it
   sent its own, richer, e-mail). Only when that event does not come does it notify. So:
   a plain failure -> one e-mail, the hook's; a killed process (Crashed, no hook can run), a run
   whose code could not even be loaded, or a hook that could not send -> one e-mail, this one.
2. `<tag>: <flow> not completed by its deadline` (proactive). After a run of the daily flow
   becomes Late (the server's late-runs service: not started on time, e.g. no worker) or starts
   Running, it expects a terminal state (Completed, Failed, Crashed, Cancelled, TimedOut) within
   `--deadline-minutes` (default 120). A run that never starts, or hangs, gets one e-mail naming
   it. A run that fails is left to automation 1, so it is not reported twice.

Idempotent: an automation with the same name is updated in place (or left alone when nothing
changed); extra copies with that name, if any, are deleted; nothing is ever duplicated. One paused
in the UI stays paused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO
from uuid import UUID

from prefect.automations import Automation, AutomationCore, EventTrigger, Posture, SendNotification

from blocks.notifications import ALERT_SENT_EVENT, DEFAULT_ALERT_BLOCK
from blocks.redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    from prefect.client.orchestration import PrefectClient

DEFAULT_TAG = "market-forecast"
DEFAULT_DAILY_FLOW = "daily-forecast"
# Longer than the Prefect server's SQLite busy timeout (60 s): a server stalled on a locked database
# also holds back the hook's alert.sent event, and a shorter wait sends a second e-mail beside it.
DEFAULT_HOOK_GRACE = timedelta(seconds=90)
DEFAULT_DEADLINE = timedelta(minutes=120)
MIN_WITHIN = timedelta(seconds=10)  # Prefect's minimum for a proactive trigger

FAILURE_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
TERMINAL_EVENTS = FAILURE_EVENTS | {"prefect.flow-run.Completed", "prefect.flow-run.Cancelled"}
DEADLINE_START_EVENTS = {"prefect.flow-run.Late", "prefect.flow-run.Running"}

FAILURE_SUBJECT = "{{ flow.name }}: run {{ flow_run.name }} {{ flow_run.state.name }}"
FAILURE_BODY = """\
The flow run {{ flow_run.name }} of {{ flow.name }} ended {{ flow_run.state.name }}, and no alert came \
from inside the run: its process was killed or lost, its code could not be loaded, or its own alert \
could not be sent.

Flow:         {{ flow.name }}
Flow run:     {{ flow_run.name }} (id {{ flow_run.id }})
Deployment:   {{ flow.name }}/{{ deployment.name }}
as_of:        {{ flow_run.parameters.as_of or 'None (today in New York)' }}
Run in UI:    {{ flow_run|ui_url or 'no link: PREFECT_UI_URL is not set on the server' }}

State message:
{{ flow_run.state.message }}

Nothing was published by this run; latest.json still points at the last complete run.
"""

DEADLINE_SUBJECT = "{{ flow.name }}: run {{ flow_run.name }} not completed by its deadline"
DEADLINE_BODY = """\
The flow run {{ flow_run.name }} of {{ flow.name }} has not finished within __DEADLINE__ of going Late \
(not started on time) or starting to run. Last seen: {{ flow_run.state.name }} at {{ flow_run.state.timestamp }}.

Flow:            {{ flow.name }}
Flow run:        {{ flow_run.name }} (id {{ flow_run.id }})
Deployment:      {{ flow.name }}/{{ deployment.name }}
Scheduled start: {{ flow_run.expected_start_time }}
Work pool:       {{ work_pool.name }}
Run in UI:       {{ flow_run|ui_url or 'no link: PREFECT_UI_URL is not set on the server' }}

A Late run was not picked up by any worker: check that a worker polls the work pool and that the \
deployment and the pool are not paused. A run that started and is still running has hung: look at \
its logs. Power BI still shows the previous forecast.
"""


class AutomationSetupError(Exception):
    """The automations cannot be created as asked; the message says what to fix."""


def _tag_match(tag: str) -> dict[str, str | list[str]]:
    return {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"}


def _describe(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    if seconds % 60 == 0:
        return f"{seconds // 60} minute(s)"
    return f"{seconds} seconds"


def failure_automation(
    *, block_document_id: UUID, tag: str = DEFAULT_TAG, hook_grace: timedelta = DEFAULT_HOOK_GRACE
) -> Automation:
    """The automation notifying about Failed/Crashed/TimedOut runs whose in-run alert did not go out."""
    return Automation(
        name=f"{tag}: run failed, crashed or timed out",
        description=(
            f"Notifies when a flow run tagged {tag!r} ends Failed, Crashed or TimedOut and its in-run "
            f"failure hook did not report a sent alert ({ALERT_SENT_EVENT}) within {_describe(hook_grace)}. "
            "Managed by `python -m blocks automations`."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=_tag_match(tag),
            after=set(FAILURE_EVENTS),
            expect={ALERT_SENT_EVENT},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=hook_grace,
        ),
        actions=[SendNotification(block_document_id=block_document_id, subject=FAILURE_SUBJECT, body=FAILURE_BODY)],
    )


def deadline_automation(
    *,
    block_document_id: UUID,
    tag: str = DEFAULT_TAG,
    flow_name: str = DEFAULT_DAILY_FLOW,
    deadline: timedelta = DEFAULT_DEADLINE,
) -> Automation:
    """The automation notifying when a run of `flow_name` is not finished `deadline` after going Late or Running."""
    return Automation(
        name=f"{tag}: {flow_name} not completed by its deadline",
        description=(
            f"Notifies when a run of {flow_name!r} tagged {tag!r} has not reached a final state "
            f"{_describe(deadline)} after it became Late (not started on time) or started Running. "
            "Managed by `python -m blocks automations`."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=[_tag_match(tag), {"prefect.resource.role": "flow", "prefect.resource.name": flow_name}],
            after=set(DEADLINE_START_EVENTS),
            expect=set(TERMINAL_EVENTS),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=deadline,
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject=DEADLINE_SUBJECT,
                body=DEADLINE_BODY.replace("__DEADLINE__", _describe(deadline)),
            )
        ],
    )


def _without_ids(value: object) -> object:
    """JSON of an automation without generated ids, sets (after/expect/for_each) in sorted order."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        items = [_without_ids(v) for v in value]
        return sorted(items) if all(isinstance(v, str) for v in items) else items  # type: ignore[type-var]
    return value


def _same(existing: AutomationCore, wanted: Automation) -> bool:
    keys = {"name", "description", "enabled", "trigger", "actions", "actions_on_trigger", "actions_on_resolve"}
    left = _without_ids(AutomationCore(**existing.model_dump(include=keys)).model_dump(mode="json", include=keys))
    right = _without_ids(AutomationCore(**wanted.model_dump(include=keys)).model_dump(mode="json", include=keys))
    return left == right


async def resolve_notification_block(client: PrefectClient, reference: str) -> UUID:
    """The block document id of '<block-type-slug>/<name>', checked to be able to notify.

    Raises:
        AutomationSetupError: malformed reference, no such block, or a block that cannot notify.
    """
    from prefect.exceptions import ObjectNotFound

    slug, sep, name = reference.partition("/")
    if not sep or not slug or not name:
        raise AutomationSetupError(
            f"--notify-block {reference!r} must be '<block-type-slug>/<name>', e.g. {DEFAULT_ALERT_BLOCK!r} "
            "or 'slack-webhook/ops-channel'."
        )
    try:
        document = await client.read_block_document_by_name(name=name, block_type_slug=slug, include_secrets=False)
    except ObjectNotFound:
        raise AutomationSetupError(
            f"No block {reference!r} exists on this Prefect server. Create the e-mail alerts with "
            "`python -m blocks setup` (EMAIL_HOST and NOTIFICATION_EMAIL), or a Slack/Teams/webhook "
            "notification block in the UI (Blocks > +), then run this command again."
        ) from None
    capabilities = document.block_schema.capabilities if document.block_schema else []
    if "notify" not in capabilities:
        raise AutomationSetupError(
            f"Block {reference!r} cannot send notifications (capabilities: {capabilities or 'none'}); "
            "use an e-mail alerts, Slack, Microsoft Teams or custom webhook block."
        )
    return document.id


async def apply_automations(client: PrefectClient, automations: Sequence[Automation]) -> list[tuple[str, str]]:
    """Create, update or keep each automation, matched by name; delete duplicates of a name.

    An automation paused in the UI stays paused (its definition is still brought up to date).

    Returns:
        (action, name) per automation; action is 'created', 'updated' or 'unchanged', plus
        ' (removed N duplicate(s))' when there were several with the name, and ' (paused: resume it
        in the UI)' when it is paused.
    """
    results: list[tuple[str, str]] = []
    for automation in automations:
        existing = await client.read_automations_by_name(name=automation.name)
        if not existing:
            await client.create_automation(automation=AutomationCore(**automation.model_dump(exclude={"id"})))
            results.append(("created", automation.name))
            continue
        keep, *duplicates = sorted(existing, key=lambda a: str(a.id))
        for duplicate in duplicates:
            await client.delete_automation(duplicate.id)
        wanted = automation.model_copy(update={"enabled": keep.enabled})  # a pause in the UI is the user's call
        if _same(keep, wanted):
            action = "unchanged"
        else:
            # As Automation.aupdate does: the update endpoint rejects owner_resource.
            update = AutomationCore(**wanted.model_dump(exclude={"id", "owner_resource"}))
            await client.update_automation(automation_id=keep.id, automation=update)
            action = "updated"
        if duplicates:
            action += f" (removed {len(duplicates)} duplicate(s))"
        if not keep.enabled:
            action += " (paused: resume it in the UI)"
        results.append((action, wanted.name))
    return results


async def setup_automations(
    *,
    notify_block: str = DEFAULT_ALERT_BLOCK,
    tag: str = DEFAULT_TAG,
    daily_flow: str = DEFAULT_DAILY_FLOW,
    hook_grace: timedelta = DEFAULT_HOOK_GRACE,
    deadline: timedelta = DEFAULT_DEADLINE,
) -> list[tuple[str, str]]:
    """Create or update both automations on the server PREFECT_API_URL points at.

    Raises:
        AutomationSetupError: a bad option or a missing notification block.
    """
    from prefect.client.orchestration import get_client

    for option, value in (("--hook-grace-seconds", hook_grace), ("--deadline-minutes", deadline)):
        if value < MIN_WITHIN:
            raise AutomationSetupError(
                f"{option} must be at least 10 seconds (Prefect's minimum for a proactive trigger)"
            )
    if not tag.strip() or not daily_flow.strip():
        raise AutomationSetupError("--tag and --daily-flow must not be empty")
    async with get_client() as client:
        block_id = await resolve_notification_block(client, notify_block)
        automations = [
            failure_automation(block_document_id=block_id, tag=tag, hook_grace=hook_grace),
            deadline_automation(block_document_id=block_id, tag=tag, flow_name=daily_flow, deadline=deadline),
        ]
        return await apply_automations(client, automations)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `automations` command's options."""
    parser.add_argument(
        "--notify-block",
        default=DEFAULT_ALERT_BLOCK,
        help=f"notification block '<type-slug>/<name>' (default {DEFAULT_ALERT_BLOCK})",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"tag of the deployments to watch (default {DEFAULT_TAG})")
    parser.add_argument(
        "--daily-flow",
        default=DEFAULT_DAILY_FLOW,
        help=f"flow whose runs have a deadline (default {DEFAULT_DAILY_FLOW})",
    )
    parser.add_argument(
        "--deadline-minutes",
        type=float,
        default=DEFAULT_DEADLINE.total_seconds() / 60,
        help="minutes a daily run may take from going Late or starting until it is finished (default 120)",
    )
    parser.add_argument(
        "--hook-grace-seconds",
        type=float,
        default=DEFAULT_HOOK_GRACE.total_seconds(),
        help="seconds the failure automation waits for the in-run alert before sending its own "
        f"(default {DEFAULT_HOOK_GRACE.total_seconds():g})",
    )


def run_automations(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    """The `automations` command. Returns the exit code (0 done, 2 a bad option or missing block)."""
    from prefect.settings import get_current_settings

    try:
        results = asyncio.run(
            setup_automations(
                notify_block=args.notify_block,
                tag=args.tag,
                daily_flow=args.daily_flow,
                hook_grace=timedelta(seconds=args.hook_grace_seconds),
                deadline=timedelta(minutes=args.deadline_minutes),
            )
        )
    except AutomationSetupError as exc:
        print(f"Nothing was changed: {exc}", file=out)
        return 2
    url = get_current_settings().api.url
    print(f"Prefect API: {redact(url) if url else 'local ephemeral server'}", file=out)
    for action, name in results:
        print(f"  {action:<10} automation {name!r}", file=out)
    print(f"Notifications go through {args.notify_block}; deployments must carry the tag {args.tag!r}.", file=out)
    return 0

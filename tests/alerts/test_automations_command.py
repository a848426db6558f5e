"""`python -m blocks automations` run again and again against a real Prefect server: one automation
per name, updated in place, and a pause made in the UI left alone.

The command runs as a subprocess, as a user runs it, for a tag of its own and a webhook block (any
block that can notify), so the alert stack's automations and blocks are not touched.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events.schemas.automations import AutomationCore

from tests.alerts.stack import delete_automations, run_blocks_command

TAG = "automations-command-test"


@pytest.fixture(scope="module")
def notify_block(prefect_server: Any) -> Iterator[str]:
    name = f"automations-test-{uuid.uuid4().hex[:8]}"
    with prefect_server.settings():
        CustomWebhookNotificationBlock(name="test", url="http://127.0.0.1:9/hook").save(name, overwrite=True)
    delete_automations(prefect_server, TAG)
    yield f"{CustomWebhookNotificationBlock.get_block_type_slug()}/{name}"
    delete_automations(prefect_server, TAG)
    with prefect_server.client() as client:
        client.delete_block_document(client.read_block_document_by_name(name, "custom-webhook").id)


def run(server: Any, block: str, *options: str) -> dict[str, str]:
    """Run the command; each automation's name -> the action it printed."""
    done = run_blocks_command(server, "automations", "--tag", TAG, "--notify-block", block, *options)
    assert done.returncode == 0, done.stdout + done.stderr
    return {
        name: action.strip()
        for action, name in re.findall(r"^  (.+?) automation '(.+)'$", done.stdout, flags=re.MULTILINE)
    }


def ours(server: Any) -> dict[str, list[Any]]:
    """The automations of the test's tag on the server, by name."""
    with server.client() as client:
        found: dict[str, list[Any]] = {}
        for automation in client.read_automations():
            if automation.name.startswith(f"{TAG}: "):
                found.setdefault(automation.name, []).append(automation)
        return found


def test_automations_are_created_once_and_updated_in_place(prefect_server: Any, notify_block: str) -> None:
    first = run(prefect_server, notify_block)
    assert sorted(first.values()) == ["created", "created"]
    created = {name: [a.id for a in automations] for name, automations in ours(prefect_server).items()}
    assert created.keys() == first.keys() and all(len(ids) == 1 for ids in created.values())

    assert set(run(prefect_server, notify_block).values()) == {"unchanged"}

    changed = run(prefect_server, notify_block, "--deadline-minutes", "45")
    deadline = next(name for name in changed if "deadline" in name)
    assert changed[deadline] == "updated" and set(changed.values()) == {"updated", "unchanged"}
    after = ours(prefect_server)
    assert {name: [a.id for a in automations] for name, automations in after.items()} == created  # same ones
    assert after[deadline][0].trigger.within.total_seconds() == 45 * 60


def test_a_second_copy_of_an_automation_is_removed(prefect_server: Any, notify_block: str) -> None:
    run(prefect_server, notify_block)
    name, (original,) = next(iter(ours(prefect_server).items()))
    with prefect_server.client() as client:  # e.g. made by hand in the UI, or by an older version
        copy_id = client.create_automation(AutomationCore(**original.model_dump(exclude={"id"})))
    assert len(ours(prefect_server)[name]) == 2

    assert run(prefect_server, notify_block)[name] == "unchanged (removed 1 duplicate(s))"
    assert [a.id for a in ours(prefect_server)[name]] == [min(original.id, copy_id, key=str)]


def test_an_automation_paused_in_the_ui_stays_paused(prefect_server: Any, notify_block: str) -> None:
    run(prefect_server, notify_block)
    name, (automation,) = next(iter(ours(prefect_server).items()))
    with prefect_server.client() as client:
        client.pause_automation(automation.id)
    try:
        again = run(prefect_server, notify_block)
        assert again[name] == "unchanged (paused: resume it in the UI)"
        assert not ours(prefect_server)[name][0].enabled
        # A change of its definition still reaches it, and it stays paused.
        changed = run(prefect_server, notify_block, "--hook-grace-seconds", "60", "--deadline-minutes", "50")
        assert changed[name] == "updated (paused: resume it in the UI)"
        assert not ours(prefect_server)[name][0].enabled
        assert all(a.enabled for other, (a,) in ours(prefect_server).items() if other != name)
    finally:
        with prefect_server.client() as client:
            client.resume_automation(automation.id)

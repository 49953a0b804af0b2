"""Who may see and reach what: runs follow their channel, schedules their owners, tools the
requester. Signed requests into a real Baton, the Slack stand-in answering
`conversations.members`, a real SQLite database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.permissions import CANT_SHOW
from sandbox.web_api import SlackStandIn
from sandbox.workspace import DEFAULT_CHANNELS, DEFAULT_USERS, Channel, User
from storage import runs, schedules
from storage.models import Schedule
from testkit.harness import Bot, running_bot
from tests.trust_helpers import answers

CAROL = User("U0CAROL", "carol", "Carol")
# #exec: Alice and Carol are in it, Bob is not.
EXEC = Channel("C0EXEC", "exec", is_private=True, members=("U0ALICE", "U0CAROL"))

CATALOG = """
agents:
  - name: channel-reader
    description: Reads a channel's recent messages.
    model: rules
    tools: [slack_history]
    triggers: ['<#C\\w+']
    reach: {read_channels: ['*']}
  - name: narrow-reader
    description: Reads only the request's own channel.
    model: rules
    tools: [slack_history]
playbooks:
  - name: read-exec
    description: Read #exec.
    tasks:
      - {id: read, agent: channel-reader, instruction: 'Read <#C0EXEC>'}
  - name: read-exec-narrowly
    description: Read #exec with a specialist whose reach is its own channel.
    tasks:
      - {id: read, agent: narrow-reader, instruction: 'Read <#C0EXEC>'}
"""


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(
        users=(*DEFAULT_USERS, CAROL), channels=(*DEFAULT_CHANNELS, EXEC)
    ) as standin:
        yield standin


@pytest.fixture
async def bot(slack: SlackStandIn, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Bot]:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG)
    async with running_bot(
        slack, sqlite_url, baton_agents_file=catalog, baton_admins=["U0CAROL"]
    ) as b:
        yield b


async def dm_run(bot: Bot) -> str:
    """Alice asks in her DM with Baton; the run's id."""
    await bot.dm("what is 17% of 2340", user="U0ALICE")
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="D0ALICE")
    assert run is not None
    return run.id


async def test_a_dm_runs_status_asked_from_another_channel_by_someone_else_reveals_nothing(
    bot: Bot,
) -> None:
    run_id = await dm_run(bot)

    _, seen_by_bob = await bot.slash(f"status {run_id}", user="U0BOB", channel="C0GENERAL")
    _, no_such_run = await bot.slash("status 0badc0de", user="U0BOB", channel="C0GENERAL")
    _, cancel_by_bob = await bot.slash(f"cancel {run_id}", user="U0BOB", channel="C0GENERAL")

    assert seen_by_bob is not None
    assert (seen_by_bob["response_type"], seen_by_bob["text"]) == ("ephemeral", CANT_SHOW)
    assert "blocks" not in seen_by_bob
    # Word for word what a run that does not exist gets: not even its existence is revealed.
    assert no_such_run == seen_by_bob
    assert cancel_by_bob is not None and cancel_by_bob["text"] == CANT_SHOW
    assert "17" not in json.dumps(seen_by_bob)


async def test_a_run_is_shown_to_its_requester_and_admins_anywhere_and_in_its_own_channel(
    bot: Bot,
) -> None:
    run_id = await dm_run(bot)

    _, by_alice = await bot.slash(f"status {run_id}", user="U0ALICE", channel="C0GENERAL")
    _, by_admin = await bot.slash(f"status {run_id}", user="U0CAROL", channel="C0RANDOM")
    _, in_its_dm = await bot.slash("status", user="U0ALICE", channel="D0ALICE")

    for reply in (by_alice, by_admin, in_its_dm):
        assert reply is not None and reply["text"].startswith(f"Run {run_id}: ")
        assert "blocks" in reply


async def home_of(bot: Bot, user: str) -> str:
    before = len(bot.slack.calls_to("views.publish"))
    await bot.event(
        {"type": "app_home_opened", "user": user, "channel": f"D{user[1:]}", "tab": "home"}
    )
    await bot.idle()
    [published] = bot.slack.calls_to("views.publish")[before:]
    assert published.args["user_id"] == user
    return json.dumps(published.args["view"], ensure_ascii=False)


async def test_the_home_tab_shows_a_person_their_own_runs_only(bot: Bot) -> None:
    run_id = await dm_run(bot)

    alice, bob = await home_of(bot, "U0ALICE"), await home_of(bot, "U0BOB")

    assert run_id in alice and "17% of 2340" in alice
    assert run_id not in bob and "2340" not in bob


async def exec_schedule(bot: Bot) -> Schedule:
    """Alice schedules a digest in #exec."""
    _, made = await bot.slash(
        'schedule add "every day at 09:00" check https://example.com',
        user="U0ALICE",
        channel="C0EXEC",
    )
    assert made is not None and made["text"].startswith("Scheduled ")
    [schedule] = await schedules.in_channel(bot.baton.db, "C0EXEC")
    return schedule


@pytest.mark.parametrize("verb", ["pause", "resume", "delete", "run"])
async def test_someone_outside_a_schedules_channel_cannot_change_it(
    bot: Bot, slack: SlackStandIn, verb: str
) -> None:
    schedule = await exec_schedule(bot)

    _, reply = await bot.slash(f"schedule {verb} {schedule.id}", user="U0BOB")

    assert reply is not None and reply["text"] == (
        f"You can't {verb} schedule `{schedule.id}`: only the person who made it, members of "
        "<#C0EXEC> (where it posts) and Baton admins can. Nothing was changed."
    )
    after = await schedules.get(bot.baton.db, schedule.id)
    assert after is not None and after.paused == schedule.paused
    assert after.updated_at == schedule.updated_at
    assert await schedules.recent_fires(bot.baton.db, schedule.id) == []
    assert await runs.latest_run(bot.baton.db, channel_id="C0EXEC") is None
    trail = await schedules.audit_trail(bot.baton.db, schedule.id)
    assert [(e.kind, (e.data or {}).get("by")) for e in trail] == [("schedule_created", "U0ALICE")]
    # Membership was asked of Slack (after the ack), for the schedule's own channel.
    assert [c.args.get("channel") for c in slack.calls_to("conversations.members")] == ["C0EXEC"]


async def test_the_channels_members_and_admins_manage_a_schedule_and_each_change_is_audited(
    bot: Bot, slack: SlackStandIn
) -> None:
    schedule = await exec_schedule(bot)

    # Carol is a member of #exec; Alice made the schedule.
    _, paused = await bot.slash(f"schedule pause {schedule.id}", user="U0CAROL")
    _, resumed = await bot.slash(f"schedule resume {schedule.id}", user="U0ALICE")
    _, deleted = await bot.slash(f"schedule delete {schedule.id}", user="U0CAROL")

    assert paused is not None and paused["text"].startswith("⏸️ Paused schedule")
    assert resumed is not None and resumed["text"].startswith("▶️ Resumed schedule")
    assert deleted is not None and deleted["text"].startswith("🗑️ Deleted schedule")
    assert await schedules.get(bot.baton.db, schedule.id) is None
    trail = await schedules.audit_trail(bot.baton.db, schedule.id)
    assert [(e.kind, (e.data or {}).get("by")) for e in trail] == [
        ("schedule_created", "U0ALICE"),
        ("schedule_paused", "U0CAROL"),
        ("schedule_resumed", "U0ALICE"),
        ("schedule_deleted", "U0CAROL"),
    ]
    # The creator needed no lookup; Carol's two checks were one call (cached briefly).
    assert len(slack.calls_to("conversations.members")) == 1


async def test_an_admin_outside_the_channel_may_manage_a_schedule(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_bot(slack, sqlite_url, baton_admins=["U0BOB"]) as bot:
        schedule = await exec_schedule(bot)

        _, reply = await bot.slash(f"schedule pause {schedule.id}", user="U0BOB")

        assert reply is not None and reply["text"].startswith("⏸️ Paused schedule")
        after = await schedules.get(bot.baton.db, schedule.id)
        assert after is not None and after.paused


async def test_slack_history_does_not_read_a_channel_the_requester_is_not_in(
    bot: Bot, slack: SlackStandIn
) -> None:
    await slack.post_as_user("C0EXEC", "U0ALICE", "Q3 numbers are confidential")

    await bot.slash("run read-exec", user="U0BOB", channel="C0GENERAL")
    await bot.idle()

    assert slack.calls_to("conversations.history") == []
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    [task] = await runs.list_tasks(bot.baton.db, run.id)
    assert task.status.value == "failed"
    [answer] = answers(slack, run.id)
    shown = answer.text + json.dumps(answer.blocks, ensure_ascii=False)
    assert "not a member of <#C0EXEC>" in shown
    assert "confidential" not in shown


async def test_slack_history_reads_another_channel_for_a_member_when_the_catalog_allows_it(
    bot: Bot, slack: SlackStandIn
) -> None:
    await slack.post_as_user("C0EXEC", "U0ALICE", "Q3 numbers are in")

    await bot.slash("run read-exec", user="U0ALICE", channel="C0GENERAL")
    await bot.idle()
    await bot.slash("run read-exec-narrowly", user="U0ALICE", channel="C0GENERAL")
    await bot.idle()

    # Only the widened specialist read #exec; the narrow one was refused before any call.
    assert [c.args.get("channel") for c in slack.calls_to("conversations.history")] == ["C0EXEC"]
    latest = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert latest is not None
    [narrow] = await runs.list_tasks(bot.baton.db, latest.id)
    assert narrow.status.value != "succeeded"
    events = json.dumps([e.data for e in await runs.events(bot.baton.db, latest.id)])
    assert "may read only the channel the request was made in" in events


async def test_channel_members_are_remembered_for_a_minute_and_a_refusal_lets_nobody_in(
    slack: SlackStandIn,
) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.members import ChannelMembers

    now = [0.0]
    members = ChannelMembers(
        AsyncWebClient(token=slack.token, base_url=slack.api_url), clock=lambda: now[0]
    )

    assert await members.has("C0EXEC", "U0ALICE") and not await members.has("C0EXEC", "U0BOB")
    now[0] = 59.0
    assert await members.has("C0EXEC", "U0CAROL")
    assert len(slack.calls_to("conversations.members")) == 1
    now[0] = 61.0
    slack.fail("conversations.members", "channel_not_found")
    assert not await members.has("C0EXEC", "U0ALICE")
    assert len(slack.calls_to("conversations.members")) == 2

"""Approval policies from the catalog, as the people in the thread meet them: who may decide,
how many must, escalation, approving for the run, editing a call before approving it, and
approvers who are not in the channel."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from agents.errors import CatalogError
from agents.spec import parse_catalog
from agents.tools.registry import tool_names
from bot import approval_blocks as ui
from bot.transports import sweep
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import approvals, runs, tool_calls
from storage.clock import MovedClock
from storage.models import ApprovalStatus, RunStatus
from testkit.harness import Bot, running_bot

CATALOG = """
agents:
  - name: announcer
    description: Posts messages to channels.
    model: rules
    tools: [post_message]
    reach: {post_channels: [C0RANDOM]}
playbooks:
  - name: announce
    description: Announce a deploy.
    tasks:
      - id: post
        agent: announcer
        instruction: 'Post "Deploy finished" to <#C0RANDOM>'
  - name: announce-twice
    description: The same announcement twice, then another one.
    tasks:
      - {id: first, agent: announcer, instruction: 'Post "Deploy finished" to <#C0RANDOM>'}
      - {id: again, agent: announcer, instruction: 'Post "Deploy finished" to <#C0RANDOM>',
         depends_on: [first]}
      - {id: other, agent: announcer, instruction: 'Post "Rollback done" to <#C0RANDOM>',
         depends_on: [again]}
  - name: announce-by-two
    description: An announcement two people must approve.
    tasks:
      - id: post
        agent: announcer
        instruction: 'Post "Deploy finished" to <#C0RANDOM>'
        approval: {approvers: [U0ALICE, U0BOB], quorum: 2, self_approval: true}
approvals:
POLICY
"""


def write_catalog(tmp_path: Path, policy: str) -> Path:
    path = tmp_path / "agents.yml"
    path.write_text(CATALOG.replace("POLICY", "".join(f"  {ln}\n" for ln in policy.splitlines())))
    return path


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


def approval_messages(slack: SlackStandIn, channel: str = "C0GENERAL") -> list[Message]:
    return [
        m
        for m in slack.messages(channel)
        if m.blocks
        and any(
            b.get("type") == "actions" and str(b.get("block_id", "")).startswith("approval:")
            for b in m.blocks
        )
    ]


def value_of(message: Message) -> str:
    actions = next(b for b in message.blocks if b.get("type") == "actions")
    return str(actions["elements"][0]["value"])


def posted_in_random(slack: SlackStandIn) -> list[str]:
    return [m.text for m in slack.messages("C0RANDOM")]


def notes_for(slack: SlackStandIn, user: str, channel: str = "C0GENERAL") -> list[Message]:
    return [m for m in slack.messages(channel) if m.ephemeral_for == user]


async def start(bot: Bot, playbook: str, *, user: str = "U0ALICE") -> str:
    await bot.slash(f"run {playbook}", user=user)
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    return run.id


async def thread_of(bot: Bot, run_id: str) -> str:
    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.thread_ts is not None
    return run.thread_ts


async def test_the_requester_cannot_approve_their_own_call_and_is_told_in_the_thread(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0ALICE, U0BOB]")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce")
        [message] = approval_messages(slack)
        assert "<@U0ALICE> asked, so cannot approve" in json.dumps(message.blocks)

        await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
        await bot.idle()
        [note] = notes_for(slack, "U0ALICE")
        assert note.text == (
            "You asked for this, so someone else must approve it: <@U0BOB> can. "
            "Nothing was changed."
        )
        assert note.thread_ts == await thread_of(bot, run_id)
        [approval] = await approvals.for_run(bot.baton.db, run_id)
        assert approval.status == ApprovalStatus.PENDING and posted_in_random(slack) == []

        await bot.click(ui.APPROVE, value_of(message), user="U0BOB", message=message)
        await bot.idle()
        run = await runs.get_run(bot.baton.db, run_id)
    assert posted_in_random(slack) == ["Deploy finished"]
    assert run is not None and run.status == RunStatus.SUCCEEDED


async def test_a_quorum_of_two_needs_two_different_people(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0ALICE]")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce-by-two")
        [message] = approval_messages(slack)
        value = value_of(message)
        assert "2 different people must approve" in json.dumps(message.blocks)

        await bot.click(ui.APPROVE, value, user="U0ALICE", message=message)
        await bot.idle()
        await bot.click(ui.APPROVE, value, user="U0ALICE", message=message)  # counts once
        await bot.idle()
        [approval] = await approvals.for_run(bot.baton.db, run_id)
        assert approval.status == ApprovalStatus.PENDING and posted_in_random(slack) == []
        assert [n.text for n in notes_for(slack, "U0ALICE")] == [
            "Your approval is counted (1 of 2); it needs more people before anything happens.",
            "Your approval was already counted; it needs someone else's too.",
        ]
        shown = json.dumps(slack.workspace.message("C0GENERAL", message.ts).blocks)
        assert "so far: <@U0ALICE>" in shown and "Approve" in shown

        await bot.click(ui.APPROVE, value, user="U0BOB", message=message)
        await bot.idle()
        [approval] = await approvals.for_run(bot.baton.db, run_id)
        assert await approvals.votes(bot.baton.db, approval.id) == ["U0ALICE", "U0BOB"]
    assert approval.status == ApprovalStatus.APPROVED and approval.decided_by == "U0BOB"
    assert posted_in_random(slack) == ["Deploy finished"]


async def test_an_undecided_approval_is_escalated_after_its_time_by_the_sweep(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    slack.workspace.usergroups["S0LEADS"] = ["U0BOB"]
    catalog = write_catalog(
        tmp_path,
        "approvers: [U0ALICE]\nescalate_after: 30m\nescalate_to: [S0LEADS]",
    )
    clock = MovedClock()
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog, clock=clock) as bot:
        run_id = await start(bot, "announce")
        [message] = approval_messages(slack)
        assert "goes to <!subteam^S0LEADS>" in json.dumps(message.blocks)

        clock.move(timedelta(minutes=29))
        await sweep(bot.baton)
        await bot.idle()
        assert not await _events(bot, run_id, "approval_escalated")
        await bot.click(ui.APPROVE, value_of(message), user="U0BOB", message=message)
        await bot.idle()
        assert "You cannot approve or reject this" in notes_for(slack, "U0BOB")[0].text

        clock.move(timedelta(minutes=2))
        await sweep(bot.baton)
        await bot.idle()
        await sweep(bot.baton)  # a second sweep escalates nothing more
        await bot.idle()
        assert len(await _events(bot, run_id, "approval_escalated")) == 1
        thread = bot.thread(slack.messages("C0GENERAL")[0])
        [said] = [m.text for m in thread if "escalated" in m.text]
        assert "<!subteam^S0LEADS>" in said
        [dm] = approval_messages(slack, "D0BOB")
        assert value_of(dm) == value_of(message)
        assert "escalated to <!subteam^S0LEADS>" in json.dumps(dm.blocks)

        await bot.click(ui.APPROVE, value_of(dm), user="U0BOB", message=dm)
        await bot.idle()
        run = await runs.get_run(bot.baton.db, run_id)
    assert posted_in_random(slack) == ["Deploy finished"]
    assert run is not None and run.status == RunStatus.SUCCEEDED
    # Both the thread's request and the DM copy now say who approved, without buttons.
    for channel, ts in (("C0GENERAL", message.ts), ("D0BOB", dm.ts)):
        decided = slack.workspace.message(channel, ts)
        assert "Approved by <@U0BOB>" in json.dumps(decided.blocks)
        assert not any(b["type"] == "actions" for b in decided.blocks)


async def _events(bot: Bot, run_id: str, kind: str) -> list[dict[str, object]]:
    return [e.data or {} for e in await runs.events(bot.baton.db, run_id) if e.kind == kind]


async def test_approve_for_this_run_passes_the_identical_call_only(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0BOB]")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce-twice")
        [first] = approval_messages(slack)
        await bot.click(ui.APPROVE_FOR_RUN, value_of(first), user="U0BOB", message=first)
        await bot.idle()

        assert posted_in_random(slack) == ["Deploy finished", "Deploy finished"]
        waiting = approval_messages(slack)
        assert len(waiting) == 1 and "Rollback done" in json.dumps(waiting[0].blocks)
        [granted] = await _events(bot, run_id, "approval_granted_for_run")
        gates = await approvals.for_run(bot.baton.db, run_id)
        assert granted["grant"] == gates[0].id and granted["by"] == "U0BOB"
        assert [a.task_id for a in gates] == ["first", "again", "other"]
        assert "for the rest of this run" in json.dumps(
            slack.workspace.message("C0GENERAL", first.ts).blocks
        )

        await bot.click(ui.APPROVE, value_of(waiting[0]), user="U0BOB", message=waiting[0])
        await bot.idle()
        run = await runs.get_run(bot.baton.db, run_id)
        performed = await tool_calls.for_run(bot.baton.db, run_id)
        _, audit = await bot.slash(f"audit {run_id}")
    assert audit is not None
    trail = json.dumps(audit["blocks"], ensure_ascii=False)
    assert "approved by <@U0BOB> for the rest of the run" in trail
    assert "`again`: `post_message`" in trail and "passed without asking" in trail
    assert posted_in_random(slack) == ["Deploy finished", "Deploy finished", "Rollback done"]
    assert len(performed) == 3
    assert run is not None and run.status == RunStatus.SUCCEEDED


async def test_edit_and_approve_runs_the_edited_call_once_and_the_audit_keeps_both(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0BOB]")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce")
        [message] = approval_messages(slack)
        await bot.click(ui.EDIT, value_of(message), user="U0BOB", message=message)
        await bot.idle()
        [opened] = slack.calls_to("views.open")
        view = opened.args["view"]
        initial = {
            b["block_id"]: b["element"].get("initial_value")
            for b in view["blocks"]
            if b["type"] == "input"
        }
        assert initial == {"arg:channel": "C0RANDOM", "arg:text": "Deploy finished"}

        def values(text: str) -> dict[str, object]:
            return {
                "arg:channel": {ui.EDIT_INPUT: {"type": "plain_text_input", "value": "C0RANDOM"}},
                "arg:text": {ui.EDIT_INPUT: {"type": "plain_text_input", "value": text}},
            }

        form = {"callback_id": ui.EDIT_CALLBACK, "private_metadata": view["private_metadata"]}
        status, errors = await bot.submit(user="U0BOB", view=form, values=values(""))
        assert status == 200 and errors is not None and "arg:text" in errors["errors"]
        await bot.idle()
        assert posted_in_random(slack) == []

        for _ in range(2):  # a second submission decides nothing more
            await bot.submit(user="U0BOB", view=form, values=values("Deploy finished at 10:00"))
            await bot.idle()
        [approval] = await approvals.for_run(bot.baton.db, run_id)
        [approved] = await _events(bot, run_id, "approval_approved")
        run = await runs.get_run(bot.baton.db, run_id)
    assert posted_in_random(slack) == ["Deploy finished at 10:00"]
    assert approval.tool_args == {"channel": "C0RANDOM", "text": "Deploy finished"}
    assert approval.edited_args == {"channel": "C0RANDOM", "text": "Deploy finished at 10:00"}
    assert approved["asked_args"] == approval.tool_args
    assert approved["edited_args"] == approval.edited_args
    assert run is not None and run.status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("button", [ui.REJECT_WITH_REASON, ui.EDIT])
async def test_someone_who_may_not_decide_gets_no_form_and_a_note_in_the_thread(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, button: str
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0ALICE]")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce")
        [message] = approval_messages(slack)
        await bot.click(button, value_of(message), user="U0BOB", message=message)
        await bot.idle()
        [note] = notes_for(slack, "U0BOB")
        thread = await thread_of(bot, run_id)
        [approval] = await approvals.for_run(bot.baton.db, run_id)
    assert slack.calls_to("views.open") == []
    assert note.text == "You cannot approve or reject this: <@U0ALICE> can. Nothing was changed."
    assert note.thread_ts == thread
    assert approval.status == ApprovalStatus.PENDING


async def test_an_approver_who_is_not_in_the_channel_gets_the_request_by_dm(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    slack.workspace.channel_members["C0GENERAL"] = ["U0ALICE"]
    catalog = write_catalog(tmp_path, "approvers: [U0ALICE, U0BOB]\nself_approval: true")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce")
        [in_thread] = approval_messages(slack)
        assert [c.args.get("users") for c in slack.calls_to("conversations.open")] == ["U0BOB"]
        assert approval_messages(slack, "D0ALICE") == []
        [dm] = approval_messages(slack, "D0BOB")
        assert "*text*: Deploy finished" in json.dumps(dm.blocks)

        await bot.click(ui.APPROVE, value_of(dm), user="U0BOB", message=dm)
        await bot.idle()
        run = await runs.get_run(bot.baton.db, run_id)
    assert posted_in_random(slack) == ["Deploy finished"]
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert "Approved by <@U0BOB>" in json.dumps(
        slack.workspace.message("C0GENERAL", in_thread.ts).blocks
    )


def test_a_policy_with_a_bad_duration_is_refused_with_a_sentence() -> None:
    text = (
        "agents:\n  - {name: a, description: A., model: rules, tools: [post_message]}\n"
        "approvals:\n  tools:\n    post_message: {approvers: [U0BOB], escalate_after: soon}\n"
    )
    with pytest.raises(CatalogError) as e:
        parse_catalog(text, source="agents.yml", known_tools=tool_names())
    assert "'soon' is not a duration: write it like 90s, 30m, 2h or 1d" in str(e.value)


def test_policies_are_inherited_task_over_tool_over_global() -> None:
    from agents.spec import ApprovalPolicy

    text = (
        "agents:\n  - {name: a, description: A., model: rules, tools: [post_message]}\n"
        "approvals:\n  approvers: [U0ALICE]\n  expires_after: 2h\n"
        "  tools:\n    post_message: {approvers: [S0OPS], quorum: 2}\n"
    )
    catalog = parse_catalog(text, source="agents.yml", known_tools=tool_names())
    tool = catalog.approvals.tool_policy("post_message")
    assert tool is not None
    effective = ApprovalPolicy(quorum=3).over(tool.over(catalog.approvals))
    assert effective.approvers == ["S0OPS"] and effective.quorum == 3
    assert effective.expires_after == timedelta(hours=2)


async def test_a_tool_policy_sets_approvers_and_expiry_for_its_calls(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(
        tmp_path,
        "approvers: [U0ALICE]\ntools:\n  post_message: {approvers: [U0BOB], expires_after: 2h}",
    )
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce")
        [approval] = await approvals.for_run(bot.baton.db, run_id)
    assert approval.approvers == ["U0BOB"] and not approval.self_approval
    assert approval.expires_at - approval.requested_at == pytest.approx(
        timedelta(hours=2), abs=timedelta(seconds=5)
    )


async def test_a_vote_towards_a_quorum_survives_a_restart(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0ALICE]")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce-by-two")
        [message] = approval_messages(slack)
        await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
        await bot.idle()
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as restarted:
        await restarted.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
        await restarted.idle()
        assert posted_in_random(slack) == []  # the same person again, after the restart
        await restarted.click(ui.APPROVE, value_of(message), user="U0BOB", message=message)
        await restarted.idle()
        run = await runs.get_run(restarted.baton.db, run_id)
    assert posted_in_random(slack) == ["Deploy finished"]
    assert run is not None and run.status == RunStatus.SUCCEEDED


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("pg_url")
    return url


async def test_two_approvals_at_once_reach_the_quorum_once(
    slack: SlackStandIn, db_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0ALICE]")
    async with running_bot(slack, db_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce-by-two")
        [message] = approval_messages(slack)
        value = value_of(message)
        await asyncio.gather(
            bot.click(ui.APPROVE, value, user="U0ALICE", message=message),
            bot.click(ui.APPROVE, value, user="U0BOB", message=message),
            bot.click(ui.APPROVE, value, user="U0BOB", message=message),
        )
        await bot.idle()
        [approval] = await approvals.for_run(bot.baton.db, run_id)
        voters = await approvals.votes(bot.baton.db, approval.id)
        decided = await _events(bot, run_id, "approval_approved")
    assert sorted(voters) == ["U0ALICE", "U0BOB"] and len(decided) == 1
    assert approval.status == ApprovalStatus.APPROVED
    assert posted_in_random(slack) == ["Deploy finished"]


def bot_removed_from(channel: str, slack: SlackStandIn) -> None:
    """Someone removes Baton from the channel: Slack refuses its posts there from now on."""
    ws = slack.workspace
    ws.channels[channel] = dataclasses.replace(ws.channels[channel], bot_is_member=False)


async def test_an_approval_request_slack_refuses_in_the_thread_reaches_its_approver_by_dm(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0BOB]")
    request = slack.hold(
        "chat.postMessage", when=lambda a: str(a.get("text")).startswith("Approval needed")
    )

    async def removed_from_the_channel_meanwhile() -> None:
        await request.arrived.wait()
        bot_removed_from("C0GENERAL", slack)
        request.release()

    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        removal = asyncio.create_task(removed_from_the_channel_meanwhile())
        run_id = await start(bot, "announce")
        await removal
        assert approval_messages(slack) == []
        [dm] = approval_messages(slack, "D0BOB")
        [told] = [m.text for m in slack.messages("D0ALICE")]
        waiting = await runs.get_run(bot.baton.db, run_id)
        [not_posted] = await _events(bot, run_id, "approval_not_posted")

        await bot.click(ui.APPROVE, value_of(dm), user="U0BOB", message=dm)
        await bot.idle()
        run = await runs.get_run(bot.baton.db, run_id)
        _, audit = await bot.slash(f"audit {run_id}", user="U0ALICE")
    assert audit is not None
    assert (
        "📭 `post`: Slack refused the request in the thread (`not_in_channel`); "
        "sent by direct message to <@U0BOB>"
    ) in json.dumps(audit["blocks"], ensure_ascii=False)
    assert told == (
        f"I could not post the approval request for run `{run_id}` in <#C0GENERAL> "
        "(Slack said `not_in_channel`), so I sent it to <@U0BOB> by direct message. "
        "The run waits for their decision there."
    )
    assert not_posted["error"] == "not_in_channel" and not_posted["sent_to"] == ["U0BOB"]
    assert waiting is not None and waiting.status == RunStatus.WAITING
    assert posted_in_random(slack) == ["Deploy finished"]
    assert run is not None and run.status == RunStatus.SUCCEEDED


async def test_an_approval_request_nobody_can_be_sent_says_so_to_the_requester(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0BOB]")
    request = slack.hold(
        "chat.postMessage", when=lambda a: str(a.get("text")).startswith("Approval needed")
    )

    async def removed_and_dms_refused() -> None:
        await request.arrived.wait()
        bot_removed_from("C0GENERAL", slack)
        slack.fail("conversations.open", "user_not_found")  # Bob's DM cannot be opened
        request.release()

    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        removal = asyncio.create_task(removed_and_dms_refused())
        run_id = await start(bot, "announce")
        await removal
        [told] = [m.text for m in slack.messages("D0ALICE")]
        run = await runs.get_run(bot.baton.db, run_id)
    assert approval_messages(slack, "D0BOB") == []
    assert told.startswith(
        f"I could not post the approval request for run `{run_id}` in <#C0GENERAL> "
        "(Slack said `not_in_channel`), and nobody who may decide could be sent it, so the "
        "run cannot go on: the approval expires <!date^"
    )
    assert told.endswith(f"Stop the run now with `/baton cancel {run_id}`.")
    assert run is not None and run.status == RunStatus.WAITING

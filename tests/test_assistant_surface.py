"""Slack's AI-app surface, as people meet it: the assistant container, feedback, the Home tab.

Signed events go in through the sandbox's relay (Slack's half of the conversation); what Baton
does is read back from the Slack stand-in and the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlmodel import select

from bot import home_blocks
from bot.assistant_ui import PLANNING
from bot.blocks import FEEDBACK
from sandbox.relay import Relay
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import approvals, runs, schedules
from storage.models import ApprovalStatus, Feedback, Run, RunStatus
from testkit.databases import Site
from testkit.harness import SECRET, Bot, running_bot, wait_until

CATALOG = """
agents:
  - name: announcer
    description: Posts messages to channels.
    model: rules
    tools: [post_message]
    reach: {post_channels: ['*']}
  - name: web-checker
    description: Checks HTTP endpoints — status code and latency.
    model: rules
    tools: [http_check]
    triggers: ['https?://']
playbooks:
  - name: announce
    description: Announce a deploy in #random, once approved.
    tasks:
      - id: post
        agent: announcer
        instruction: 'Post "Deploy finished" to <#C0RANDOM>'
        requires_approval: true
approvals:
  approvers: [APPROVERS]
"""


def catalog(tmp_path: Path, approvers: str) -> Path:
    path = tmp_path / "agents.yml"
    path.write_text(CATALOG.replace("APPROVERS", approvers))
    return path


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def bot(slack: SlackStandIn, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Bot]:
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog(tmp_path, "U0BOB")) as b:
        yield b


@pytest.fixture
async def relay(bot: Bot, slack: SlackStandIn) -> AsyncIterator[Relay]:
    r = Relay(slack, events_url=f"{bot.url}/slack/events", signing_secret=SECRET)
    try:
        yield r
    finally:
        await r.aclose()


async def open_container(relay: Relay, bot: Bot, user: str = "U0ALICE") -> str:
    opened = await relay.open_assistant(user, "C0GENERAL")
    assert opened.ok and opened.ts is not None
    await bot.idle()
    return opened.ts


def replies(slack: SlackStandIn, channel: str, ts: str) -> list[Message]:
    return [m for m in slack.thread(channel, ts) if m.ts != ts]


def statuses(slack: SlackStandIn, ts: str) -> list[str]:
    return [
        str(c.args.get("status"))
        for c in slack.calls_to("assistant.threads.setStatus")
        if c.args.get("thread_ts") == ts and c.status == 200 and c.response.get("ok")
    ]


def answer_message(slack: SlackStandIn, channel: str) -> Message:
    [answer] = [
        m
        for m in slack.messages(channel)
        if any(b.get("type") == "context_actions" for b in m.blocks or [])
    ]
    return answer


async def test_opening_the_container_welcomes_once_with_prompts_from_the_catalog(
    bot: Bot, relay: Relay, slack: SlackStandIn
) -> None:
    ts = await open_container(relay, bot)
    thread = slack.workspace.assistant_thread("D0ALICE", ts)
    assert [p["message"] for p in thread.prompts] == ["run announce", "help"]
    assert thread.prompts[0]["title"].startswith("Run announce")
    [welcome] = replies(slack, "D0ALICE", ts)
    assert "announcer" in welcome.text and "web-checker" in welcome.text
    # Slack delivering the same start again: no second welcome, no second set of prompts.
    event = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": "U0ALICE",
            "channel_id": "D0ALICE",
            "thread_ts": ts,
            "context": {"channel_id": "C0GENERAL"},
        },
        "event_ts": ts,
    }
    assert await bot.event(event, retry_num=1) == 200
    await bot.idle()
    assert len(replies(slack, "D0ALICE", ts)) == 1
    assert len(slack.calls_to("assistant.threads.setSuggestedPrompts")) == 1


@pytest.fixture
async def gated_page() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A page that answers only when the test lets it: a check that is still going."""
    gate = asyncio.Event()

    async def page(_: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(text="All systems operational")

    app = web.Application()
    app.router.add_get("/health", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/health", gate
    finally:
        gate.set()
        await runner.cleanup()


async def test_a_request_in_the_container_shows_a_status_while_it_runs_and_clears_it(
    bot: Bot, relay: Relay, slack: SlackStandIn, gated_page: tuple[str, asyncio.Event]
) -> None:
    url, gate = gated_page
    ts = await open_container(relay, bot)
    moved = await relay.change_context("U0ALICE", ts, "C0RANDOM")
    assert moved.ok
    await bot.idle()
    request = f"is {url} up?"
    said = await relay.say("U0ALICE", "D0ALICE", request, thread_ts=ts)
    assert said.ok

    # While the check is going, the status line says who is doing what.
    working = await slack.wait_for(
        lambda: (slack.status("D0ALICE", ts) or "").startswith("web-checker is "), timeout=20
    )
    assert working
    assert statuses(slack, ts)[0] == "is planning…"
    gate.set()
    await bot.idle()

    assert statuses(slack, ts)[-1] == "" and slack.status("D0ALICE", ts) is None
    assert slack.workspace.assistant_thread("D0ALICE", ts).title == request
    run = await runs.latest_run(bot.baton.db, channel_id="D0ALICE")
    assert run is not None and run.status == RunStatus.SUCCEEDED
    # The planner heard which channel the person was looking at, by name.
    assert run.context is not None and "#random" in run.context and "<#C0RANDOM>" in run.context
    # A second request in the same thread does not rename it.
    await relay.say("U0ALICE", "D0ALICE", "and is it fast?", thread_ts=ts)
    await bot.idle()
    assert len(slack.calls_to("assistant.threads.setTitle")) == 1


async def test_a_status_that_changes_while_slack_answers_the_last_one_shows_the_newest(
    bot: Bot, relay: Relay, slack: SlackStandIn, gated_page: tuple[str, asyncio.Event]
) -> None:
    url, gate = gated_page
    ts = await open_container(relay, bot)
    planning = slack.hold("assistant.threads.setStatus", when=lambda a: a["status"] == PLANNING)
    said = await relay.say("U0ALICE", "D0ALICE", f"is {url} up?", thread_ts=ts)
    assert said.ok
    await asyncio.wait_for(planning.arrived.wait(), timeout=20)

    # The check starts, and its status changes, while Slack still holds "is planning…".
    async def checking() -> bool:
        run = await runs.latest_run(bot.baton.db, channel_id="D0ALICE")
        return run is not None and any(
            e.kind == "task_progress" for e in await runs.events(bot.baton.db, run.id)
        )

    await wait_until(checking, within=20)
    planning.release()

    # Once Slack answers, the newest status follows (the check is still going meanwhile).
    newest = "web-checker is calling http_check…"
    assert await slack.wait_for(lambda: slack.status("D0ALICE", ts) == newest, timeout=20)
    assert statuses(slack, ts)[-2:] == [PLANNING, newest]
    gate.set()
    await bot.idle()
    assert slack.status("D0ALICE", ts) is None


async def test_a_run_waiting_for_approval_names_the_approver_in_its_status(
    bot: Bot, relay: Relay, slack: SlackStandIn
) -> None:
    ts = await open_container(relay, bot)
    await relay.say("U0ALICE", "D0ALICE", "run announce", thread_ts=ts)
    await bot.idle()
    assert slack.status("D0ALICE", ts) == "is waiting for Bob's approval"
    run = await runs.latest_run(bot.baton.db, channel_id="D0ALICE")
    assert run is not None and run.status == RunStatus.WAITING


async def test_feedback_is_stored_once_per_person_and_shown_in_status_and_home(
    bot: Bot, relay: Relay, slack: SlackStandIn, site: Site
) -> None:
    await bot.mention(f"is {site.url('/ok')} up?")
    await bot.idle()
    answer = answer_message(slack, "C0GENERAL")
    [buttons] = [b for b in answer.blocks if b["type"] == "context_actions"]
    assert buttons["elements"][0]["type"] == "feedback_buttons"

    for _ in range(2):  # a double click
        clicked = await relay.click(
            "U0ALICE",
            "C0GENERAL",
            answer.ts,
            action_id=FEEDBACK,
            block_index=None,
            feedback="positive",
        )
        assert clicked.ok
        await bot.idle()
    async with bot.baton.db.session() as s:
        votes = list((await s.exec(select(Feedback))).all())
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    assert [(v.run_id, v.user_id, v.positive) for v in votes] == [(run.id, "U0ALICE", True)]
    assert "web-checker" in votes[0].agents and votes[0].models == ["rules"]
    thanks = [m for m in slack.messages("C0GENERAL") if m.ephemeral_for == "U0ALICE"]
    assert len(thanks) == 1 and "👍" in thanks[0].text

    _, status = await bot.slash(f"status {run.id}")
    assert status is not None and "👍 1 · 👎 0 on this answer" in json.dumps(
        status["blocks"], ensure_ascii=False
    )
    assert (await relay.open_home("U0ALICE")).ok
    await bot.idle()
    home = json.dumps(slack.workspace.home_views["U0ALICE"], ensure_ascii=False)
    assert "👍 1 · 👎 0 this week" in home


async def test_the_home_tab_of_a_group_member_lists_the_approval_and_its_buttons_work(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    slack.workspace.usergroups["S0OPS"] = ["U0BOB"]
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog(tmp_path, "S0OPS")) as bot:
        relay = Relay(slack, events_url=f"{bot.url}/slack/events", signing_secret=SECRET)
        try:
            await bot.slash("run announce")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None and run.status == RunStatus.WAITING

            await relay.open_home("U0ALICE")  # the requester, not an approver
            await relay.open_home("U0BOB")
            await bot.idle()
            alice = json.dumps(slack.workspace.home_views["U0ALICE"])
            assert "Nothing waits for your decision" in alice and home_blocks.APPROVE not in alice
            bob = slack.workspace.home_views["U0BOB"]
            assert "1 approval" in json.dumps(bob) and run.id in json.dumps(bob)

            assert (await relay.click_in_home("U0BOB", action_id=home_blocks.APPROVE)).ok
            await bot.idle()
            [approval] = await approvals.for_run(bot.baton.db, run.id)
            assert approval.status == ApprovalStatus.APPROVED and approval.decided_by == "U0BOB"
            assert [m.text for m in slack.messages("C0RANDOM")] == ["Deploy finished"]
            after = json.dumps(slack.workspace.home_views["U0BOB"])
            assert "Approved run" in after and "Nothing waits for your decision" in after
            finished = await runs.get_run(bot.baton.db, run.id)
            assert isinstance(finished, Run) and finished.status == RunStatus.SUCCEEDED
        finally:
            await relay.aclose()


async def test_task_cards_and_approval_cards_show_names_not_ids(
    bot: Bot, slack: SlackStandIn
) -> None:
    await bot.slash("run announce")
    await bot.idle()
    titles = [
        str(chunk.get("title"))
        for call in slack.calls
        if call.method in ("chat.startStream", "chat.appendStream", "chat.stopStream")
        for chunk in call.args.get("chunks") or []
        if chunk.get("type") == "task_update"
    ]
    assert titles and all("#random" in t and "<#" not in t for t in titles)
    [card] = [
        m
        for m in slack.messages("C0GENERAL")
        if any(b.get("type") == "actions" for b in m.blocks or [])
        and "Approval needed" in json.dumps(m.blocks)
    ]
    shown = json.dumps(card.blocks)
    assert "<#C0RANDOM>" in shown and "*channel*: C0RANDOM" not in shown
    _, waiting = await bot.slash("approvals")
    assert waiting is not None and "1 approval waiting" in json.dumps(waiting)


async def test_my_schedules_on_the_home_tab_pause_and_resume_from_their_buttons(
    bot: Bot, relay: Relay, slack: SlackStandIn
) -> None:
    _, added = await bot.slash('schedule add "every day at 09:00" run announce')
    assert added is not None and "Scheduled" in json.dumps(added)
    [made] = await schedules.in_channel(bot.baton.db, "C0GENERAL")

    await relay.open_home("U0ALICE")
    await relay.open_home("U0BOB")
    await bot.idle()
    assert made.id not in json.dumps(slack.workspace.home_views["U0BOB"])
    mine = json.dumps(slack.workspace.home_views["U0ALICE"], ensure_ascii=False)
    assert made.id in mine and "next <!date^" in mine and home_blocks.PAUSE in mine

    assert (await relay.click_in_home("U0ALICE", action_id=home_blocks.PAUSE)).ok
    await bot.idle()
    paused = await schedules.get(bot.baton.db, made.id)
    assert paused is not None and paused.paused
    shown = json.dumps(slack.workspace.home_views["U0ALICE"], ensure_ascii=False)
    assert "⏸️ paused" in shown and home_blocks.RESUME in shown and "Paused schedule" in shown

    assert (await relay.click_in_home("U0ALICE", action_id=home_blocks.RESUME)).ok
    await bot.idle()
    resumed = await schedules.get(bot.baton.db, made.id)
    assert resumed is not None and not resumed.paused
    assert home_blocks.PAUSE in json.dumps(slack.workspace.home_views["U0ALICE"])


def test_a_crowded_home_tab_stays_within_slacks_100_blocks() -> None:
    from datetime import timedelta

    from storage.db import utcnow
    from storage.feedback import Tally
    from storage.models import Approval, ModelUsage, Schedule

    now = utcnow()
    waiting = [
        Approval(
            id=f"ap_{i:016d}",
            run_id=f"run{i}",
            task_id="t",
            kind="tool",
            summary=f"step {i}",
            expires_at=now + timedelta(hours=1),
            approvers=["U0BOB"],
        )
        for i in range(30)
    ]
    mine = [
        home_blocks.ScheduleLine(
            Schedule(id=f"sc{i}", channel_id="C0GENERAL", when_text="every 1h", kind="interval"),
            "every hour",
            now + timedelta(hours=1),
        )
        for i in range(30)
    ]
    spent = [
        ModelUsage(run_id="r", agent=f"agent-{i}", model="rules", cost_usd=0.01) for i in range(60)
    ]
    recent = [Run(id=f"r{i}", request=f"request {i}", user_id="U0BOB") for i in range(10)]
    view = home_blocks.home_view(
        home_blocks.Dashboard(
            recent=recent, mine=waiting, schedules=mine, usage=spent, votes=Tally(12, 2)
        )
    )
    blocks = view["blocks"]
    assert isinstance(blocks, list) and len(blocks) <= 100
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "…and 20 more." in shown and "30 approvals" in shown and "30 schedules" in shown
    assert "👍 12 · 👎 2 this week" in shown

"""Conversations in a channel thread: replies without a mention are follow-ups there, and
only there, and every model sees the thread so far.

Slack is the stand-in (it delivers `message.channels` for every channel message, as Slack
does when the app subscribes to it), the model is the fake OpenAI server, the database real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from agents.retry import RetryPolicy
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage.models import Run
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.harness import Bot, running_bot

CATALOG = """
agents:
  - name: advisor
    description: Advises on databases.
    model: openai:gpt-4.1-mini
"""
FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05)
PLAN = {"title": "Advise", "tasks": [{"id": "a", "agent": "advisor", "instruction": "advise"}]}


def planner(seen: Seen) -> bool:
    return "Turn the request into a plan" in seen.system


def synthesis(seen: Seen) -> bool:
    return "Write the final answer" in seen.system


def advisor(seen: Seen) -> bool:
    return seen.system.startswith("You are advisor,")


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=PLAN))
        server.when(advisor, Reply(text="notes"))
        yield server


def bot_on(slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path) -> Any:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG)
    return running_bot(
        slack,
        sqlite_url,
        limits=Limits(retry=FAST_RETRY, task_timeout=10, run_deadline=30),
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        baton_model="openai:gpt-4.1-mini",
        baton_agents_file=catalog,
    )


async def thread_runs(bot: Bot) -> list[Run]:
    async with bot.baton.db.session() as s:
        return list((await s.exec(select(Run))).all())


async def test_a_reply_without_a_mention_in_batons_thread_is_answered_knowing_the_thread(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    openai.when(
        lambda s: synthesis(s) and "how long" in s.last_user_text,
        Reply(text="About two days."),
    )
    openai.when(synthesis, Reply(text="Use PostgreSQL with nightly backups."))
    async with bot_on(slack, openai, sqlite_url, tmp_path) as bot:
        root = await bot.say("We are choosing a database for the wiki.")
        await bot.say("Backups matter most to me.", user="U0BOB", thread_ts=root.ts)
        await bot.mention("what do you suggest?", thread_ts=root.ts)
        await bot.idle()
        await bot.say("and how long would the move take?", thread_ts=root.ts)
        await bot.idle()
        stored = await thread_runs(bot)

    assert sorted(r.request for r in stored) == [
        "and how long would the move take?",
        "what do you suggest?",
    ]
    follow_up_plan = [s for s in openai.requests if planner(s)][-1].last_user_text
    # The earlier request and answer (Baton's database), and what Bob wrote (the thread).
    assert "what do you suggest?" in follow_up_plan
    assert "Use PostgreSQL with nightly backups." in follow_up_plan
    assert "<@U0BOB> wrote: Backups matter most to me." in follow_up_plan
    # Newest first: the earlier answer comes before Bob's older message.
    assert follow_up_plan.index("nightly backups.") < follow_up_plan.index("Backups matter")
    # The specialist of the follow-up sees the conversation too.
    specialist = [s for s in openai.requests if advisor(s)][-1]
    assert "Use PostgreSQL with nightly backups." in specialist.system
    answers = [m.text for m in bot.thread(root) if m.user == slack.workspace.bot.id]
    assert answers[-1] == "About two days."


async def test_a_thread_baton_never_spoke_in_gets_nothing(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    async with bot_on(slack, openai, sqlite_url, tmp_path) as bot:
        root = await bot.say("Lunch at noon?")
        await bot.say("Yes, and check https://example.com first", thread_ts=root.ts)
        await bot.say("help", user="U0BOB", thread_ts=root.ts)
        await bot.idle()
        stored = await thread_runs(bot)

    assert stored == []
    assert openai.requests == []
    assert [m.user for m in bot.thread(root)] == ["U0ALICE", "U0ALICE", "U0BOB"]
    assert slack.calls_to("chat.postMessage") == []


async def test_bots_edits_and_batons_own_posts_in_its_thread_start_nothing(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    openai.when(synthesis, Reply(text="Use PostgreSQL."))
    async with bot_on(slack, openai, sqlite_url, tmp_path) as bot:
        first = await bot.mention("which database?")
        await bot.idle()
        bot_id = slack.workspace.bot.id
        await bot.say("Use PostgreSQL.", user=bot_id, thread_ts=first.ts)
        await bot.say("Deploy bot says hi", thread_ts=first.ts, extra={"bot_id": "B0DEPLOY"})
        await bot.say(
            "which database, really?",
            thread_ts=first.ts,
            extra={"subtype": "message_changed"},
        )
        await bot.idle()
        stored = await thread_runs(bot)

    assert [r.request for r in stored] == ["which database?"]
    assert len([s for s in openai.requests if planner(s)]) == 1


async def test_a_mention_in_batons_thread_starts_one_run_though_slack_sends_it_twice(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    openai.when(synthesis, Reply(text="Use PostgreSQL."))
    async with bot_on(slack, openai, sqlite_url, tmp_path) as bot:
        first = await bot.mention("which database?")
        await bot.idle()
        again = await bot.mention("and which version?", thread_ts=first.ts)
        # Slack sends the same message as `message.channels` too, with its own event id.
        await bot.event(
            {
                "type": "message",
                "channel_type": "channel",
                "user": "U0ALICE",
                "text": again.text,
                "ts": again.ts,
                "event_ts": again.ts,
                "thread_ts": first.ts,
                "channel": "C0GENERAL",
            },
            template="message_im_in_thread_event_callback.bolt_tests.json",
        )
        await bot.idle()
        stored = await thread_runs(bot)

    assert sorted(r.request for r in stored) == ["and which version?", "which database?"]
    assert len([s for s in openai.requests if planner(s)]) == 2

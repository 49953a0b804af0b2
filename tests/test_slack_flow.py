"""A person talks to Baton in Slack; everything they would see is checked in the thread."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.web_api import SlackStandIn
from storage import runs
from testkit.databases import Site
from testkit.harness import Bot, running_bot


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def bot(slack: SlackStandIn, sqlite_url: str) -> AsyncIterator[Bot]:
    async with running_bot(slack, sqlite_url) as b:
        yield b


async def test_a_rules_only_mention_is_answered_in_its_thread(
    bot: Bot, slack: SlackStandIn, site: Site
) -> None:
    msg = await bot.mention(f"check {site.url('/ok')} and {site.url('/down')} and summarise")
    await bot.idle()

    thread = bot.thread(msg)
    replies = thread[1:]
    assert replies, "Baton did not answer in the thread"
    stream = replies[0]
    assert stream.tasks and {t["status"] for t in stream.tasks.values()} == {"complete"}
    assert not stream.streaming
    answer = replies[-1]
    assert "problem" in answer.text and "503" in answer.text
    footer = answer.blocks[-1]["elements"][0]["text"]
    assert "web-checker, writer" in footer and "tokens" in footer and "$0.0000" in footer
    started = slack.calls_to("chat.startStream")[0]
    assert started.args["thread_ts"] == msg.ts and started.args["recipient_user_id"] == "U0ALICE"


async def test_a_retried_event_makes_one_run(bot: Bot, slack: SlackStandIn, site: Site) -> None:
    msg = await bot.mention(f"is {site.url('/ok')} up?", event_id="Ev0RETRY1")
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": msg.text,
        "ts": msg.ts,
        "channel": msg.channel,
        "event_ts": msg.ts,
    }
    for retry in (1, 2, 3):
        assert await bot.event(event, event_id="Ev0RETRY1", retry_num=retry) == 200
    await bot.idle()

    assert await runs.count_runs(bot.baton.db) == 1
    assert (
        len([m for m in bot.thread(msg)[1:] if m.blocks and m.blocks[-1].get("type") == "context"])
        == 1
    )
    assert site.hits == {"/ok": 1}

"""`/baton` and mentions taken in before Bolt's dispatch (`bot/gate.py`): what Bolt would have
refused is still refused, Baton's own words start nothing, and a request Slack sends again is
stored once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from sandbox.signing import FORM
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunSource
from testkit.harness import PAYLOADS, Bot, running_bot


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def bot(slack: SlackStandIn, sqlite_url: str) -> AsyncIterator[Bot]:
    async with running_bot(slack, sqlite_url) as b:
        yield b


def command_body(slack: SlackStandIn, text: str) -> bytes:
    fields = dict(
        line.split("=", 1)
        for line in (PAYLOADS / "slash_command_body.slack_docs.txt").read_text().strip().split("&")
    )
    fields.update(
        team_id=slack.workspace.team_id,
        channel_id="C0GENERAL",
        user_id="U0ALICE",
        command="/baton",
        text=text,
        response_url=slack.response_url("C0GENERAL", "U0ALICE"),
        trigger_id=slack.trigger_id("U0ALICE"),
    )
    return urlencode(fields).encode()


async def test_an_unsigned_badly_signed_or_stale_baton_command_is_refused_and_starts_nothing(
    bot: Bot, slack: SlackStandIn
) -> None:
    body = command_body(slack, "check https://example.com")

    unsigned = await bot.post(body, FORM, headers={"Content-Type": FORM})
    wrong_secret = await bot.post(body, FORM, secret="not-the-secret")
    stale = await bot.post(body, FORM, timestamp=int(time.time()) - 600)

    assert (unsigned.status, wrong_secret.status, stale.status) == (401, 401, 401)
    assert await runs.count_runs(bot.baton.db) == 0
    # The same command, signed, is taken.
    assert (await bot.post(body, FORM)).status == 200
    assert await runs.count_runs(bot.baton.db) == 1  # stored before the ack


async def test_a_mention_by_baton_itself_starts_nothing(bot: Bot, slack: SlackStandIn) -> None:
    own = slack.workspace.bot.id
    event = {
        "type": "app_mention",
        "user": own,
        "text": f"<@{own}> check https://example.com",
        "ts": "1700000000.000200",
        "channel": "C0GENERAL",
        "event_ts": "1700000000.000200",
    }

    assert await bot.event(event) == 200
    assert await runs.count_runs(bot.baton.db) == 0


async def test_a_mention_slack_sends_again_is_stored_once(bot: Bot, slack: SlackStandIn) -> None:
    message = await slack.post_as_user("C0GENERAL", "U0ALICE", "<@U0BATON> check it")
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": message.text,
        "ts": message.ts,
        "channel": "C0GENERAL",
        "event_ts": message.ts,
    }

    first = await bot.event(event, event_id="Ev0AGAIN")
    again = await bot.event(event, event_id="Ev0AGAIN", retry_num=1)

    assert (first, again) == (200, 200)
    assert await runs.count_runs(bot.baton.db) == 1
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.source == RunSource.MENTION and run.thread_ts == message.ts

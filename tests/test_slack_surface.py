"""The Slack surface: signatures, slash commands, DMs, rate limits, streaming fallbacks, and
the requests taken in before Bolt's dispatch (`bot/gate.py`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from bot.progress import ProgressOptions
from sandbox.signing import FORM, JSON_TYPE, sign
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunSource, RunStatus
from testkit.databases import Site
from testkit.harness import PAYLOADS, SECRET, Bot, running_bot, wait_until
from tests.test_intake import slash_body


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def bot(slack: SlackStandIn, sqlite_url: str) -> AsyncIterator[Bot]:
    async with running_bot(slack, sqlite_url) as b:
        yield b


def test_slacks_documented_signature_example_is_reproduced() -> None:
    body = (PAYLOADS / "slash_command_signature_test_vector.slack_docs.txt").read_bytes()
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


async def test_unsigned_badly_signed_and_stale_requests_get_401(bot: Bot) -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}}).encode()
    unsigned = await bot.post(body, JSON_TYPE, headers={"Content-Type": JSON_TYPE})
    wrong_secret = await bot.post(body, JSON_TYPE, secret="not-the-secret")
    stale = await bot.post(body, JSON_TYPE, timestamp=int(time.time()) - 600)
    assert (unsigned.status, wrong_secret.status, stale.status) == (401, 401, 401)
    assert await runs.count_runs(bot.baton.db) == 0


async def test_slacks_url_verification_challenge_is_answered(bot: Bot) -> None:
    body = (PAYLOADS / "url_verification.json").read_bytes()
    from sandbox.signing import signed_headers

    async with bot.session.post(
        f"{bot.url}/slack/events",
        data=body,
        headers=signed_headers(SECRET, body, content_type=JSON_TYPE),
    ) as resp:
        assert resp.status == 200
        assert json.loads(body)["challenge"] in await resp.text()


async def test_healthz_reports_the_database(bot: Bot) -> None:
    async with bot.session.get(f"{bot.url}/healthz") as resp:
        assert resp.status == 200 and (await resp.json()) == {"ok": True}


async def test_slash_help_agents_and_unknown_playbook_answer_at_once(bot: Bot) -> None:
    status, help_reply = await bot.slash("help")
    assert (
        status == 200 and help_reply is not None and "/baton run <playbook>" in help_reply["text"]
    )
    assert help_reply["response_type"] == "ephemeral"
    _, agents = await bot.slash("agents")
    assert agents is not None
    shown = json.dumps(agents["blocks"])
    assert (
        "web-checker" in shown
        and "http_check" in shown
        and "`rules`" in shown
        and "announce-status" in shown
    )
    _, unknown = await bot.slash("run nonsense")
    assert (
        unknown is not None
        and "no playbook called `nonsense`" in unknown["text"]
        and "`status-check`" in unknown["text"]
    )
    _, missing = await bot.slash("run")
    assert missing is not None and "Say which playbook" in missing["text"]
    assert await runs.count_runs(bot.baton.db) == 0


async def test_slash_request_is_posted_and_answered_in_its_own_thread(
    bot: Bot, slack: SlackStandIn, site: Site
) -> None:
    status, reply = await bot.slash(f"check {site.url('/ok')}")
    assert status == 200 and reply is None  # acked at once, with nothing to show yet
    await bot.idle()

    top = [m for m in slack.messages("C0GENERAL") if not m.is_reply]
    assert len(top) == 1 and top[0].text.startswith("<@U0ALICE> asked: check")
    thread = slack.thread("C0GENERAL", top[0].ts)
    assert "200" in thread[-1].text and thread[-1].blocks[-1]["type"] == "context"

    _, report = await bot.slash("status")
    assert report is not None
    shown = json.dumps(report["blocks"])
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.id in shown and "web-checker" in shown and "succeeded" in shown
    _, unknown = await bot.slash("status 00000000")
    # An unknown id gets the same words as a run this person may not see here.
    assert unknown is not None and unknown["text"].startswith("I can't show that run here.")


async def test_slash_in_a_conversation_baton_cannot_post_in_explains_why(
    bot: Bot, slack: SlackStandIn
) -> None:
    slack.fail("chat.postMessage", "not_in_channel")
    await bot.slash("check https://example.com")
    await bot.idle()
    notes = [c for c in slack.calls if c.method == "response_url"]
    assert len(notes) == 1 and "/invite @Baton" in notes[0].args["text"]
    # The request was stored before the ack; it ends failed, saying why, and nothing ran.
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.FAILED
    assert "/invite @Baton" in (run.error or "") and run.plan is None


async def test_a_dm_is_answered_in_the_dm(bot: Bot, slack: SlackStandIn, site: Site) -> None:
    msg = await bot.dm(f"is {site.url('/status')} up?")
    await bot.idle()
    thread = bot.thread(msg)
    assert "200" in thread[-1].text
    assert slack.calls_to("chat.startStream")[0].args["channel"] == "D0ALICE"


async def test_bots_own_messages_and_edits_in_a_dm_start_nothing(
    bot: Bot, slack: SlackStandIn
) -> None:
    await bot.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": "D0ALICE",
            "channel_type": "im",
            "ts": "1.1",
        },
        template="message_im_event_callback.slack_docs.json",
    )
    await bot.event(
        {
            "type": "message",
            "bot_id": "B0BATON",
            "text": "hi",
            "channel": "D0ALICE",
            "channel_type": "im",
            "ts": "1.2",
        },
        template="message_im_event_callback.slack_docs.json",
    )
    await bot.idle()
    assert await runs.count_runs(bot.baton.db) == 0


async def test_a_429_storm_from_slack_delays_but_loses_nothing(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(
        slack, sqlite_url, progress=ProgressOptions(streaming=False, update_interval=0.05)
    ) as bot:
        msg = await bot.mention(f"check {site.url('/ok')} and {site.url('/down')} and summarise")
        slack.ratelimit_all(times=4, retry_after=0)
        await bot.idle()

    limited = [c for c in slack.calls if c.status == 429]
    assert len(limited) == 4
    replies = bot.thread(msg)[1:]
    status_message, answer = replies[0], replies[-1]
    assert len(replies) == 2, [r.text for r in replies]
    assert "done" in status_message.blocks[0]["text"]["text"]
    assert "problem" in answer.text
    assert float(status_message.ts) < float(answer.ts)


async def test_without_streaming_one_status_message_is_edited_in_place(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(
        slack, sqlite_url, progress=ProgressOptions(streaming=False, update_interval=0.05)
    ) as bot:
        msg = await bot.mention(f"check {site.url('/ok')}")
        await bot.idle()
    status_message = bot.thread(msg)[1]
    assert status_message.edited is not None
    assert slack.calls_to("chat.startStream") == []
    assert "✅" in json.dumps(status_message.blocks, ensure_ascii=False)


async def test_when_streaming_fails_progress_falls_back_to_a_status_message(
    slack: SlackStandIn, bot: Bot, site: Site
) -> None:
    slack.fail("chat.startStream", "not_allowed")
    msg = await bot.mention(f"check {site.url('/ok')}")
    await bot.idle()
    replies = bot.thread(msg)[1:]
    assert len(replies) == 2 and "done" in replies[0].blocks[0]["text"]["text"]
    assert "200" in replies[1].text


async def test_an_expired_stream_continues_in_a_new_status_message(
    sqlite_url: str, site: Site
) -> None:
    async with (
        SlackStandIn(stream_ttl=0.2) as slack,
        running_bot(slack, sqlite_url, progress=ProgressOptions(stream_interval=0.5)) as bot,
    ):
        slack.fail("chat.appendStream", "message_not_in_streaming_state")
        msg = await bot.mention(f"check {site.url('/slow?s=1')} and summarise")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.SUCCEEDED
    replies = bot.thread(msg)[1:]
    assert replies[-1].blocks[-1]["type"] == "context"  # the answer arrived
    assert (
        slack.calls_to("chat.appendStream")[0].response["error"] == "message_not_in_streaming_state"
    )
    fallback = [r for r in replies[:-1] if r.blocks and "done" in json.dumps(r.blocks)]
    assert len(fallback) == 1 and fallback[0].edited is not None


async def test_an_append_on_its_way_when_the_run_ends_is_let_finish_before_the_stream_stops(
    slack: SlackStandIn, bot: Bot, site: Site
) -> None:
    """Cut off mid-call, an append could reach Slack after the stream stopped, and Baton
    would not know what Slack had shown (nor count the call)."""
    held = slack.hold("chat.appendStream")
    # The check takes long enough for the list to change once it has started streaming.
    await bot.mention(f"check {site.url('/slow?s=0.3')} and summarise")
    await asyncio.wait_for(held.arrived.wait(), 15)

    async def finished() -> bool:
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        return run is not None and run.status.is_final

    await wait_until(finished)
    for _ in range(200):  # the run's end goes on as far as it can while the append is held
        await asyncio.sleep(0)
    held.release()
    await bot.idle()

    streamed = [
        c
        for c in slack.calls
        if c.method in ("chat.startStream", "chat.appendStream", "chat.stopStream")
    ]
    assert [c.method for c in streamed][-1] == "chat.stopStream"
    assert [c.method for c in streamed].count("chat.stopStream") == 1
    assert all(c.response.get("ok") for c in streamed)
    async with bot.session.get(f"{bot.url}/metrics") as resp:
        metrics = await resp.text()
    appended = len(slack.calls_to("chat.appendStream"))
    assert (
        f'baton_slack_calls_total{{method="chat.appendStream",result="ok"}} {float(appended)}'
        in metrics
    )


# `/baton` and mentions are taken in before Bolt's dispatch (`bot/gate.py`): what Bolt would
# refuse is still refused, Baton's own words start nothing, a retried event is stored once.


async def test_an_unsigned_badly_signed_or_stale_baton_command_is_refused_and_starts_nothing(
    bot: Bot, slack: SlackStandIn
) -> None:
    body = slash_body(slack, "check https://example.com")

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

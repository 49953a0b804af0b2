"""Nothing is lost between Slack's request and the run; nothing Baton cannot use gets a 500."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest

from bot import approval_blocks as ui
from bot.request_checks import MAX_DEPTH, problem_with
from sandbox.signing import FORM, JSON_TYPE, block_actions_body, signed_headers
from sandbox.web_api import SlackStandIn
from storage import approvals, runs
from storage.models import ApprovalStatus, RunStatus
from testkit.databases import Site
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.harness import PAYLOADS, SECRET, running_bot, sample
from tests.trust_helpers import (
    answers,
    approval_requests,
    approval_value,
    model_settings,
    write_catalog,
)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


def mention_event(slack: SlackStandIn, text: str, ts: str, **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(sample("app_mention_event_callback.slack_docs.json")["event"])
    event.update(user="U0ALICE", text=f"<@U0BATON> {text}", ts=ts, channel="C0GENERAL", event_ts=ts)
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


async def test_a_request_whose_run_could_not_be_stored_gets_through_on_slacks_retry(
    slack: SlackStandIn, pg_url: str, site: Site
) -> None:
    base, name = pg_url.rsplit("/", 1)
    admin = await asyncpg.connect(f"{base.replace('postgresql://', 'postgres://')}/postgres")
    try:
        async with running_bot(slack, pg_url) as bot:
            question = await slack.post_as_user("C0GENERAL", "U0ALICE", "ask")
            event = mention_event(slack, f"check {site.url('/ok')}", question.ts)
            # The database refuses connections: the run cannot be stored.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            first = await asyncio.wait_for(bot.event(event, event_id="Ev0RETRY"), 3.0)
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert first == 503  # Slack retries what it got no 2xx for
            assert await runs.count_runs(bot.baton.db) == 0

            assert await bot.event(event, event_id="Ev0RETRY", retry_num=1) == 200
            assert await bot.event(event, event_id="Ev0RETRY", retry_num=2) == 200
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert await runs.count_runs(bot.baton.db) == 1
            assert run is not None and run.status == RunStatus.SUCCEEDED
            assert len(answers(slack, run.id)) == 1
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_a_request_whose_run_is_slow_to_store_is_acked_in_time_and_still_run(
    slack: SlackStandIn, pg_url: str, site: Site
) -> None:
    async with running_bot(slack, pg_url) as bot:
        question = await slack.post_as_user("C0GENERAL", "U0ALICE", "ask")
        event = mention_event(slack, f"check {site.url('/ok')}", question.ts)
        admin = await asyncpg.connect(pg_url.replace("postgresql://", "postgres://"))
        try:
            # The runs table is locked: storing the run waits longer than an ack may.
            locked = admin.transaction()
            await locked.start()
            await admin.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
            assert await asyncio.wait_for(bot.event(event, event_id="Ev0SLOW"), 3.0) == 200
            await locked.rollback()
        finally:
            await admin.close()
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert await runs.count_runs(bot.baton.db) == 1
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert len(answers(slack, run.id)) == 1


async def test_a_nul_character_in_a_request_is_dropped_not_refused_by_postgresql(
    slack: SlackStandIn, pg_url: str, site: Site
) -> None:
    async with running_bot(slack, pg_url) as bot:
        question = await slack.post_as_user("C0GENERAL", "U0ALICE", "ask")
        event = mention_event(slack, f"check \x00{site.url('/ok')}\x00", question.ts)
        assert await bot.event(event) == 200
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and "\x00" not in run.request and run.status == RunStatus.SUCCEEDED


def slash_body(slack: SlackStandIn, text: str, **fields: str) -> bytes:
    form = dict(
        line.split("=", 1)
        for line in (PAYLOADS / "slash_command_body.slack_docs.txt").read_text().strip().split("&")
    )
    form.update(
        team_id="T0BATON",
        channel_id="C0GENERAL",
        user_id="U0ALICE",
        command="/baton",
        text=text,
        response_url=slack.response_url("C0GENERAL", "U0ALICE"),
        trigger_id=slack.trigger_id("U0ALICE"),
    )
    form.update(fields)
    return urlencode({k: v for k, v in form.items() if v != "-"}).encode()


async def test_a_replayed_slash_command_starts_nothing_more(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        body = slash_body(slack, f"check {site.url('/ok')}")
        # The same signed request, sent again within Slack's five minutes.
        first = await bot.post(body, FORM)
        again = await bot.post(body, FORM)
        await bot.idle()
        assert first.status == again.status == 200
        assert await runs.count_runs(bot.baton.db) == 1
        assert site.hits == {"/ok": 1}


async def test_a_click_that_does_not_come_from_the_approval_message_is_refused(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_bot(
        slack, sqlite_url, baton_agents_file=write_catalog(tmp_path), **model_settings()
    ) as bot:
        await bot.slash("run deploy")
        [gate] = approval_requests(slack)
        payload = sample("block_actions_button_click.bolt_tests.json")
        payload.update(
            user={"id": "U0ALICE"},
            team={"id": "T0BATON"},
            channel={"id": "C0RANDOM"},  # another channel, and no message at all
            trigger_id=slack.trigger_id("U0ALICE"),
        )
        payload.pop("container", None)
        payload.pop("message", None)
        payload["actions"] = [
            {
                "type": "button",
                "action_id": ui.APPROVE,
                "block_id": "b",
                "value": approval_value(gate),
                "action_ts": "1",
            }
        ]
        assert (await bot.post(block_actions_body(payload), FORM)).status == 200
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None
        [approval] = await approvals.for_run(bot.baton.db, run.id)
    assert approval.status == ApprovalStatus.PENDING
    told = [m.text for m in slack.messages("C0RANDOM") if m.ephemeral_for == "U0ALICE"]
    assert told == ["That button does not belong to this approval message, so nothing was changed."]


def _event_body(event: Any) -> bytes:
    envelope = sample("app_mention_event_callback.slack_docs.json")
    envelope.update(
        team_id="T0BATON",
        api_app_id="A0BATON",
        event=event,
        event_id="Ev0BAD",
        event_time=int(time.time()),
    )
    return json.dumps(envelope).encode()


def _click_body(**changes: Any) -> bytes:
    payload = sample("block_actions_button_click.bolt_tests.json")
    payload.update(team={"id": "T0BATON"}, api_app_id="A0BATON")
    payload["actions"] = [
        {
            "type": "button",
            "action_id": ui.APPROVE,
            "block_id": "b",
            "value": "ap_x",
            "action_ts": "1",
        }
    ]
    payload.update(changes)
    return block_actions_body({k: v for k, v in payload.items() if v is not None})


def _view_body(view: Any) -> bytes:
    from sandbox.signing import view_submission_body

    payload = sample("view_submission.bolt_tests.json")
    payload.update(user={"id": "U0ALICE"}, team={"id": "T0BATON"})
    payload["view"] = view
    return view_submission_body({k: v for k, v in payload.items() if v is not None})


def _mention(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": "<@U0BATON> check https://example.com",
        "ts": "1700000000.000100",
        "channel": "C0GENERAL",
        "event_ts": "1700000000.000100",
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


MALFORMED: dict[str, tuple[bytes, str]] = {
    "mention without a channel": (_event_body(_mention(channel=None)), JSON_TYPE),
    "mention without a ts": (_event_body(_mention(ts=None, event_ts=None)), JSON_TYPE),
    "mention without a user": (_event_body(_mention(user=None)), JSON_TYPE),
    "dm without a channel": (
        _event_body(
            {"type": "message", "channel_type": "im", "user": "U0ALICE", "text": "hi", "ts": "1.2"}
        ),
        JSON_TYPE,
    ),
    "event as a string": (_event_body("app_mention"), JSON_TYPE),
    "event as a list": (_event_body([1, 2]), JSON_TYPE),
    "event without a type": (_event_body({"channel": "C0GENERAL"}), JSON_TYPE),
    "an event type Baton does not handle": (
        _event_body({"type": "team_join", "user": {"id": "U9"}}),
        JSON_TYPE,
    ),
    "click with no actions": (_click_body(actions=[]), FORM),
    "click with actions not a list": (_click_body(actions={"a": 1}), FORM),
    "click without a user": (_click_body(user=None), FORM),
    "click without its message": (_click_body(container=None, message=None, channel=None), FORM),
    "form without its view": (_view_body(None), FORM),
    "form without its approval id": (
        _view_body({"callback_id": ui.REASON_CALLBACK, "state": {"values": {}}}),
        FORM,
    ),
    "slash command without a channel": (
        b"command=%2Fbaton&text=status&user_id=U0ALICE&team_id=T0BATON",
        FORM,
    ),
    "slash command without a user": (
        b"command=%2Fbaton&text=status&channel_id=C0GENERAL&team_id=T0BATON",
        FORM,
    ),
    "JSON that is not UTF-8": (
        b'{"type": "event_callback", "event": {"text": "\xff\xfe"}}',
        JSON_TYPE,
    ),
    "a form that is not UTF-8": (b"payload=%7B%7D&x=\xff", FORM),
    "JSON nested 50,000 deep": (b"[" * 50_000 + b"]" * 50_000, JSON_TYPE),
    "a payload that is not JSON": (b"payload=%7Bnot+json", FORM),
    "JSON that is not an object": (b"[1, 2, 3]", JSON_TYPE),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_request_gets_an_answer_not_a_500_or_a_traceback(
    slack: SlackStandIn, sqlite_url: str, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    body, content_type = MALFORMED[case]
    async with running_bot(slack, sqlite_url) as bot:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            resp = await bot.post(body, content_type)
            await bot.idle()
    assert resp.status < 500
    assert [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info
    ] == []


def test_json_is_refused_only_when_it_nests_deeper_than_slack_ever_does() -> None:
    def nested(depth: int) -> str:
        return '{"a": ' * depth + "1" + "}" * depth

    json_headers = {"Content-Type": JSON_TYPE}
    form_headers = {"Content-Type": FORM}
    mention = json.dumps(sample("app_mention_event_callback.slack_docs.json"))
    assert problem_with(mention.encode(), json_headers) == (200, None)
    assert problem_with(nested(MAX_DEPTH).encode(), json_headers) == (200, None)
    # Brackets inside strings do not count.
    in_text = json.dumps({"text": "[" * 500, "event": {"type": "message"}})
    assert problem_with(in_text.encode(), json_headers) == (200, None)
    too_deep = (400, "the JSON is nested too deeply")
    assert problem_with(nested(MAX_DEPTH + 1).encode(), json_headers) == too_deep
    form = urlencode({"payload": nested(100)}).encode()
    assert problem_with(form, form_headers) == too_deep
    # A slash command's form has no payload to read.
    command = urlencode({"command": "/baton", "text": "[" * 500}).encode()
    assert problem_with(command, form_headers) == (200, None)


async def test_a_request_with_a_timestamp_that_is_not_a_number_is_refused_politely(
    slack: SlackStandIn, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        body = _event_body(_mention())
        headers = signed_headers(SECRET, body, content_type=JSON_TYPE)
        headers["X-Slack-Request-Timestamp"] = "soon"
        with caplog.at_level(logging.WARNING):
            resp = await bot.post(body, JSON_TYPE, headers=headers)
    assert resp.status == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_message_while_the_threads_run_is_going_is_answered_after_it_and_sees_its_answer(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    def synthesis(seen: Seen) -> Reply:
        second = "thought again" in seen.last_user_text
        return Reply(text="the second answer" if second else "the first answer: 42")

    async with FakeOpenAI() as openai:
        # The first step takes a while: long enough for a second message in its thread.
        openai.when(
            lambda s: s.system.startswith("You are thinker") and s.last_user_text == "think",
            Reply(text="thought", delay=3.0),
        )
        openai.when(
            lambda s: "Turn the request into a plan" in s.system,
            Reply(
                structured={
                    "title": "Follow-up",
                    "tasks": [{"id": "t", "agent": "thinker", "instruction": "again"}],
                }
            ),
        )
        openai.when(lambda s: s.system.startswith("You are thinker"), Reply(text="thought again"))
        openai.when(lambda s: "Write the final answer" in s.system, synthesis)
        settings = {**model_settings(openai.base_url), "baton_model": "openai:gpt-4.1-mini"}
        async with running_bot(
            slack, sqlite_url, baton_agents_file=write_catalog(tmp_path), **settings
        ) as bot:
            first = await bot.mention("run think")
            await asyncio.wait_for(openai.received(1), timeout=20)
            await bot.mention("and what does that mean?", thread_ts=first.ts)
            waiting = await runs.runs_by_status(bot.baton.db, [RunStatus.QUEUED])
            assert len(waiting) == 1 and waiting[0].follows_run_id is not None
            await bot.idle()
            done = await runs.runs_by_status(bot.baton.db, [RunStatus.SUCCEEDED])
    thread = bot.thread(first)
    notices = [m for m in thread if m.text == "I'll answer this when the current run finishes."]
    assert len(done) == 2 and len(notices) == 1
    earlier, later = sorted(done, key=lambda r: r.created_at)
    [a1], [a2] = answers(slack, earlier.id), answers(slack, later.id)
    order = [m.ts for m in thread]
    assert order.index(notices[0].ts) < order.index(a1.ts) < order.index(a2.ts)
    assert a1.text == "the first answer: 42" and a2.text == "the second answer"
    # The follow-up was planned knowing the first answer.
    [planning] = [s for s in openai.requests if "Turn the request into a plan" in s.system]
    assert "the first answer: 42" in planning.last_user_text

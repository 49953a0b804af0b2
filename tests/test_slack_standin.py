"""The local Slack stand-in, driven by the real slack_sdk client, and Slack-style signing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import SectionBlock
from slack_sdk.models.messages.chunk import MarkdownTextChunk, PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.signing import (
    FORM,
    JSON_TYPE,
    block_actions_body,
    deliver,
    event_callback_body,
    sign,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from sandbox.web_api import Change, SlackStandIn, User

PAYLOADS = Path(__file__).resolve().parent / "slack" / "payloads"
GENERAL = "C0GENERAL"
ALICE_DM = "D0ALICE"
SECRET = "signing-secret-for-tests"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.api_url)


async def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# posting, threads, history


async def test_post_and_thread_reply_appear_in_history_and_replies(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    question = await slack.post_as_user(GENERAL, "U0ALICE", "what's the weather?")
    first = await client.chat_postMessage(channel=GENERAL, text="looking", thread_ts=question.ts)
    second = await client.chat_postMessage(channel=GENERAL, text="sunny", thread_ts=first["ts"])
    await client.chat_postMessage(channel=GENERAL, text="unrelated")

    assert first["channel"] == GENERAL and first["message"]["text"] == "looking"
    # A reply to a reply lands under the thread's parent, as in Slack.
    assert second["message"]["thread_ts"] == question.ts
    assert [m.text for m in slack.thread(GENERAL, question.ts)] == [
        "what's the weather?",
        "looking",
        "sunny",
    ]

    history = await client.conversations_history(channel=GENERAL)
    assert [m["text"] for m in history["messages"]] == ["unrelated", "what's the weather?"]
    assert history["messages"][1]["reply_count"] == 2

    replies = await client.conversations_replies(channel=GENERAL, ts=question.ts)
    assert [m["text"] for m in replies["messages"]] == ["what's the weather?", "looking", "sunny"]


async def test_history_is_newest_first_and_pages_by_limit(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    for n in range(5):
        await client.chat_postMessage(channel=GENERAL, text=f"m{n}")

    page = await client.conversations_history(channel=GENERAL, limit=2)
    assert [m["text"] for m in page["messages"]] == ["m4", "m3"]
    assert page["has_more"] is True
    rest = await client.conversations_history(
        channel=GENERAL, limit=10, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"]
    assert rest["has_more"] is False


async def test_message_ts_values_are_unique_and_increasing(client: AsyncWebClient) -> None:
    posted = [
        (await client.chat_postMessage(channel=GENERAL, text=str(n)))["ts"] for n in range(20)
    ]
    assert len(set(posted)) == 20
    assert [float(ts) for ts in posted] == sorted(float(ts) for ts in posted)
    assert all(len(ts.split(".")[1]) == 6 for ts in posted)


async def test_posting_to_a_user_id_goes_to_the_bots_dm_with_them(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    resp = await client.chat_postMessage(channel="U0ALICE", text="hi Alice")
    assert resp["channel"] == ALICE_DM
    assert [m.text for m in slack.messages(ALICE_DM)] == ["hi Alice"]


async def test_conversations_open_finds_the_dm_and_members_lists_who_is_in_a_channel(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    opened = await client.conversations_open(users="U0BOB")
    assert opened["channel"]["id"] == "D0BOB"
    everyone = await client.conversations_members(channel="C0GENERAL")
    assert sorted(everyone["members"]) == ["U0ALICE", "U0BATON", "U0BOB"]
    slack.workspace.channel_members["C0GENERAL"] = ["U0ALICE"]
    first = await client.conversations_members(channel="C0GENERAL", limit=1)
    cursor = first["response_metadata"]["next_cursor"]
    rest = await client.conversations_members(channel="C0GENERAL", cursor=cursor)
    assert first["members"] + rest["members"] == ["U0ALICE", "U0BATON"]
    with pytest.raises(SlackApiError) as e:
        await client.conversations_open(users="U0NOBODY")
    assert e.value.response["error"] == "user_not_found"


async def test_update_edits_in_place_marks_edited_and_keeps_blocks(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel=GENERAL, text="working…", blocks=[SectionBlock(text="working…")]
    )
    updated = await client.chat_update(channel=GENERAL, ts=posted["ts"], text="done")

    assert updated["ts"] == posted["ts"]
    (message,) = slack.messages(GENERAL)
    assert message.text == "done"
    assert message.edited is not None and message.edited.user == "U0BATON"
    assert message.blocks[0]["text"]["text"] == "working…"
    assert updated["message"]["edited"]["user"] == "U0BATON"


async def test_ephemeral_message_is_for_one_person_and_not_in_history(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    resp = await client.chat_postEphemeral(channel=GENERAL, user="U0BOB", text="only you")

    (message,) = slack.messages(GENERAL)
    assert message.ts == resp["message_ts"]
    assert message.ephemeral_for == "U0BOB"
    history = await client.conversations_history(channel=GENERAL)
    assert history["messages"] == []


async def test_delete_sent_as_query_params_removes_the_message(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=GENERAL, text="oops")
    # slack_sdk sends chat.delete as query params, not a JSON body.
    await client.chat_delete(channel=GENERAL, ts=posted["ts"])

    assert slack.messages(GENERAL) == []
    assert slack.calls_to("chat.delete")[0].args == {"channel": GENERAL, "ts": posted["ts"]}


async def test_form_encoded_body_with_token_param_and_json_text_blocks_is_accepted(
    slack: SlackStandIn,
) -> None:
    form = {
        "token": slack.token,
        "channel": GENERAL,
        "text": "from a form",
        "blocks": json.dumps([section("from a form")]),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(slack.api_url + "chat.postMessage", data=form) as response,
    ):
        body = await response.json()

    assert body["ok"] is True
    (call,) = slack.calls_to("chat.postMessage")
    assert call.args["blocks"] == [section("from a form")]
    assert "token" not in call.args


async def test_permalink_reaction_and_lookups(slack: SlackStandIn, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=GENERAL, text="look")

    link = await client.chat_getPermalink(channel=GENERAL, message_ts=posted["ts"])
    assert link["permalink"] == slack.url + f"archives/{GENERAL}/p{posted['ts'].replace('.', '')}"
    reply = await client.chat_postMessage(channel=GENERAL, thread_ts=posted["ts"], text="re")
    reply_link = await client.chat_getPermalink(channel=GENERAL, message_ts=reply["ts"])
    assert reply_link["permalink"].endswith(f"?thread_ts={posted['ts']}&cid={GENERAL}")

    await client.reactions_add(channel=GENERAL, name="eyes", timestamp=posted["ts"])
    assert slack.messages(GENERAL)[0].reactions == {"eyes": ["U0BATON"]}
    again = await slack_error(
        client.reactions_add(channel=GENERAL, name="eyes", timestamp=posted["ts"])
    )
    assert again.response["error"] == "already_reacted"

    auth = await client.auth_test()
    assert (auth["user_id"], auth["user"], auth["team_id"]) == ("U0BATON", "baton", "T0BATON")
    alice = await client.users_info(user="U0ALICE")
    assert alice["user"]["tz"] == "Europe/Berlin" and alice["user"]["is_admin"] is True
    dm = await client.conversations_info(channel=ALICE_DM)
    assert dm["channel"]["is_im"] is True and dm["channel"]["user"] == "U0ALICE"


async def test_custom_people_and_channels(slack: SlackStandIn) -> None:
    carol = User("U0CAROL", "carol", "Carol", tz="Asia/Tokyo")
    async with SlackStandIn(users=[carol], token="xoxb-other") as other:
        web_client = AsyncWebClient(token="xoxb-other", base_url=other.api_url)
        info = await web_client.users_info(user="U0CAROL")
        assert info["user"]["tz_offset"] == 9 * 3600
        await web_client.chat_postMessage(channel="D0CAROL", text="hi Carol")
        assert other.messages("D0CAROL")[0].text == "hi Carol"


async def test_status_shows_until_the_bot_replies_in_the_thread(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    question = await slack.post_as_user(ALICE_DM, "U0ALICE", "help")
    await client.assistant_threads_setStatus(
        channel_id=ALICE_DM, thread_ts=question.ts, status="is thinking…"
    )
    assert slack.status(ALICE_DM, question.ts) == "is thinking…"
    await slack.post_as_user(ALICE_DM, "U0ALICE", "still there?", thread_ts=question.ts)
    assert slack.status(ALICE_DM, question.ts) == "is thinking…"

    await client.chat_postMessage(channel=ALICE_DM, thread_ts=question.ts, text="here you go")
    assert slack.status(ALICE_DM, question.ts) is None


# the assistant container


def feedback_block(**overrides: Any) -> dict[str, Any]:
    element = {
        "type": "feedback_buttons",
        "action_id": "answer_feedback",
        "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": "good"},
        "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": "bad"},
        **overrides,
    }
    return {"type": "context_actions", "elements": [element]}


async def test_an_assistant_thread_takes_prompts_a_title_and_a_status_with_loading_messages(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    thread = slack.workspace.start_assistant_thread("U0ALICE", GENERAL)
    prompts = [
        {"title": "Check the shop", "message": "@Baton run shop-health"},
        {"title": "What can you do?", "message": "help"},
    ]

    await client.assistant_threads_setSuggestedPrompts(
        channel_id=ALICE_DM, thread_ts=thread.thread_ts, prompts=prompts, title="Try"
    )
    await client.assistant_threads_setTitle(
        channel_id=ALICE_DM, thread_ts=thread.thread_ts, title="Is the shop up?"
    )
    await client.assistant_threads_setStatus(
        channel_id=ALICE_DM,
        thread_ts=thread.thread_ts,
        status="is checking 2 URLs…",
        loading_messages=["Knocking on the shop's door…"],
    )

    [shown] = slack.snapshot()["assistant_threads"]
    assert shown["prompts"] == prompts and shown["prompts_title"] == "Try"
    assert shown["title"] == "Is the shop up?" and shown["context_channel"] == GENERAL
    assert slack.status(ALICE_DM, thread.thread_ts) == "is checking 2 URLs…"
    assert slack.snapshot()["statuses"][0]["loading_messages"] == ["Knocking on the shop's door…"]
    root = (await client.conversations_history(channel=ALICE_DM))["messages"][0]
    assert root["subtype"] == "assistant_app_thread"
    assert root["assistant_app_thread"]["title"] == "Is the shop up?"

    await client.assistant_threads_setStatus(
        channel_id=ALICE_DM, thread_ts=thread.thread_ts, status=""
    )
    assert slack.status(ALICE_DM, thread.thread_ts) is None


@pytest.mark.parametrize(
    ("prompts", "problem"),
    [
        (
            [{"title": f"p{i}", "message": f"m{i}"} for i in range(5)],
            "must contain at most 4 items [json-pointer:/prompts]",
        ),
        ([{"title": "no message"}], "must be a non-empty string [json-pointer:/prompts/0/message]"),
        (["just text"], "must be an object [json-pointer:/prompts/0]"),
    ],
    ids=["five prompts", "no message", "not an object"],
)
async def test_prompts_breaking_slacks_rules_are_invalid_arguments(
    slack: SlackStandIn, client: AsyncWebClient, prompts: list[Any], problem: str
) -> None:
    thread = slack.workspace.start_assistant_thread("U0ALICE", None)

    error = await slack_error(
        client.assistant_threads_setSuggestedPrompts(
            channel_id=ALICE_DM, thread_ts=thread.thread_ts, prompts=prompts
        )
    )

    assert error.response["error"] == "invalid_arguments"
    assert error.response["errors"] == [problem]
    assert slack.snapshot()["assistant_threads"][0]["prompts"] == []


async def test_prompts_or_a_title_for_a_thread_that_is_not_an_assistant_thread_are_refused(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    question = await slack.post_as_user(ALICE_DM, "U0ALICE", "hi")

    title = await slack_error(
        client.assistant_threads_setTitle(channel_id=ALICE_DM, thread_ts=question.ts, title="x")
    )
    prompts = await slack_error(
        client.assistant_threads_setSuggestedPrompts(
            channel_id=ALICE_DM, thread_ts=question.ts, prompts=[{"title": "a", "message": "b"}]
        )
    )
    nowhere = await slack_error(
        client.assistant_threads_setStatus(channel_id="D0NOPE", thread_ts=question.ts, status="x")
    )

    assert title.response["error"] == prompts.response["error"] == "invalid_thread_ts"
    assert nowhere.response["error"] == "channel_not_found"


async def test_feedback_buttons_in_a_context_actions_block_are_accepted(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel=GENERAL, text="the answer", blocks=[section("the answer"), feedback_block()]
    )

    assert slack.messages(GENERAL)[-1].blocks[1] == feedback_block()
    assert posted["message"]["blocks"][1]["type"] == "context_actions"


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        (
            feedback_block(
                positive_button={"text": {"type": "plain_text", "text": "y" * 76}, "value": "v"}
            ),
            "must be less than 76 characters [json-pointer:/blocks/0/elements/0/positive_button/text/text]",
        ),
        (
            feedback_block(negative_button={"text": {"type": "plain_text", "text": "no"}}),
            "missing required field: value [json-pointer:/blocks/0/elements/0/negative_button]",
        ),
        (
            feedback_block(
                positive_button={"text": {"type": "mrkdwn", "text": "*y*"}, "value": "v"}
            ),
            "must be a plain_text object [json-pointer:/blocks/0/elements/0/positive_button/text]",
        ),
        (
            {"type": "context_actions", "elements": [{"type": "button", "action_id": "b"}]},
            "must be one of feedback_buttons, icon_button [json-pointer:/blocks/0/elements/0/type]",
        ),
        (
            {"type": "context_actions", "elements": [feedback_block()["elements"][0]] * 6},
            "must contain at most 5 items [json-pointer:/blocks/0/elements]",
        ),
    ],
    ids=["long text", "no value", "mrkdwn text", "a plain button", "six elements"],
)
async def test_feedback_buttons_breaking_slacks_rules_are_invalid_blocks(
    client: AsyncWebClient, block: dict[str, Any], problem: str
) -> None:
    error = await slack_error(client.chat_postMessage(channel=GENERAL, text="t", blocks=[block]))

    assert error.response["error"] == "invalid_blocks"
    assert problem in error.response["errors"]


# streaming


async def test_stream_renders_markdown_and_merges_task_updates_by_id(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    question = await slack.post_as_user(GENERAL, "U0ALICE", "research this")
    streamer = await client.chat_stream(
        channel=GENERAL,
        thread_ts=question.ts,
        recipient_team_id="T0BATON",
        recipient_user_id="U0ALICE",
        task_display_mode="plan",
    )
    await streamer.append(
        chunks=[
            PlanUpdateChunk(title="Research plan"),
            TaskUpdateChunk(id="t1", title="Search the web", status="in_progress"),
            TaskUpdateChunk(id="t2", title="Summarise", status="pending"),
        ]
    )
    await streamer.append(markdown_text="Found **three** sources. ")
    live = slack.thread(GENERAL, question.ts)[1]
    assert live.streaming is True

    await streamer.append(
        chunks=[TaskUpdateChunk(id="t1", title="Search the web", status="complete")]
    )
    await streamer.stop(
        chunks=[
            TaskUpdateChunk(id="t2", title="Summarise", status="complete", output="3 sources"),
            MarkdownTextChunk(text="Done."),
        ]
    )

    (_, message) = slack.thread(GENERAL, question.ts)
    assert message.streaming is False
    assert message.text == "Found **three** sources. Done."
    assert message.plan_title == "Research plan"
    assert message.task_display_mode == "plan"
    assert list(message.tasks) == ["t1", "t2"]
    assert message.tasks["t1"]["status"] == "complete"
    assert message.tasks["t2"] == {
        "id": "t2",
        "title": "Summarise",
        "status": "complete",
        "output": "3 sources",
    }
    # The recorded call carries the chunks decoded, as the client sent them.
    appended = slack.calls_to("chat.appendStream")[0].args["chunks"]
    assert [c["type"] for c in appended] == ["markdown_text", "task_update"]


async def test_append_after_stop_is_not_in_streaming_state(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    question = await slack.post_as_user(ALICE_DM, "U0ALICE", "hi")
    started = await client.chat_startStream(channel=ALICE_DM, thread_ts=question.ts)
    await client.chat_stopStream(channel=ALICE_DM, ts=started["ts"], markdown_text="bye")

    error = await slack_error(
        client.chat_appendStream(channel=ALICE_DM, ts=started["ts"], markdown_text="more")
    )
    assert error.response["error"] == "message_not_in_streaming_state"
    assert slack.messages(ALICE_DM)[-1].text == "bye"


async def test_update_while_streaming_conflicts_and_succeeds_after_stop(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    question = await slack.post_as_user(ALICE_DM, "U0ALICE", "hi")
    started = await client.chat_startStream(
        channel=ALICE_DM, thread_ts=question.ts, markdown_text="partial"
    )

    error = await slack_error(client.chat_update(channel=ALICE_DM, ts=started["ts"], text="x"))
    assert error.response["error"] == "streaming_state_conflict"

    await client.chat_stopStream(channel=ALICE_DM, ts=started["ts"])
    await client.chat_update(channel=ALICE_DM, ts=started["ts"], text="final")
    assert slack.messages(ALICE_DM)[-1].text == "final"


async def test_idle_stream_expires_and_can_then_be_finished_with_update() -> None:
    async with SlackStandIn(stream_ttl=0.05) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        question = await slack.post_as_user(ALICE_DM, "U0ALICE", "hi")
        started = await client.chat_startStream(
            channel=ALICE_DM, thread_ts=question.ts, markdown_text="thinking"
        )
        await asyncio.sleep(0.1)

        error = await slack_error(
            client.chat_appendStream(channel=ALICE_DM, ts=started["ts"], markdown_text="late")
        )
        assert error.response["error"] == "message_not_in_streaming_state"
        stop = await slack_error(client.chat_stopStream(channel=ALICE_DM, ts=started["ts"]))
        assert stop.response["error"] == "message_not_in_streaming_state"

        await client.chat_update(channel=ALICE_DM, ts=started["ts"], text="finished late")
        message = slack.messages(ALICE_DM)[-1]
        assert (message.text, message.stream_expired) == ("finished late", True)


async def test_stream_needs_thread_ts_and_recipients_outside_a_dm(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    no_thread = await slack_error(client.api_call("chat.startStream", json={"channel": ALICE_DM}))
    assert no_thread.response["error"] == "invalid_arguments"

    question = await slack.post_as_user(GENERAL, "U0ALICE", "hi")
    no_recipient = await slack_error(
        client.chat_startStream(channel=GENERAL, thread_ts=question.ts)
    )
    assert no_recipient.response["error"] == "invalid_arguments"

    ok = await client.chat_startStream(
        channel=GENERAL,
        thread_ts=question.ts,
        recipient_user_id="U0ALICE",
        recipient_team_id="T0BATON",
    )
    assert ok["ts"]


# Slack's limits and errors


async def test_text_over_4000_characters_is_msg_too_long(client: AsyncWebClient) -> None:
    error = await slack_error(client.chat_postMessage(channel=GENERAL, text="x" * 4001))
    assert error.response["error"] == "msg_too_long"
    assert (await client.chat_postMessage(channel=GENERAL, text="x" * 4000))["ok"]


async def test_blocks_with_too_much_text_in_total_are_msg_too_long(client: AsyncWebClient) -> None:
    blocks = [section("y" * 2900) for _ in range(5)]
    error = await slack_error(client.chat_postMessage(channel=GENERAL, text="t", blocks=blocks))
    assert error.response["error"] == "msg_too_long"


@pytest.mark.parametrize(
    "blocks",
    [
        [section("ok")] * 51,
        [section("z" * 3001)],
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        [{"text": "a block without a type"}],
    ],
    ids=["51 blocks", "long section", "long header", "no type"],
)
async def test_blocks_breaking_block_kit_rules_are_invalid_blocks(
    client: AsyncWebClient, blocks: list[dict[str, Any]]
) -> None:
    error = await slack_error(client.chat_postMessage(channel=GENERAL, text="t", blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    assert error.response["errors"]


async def test_message_without_text_or_blocks_is_no_text(client: AsyncWebClient) -> None:
    error = await slack_error(client.api_call("chat.postMessage", json={"channel": GENERAL}))
    assert error.response["error"] == "no_text"


async def test_unknown_channel_is_channel_not_found(client: AsyncWebClient) -> None:
    error = await slack_error(client.chat_postMessage(channel="C0NOPE", text="hello?"))
    assert error.response["error"] == "channel_not_found"
    assert error.response.status_code == 200


async def test_bad_or_missing_token_is_refused(slack: SlackStandIn) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    assert (await slack_error(wrong.auth_test())).response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=slack.api_url)
    assert (await slack_error(anonymous.auth_test())).response["error"] == "not_authed"


async def test_unknown_method_answers_unknown_method_with_http_200(client: AsyncWebClient) -> None:
    error = await slack_error(client.api_call("chat.teleport", json={"channel": GENERAL}))
    assert error.response["error"] == "unknown_method"
    assert error.response.status_code == 200


async def test_injected_error_is_answered_once(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.fail("chat.postMessage", "fatal_error")
    error = await slack_error(client.chat_postMessage(channel=GENERAL, text="a"))
    assert error.response["error"] == "fatal_error"
    assert (await client.chat_postMessage(channel=GENERAL, text="b"))["ok"]


# rate limits


async def test_ratelimited_call_is_http_429_with_retry_after(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.ratelimit("chat.postMessage", times=1, retry_after=7)

    error = await slack_error(client.chat_postMessage(channel=GENERAL, text="hello"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"
    assert slack.messages(GENERAL) == []
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429]


async def test_retry_handler_gets_the_message_through_exactly_once(slack: SlackStandIn) -> None:
    client = AsyncWebClient(
        token=slack.token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
    )
    slack.ratelimit("chat.postMessage", times=2, retry_after=0)

    resp = await client.chat_postMessage(channel=GENERAL, text="eventually")

    assert resp["ok"] is True
    assert [m.text for m in slack.messages(GENERAL)] == ["eventually"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 429, 200]


async def test_ratelimit_all_hits_whatever_method_comes_next(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.ratelimit_all(times=1)
    error = await slack_error(client.auth_test())
    assert error.response.status_code == 429
    assert (await client.auth_test())["ok"]


# views


async def test_views_open_push_and_update_track_the_persons_modals(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    modal = {
        "type": "modal",
        "callback_id": "reject_reason",
        "title": {"type": "plain_text", "text": "Reject"},
        "blocks": [section("Why?")],
    }
    opened = await client.views_open(trigger_id=slack.trigger_id("U0BOB"), view=modal)
    view_id = opened["view"]["id"]
    assert [v.id for v in slack.open_views("U0BOB")] == [view_id]

    pushed = await client.views_push(trigger_id=slack.trigger_id("U0BOB"), view=modal)
    assert pushed["view"]["root_view_id"] == view_id

    changed = {**modal, "blocks": [section("Why, really?")]}
    await client.views_update(view_id=view_id, hash=opened["view"]["hash"], view=changed)
    assert slack.open_views("U0BOB")[0].body["blocks"] == [section("Why, really?")]
    stale = await slack_error(client.views_update(view_id=view_id, hash="old", view=modal))
    assert stale.response["error"] == "hash_conflict"


async def test_views_open_after_the_trigger_expired_fails() -> None:
    async with SlackStandIn(trigger_ttl=0.01) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        trigger = slack.trigger_id("U0ALICE")
        await asyncio.sleep(0.05)
        view = {"type": "modal", "title": {"type": "plain_text", "text": "Late"}, "blocks": []}
        error = await slack_error(client.views_open(trigger_id=trigger, view=view))
        assert error.response["error"] == "expired_trigger_id"


# watching the workspace


async def test_subscribers_see_every_change_sync_or_async(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    seen: list[Change] = []
    seen_async: list[str] = []

    async def async_listener(change: Change) -> None:
        seen_async.append(change["type"])

    slack.subscribe(seen.append)
    unsubscribe = slack.subscribe(async_listener)
    posted = await client.chat_postMessage(channel=GENERAL, text="one")
    await client.chat_update(channel=GENERAL, ts=posted["ts"], text="two")
    unsubscribe()
    await client.chat_delete(channel=GENERAL, ts=posted["ts"])

    assert [c["type"] for c in seen] == ["message_posted", "message_updated", "message_deleted"]
    assert seen[1]["message"]["text"] == "two"
    assert seen_async == ["message_posted", "message_updated"]


async def test_snapshot_is_json_holding_what_a_live_view_draws(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    question = await slack.post_as_user(ALICE_DM, "U0ALICE", "hi")
    await client.chat_startStream(
        channel=ALICE_DM,
        thread_ts=question.ts,
        chunks=[TaskUpdateChunk(id="t1", title="Look around", status="in_progress")],
    )

    state = json.loads(json.dumps(slack.snapshot()))

    assert {c["id"] for c in state["channels"]} >= {GENERAL, ALICE_DM, "D0BOB"}
    assert [u["id"] for u in state["users"]] == ["U0ALICE", "U0BOB"]
    streamed = state["messages"][ALICE_DM][-1]
    assert streamed["streaming"] is True
    assert streamed["tasks"] == [{"id": "t1", "title": "Look around", "status": "in_progress"}]


async def test_wait_for_returns_once_background_work_has_posted(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel=GENERAL, text="background result")

    task = asyncio.create_task(later())
    messages = await slack.wait_for(lambda: slack.messages(GENERAL), timeout=2)
    await task
    assert messages[0].text == "background result"

    with pytest.raises(TimeoutError):
        await slack.wait_for(lambda: len(slack.messages(GENERAL)) > 1, timeout=0.05)


# signing requests into the bot


def test_sign_reproduces_slacks_documented_test_vector() -> None:
    body = (PAYLOADS / "slash_command_signature_test_vector.slack_docs.txt").read_bytes()
    secret, timestamp = "8f742231b10e8888abcd99yyyzzz85a5", 1531420618
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

    assert sign(secret, timestamp, body) == expected
    verifier = SignatureVerifier(secret)
    assert verifier.generate_signature(timestamp=str(timestamp), body=body.decode()) == expected
    now = int(time.time())
    headers = signed_headers(secret, body, content_type=FORM, timestamp=now)
    assert verifier.is_valid_request(body, headers)


def test_retry_headers_are_sent_only_on_retries() -> None:
    first = signed_headers(SECRET, b"{}", content_type=JSON_TYPE)
    retry = signed_headers(SECRET, b"{}", content_type=JSON_TYPE, retry_num=2)
    assert "X-Slack-Retry-Num" not in first
    assert (retry["X-Slack-Retry-Num"], retry["X-Slack-Retry-Reason"]) == ("2", "http_timeout")


def test_interactivity_bodies_are_encoded_like_slacks() -> None:
    sample = json.loads((PAYLOADS / "block_actions_button_click.bolt_tests.json").read_text())
    encoded = (PAYLOADS / "block_actions_button_click.form_encoded.txt").read_bytes()
    assert block_actions_body(sample) == encoded.strip()

    submission = json.loads((PAYLOADS / "view_submission.bolt_tests.json").read_text())
    assert view_submission_body(submission) == b"payload=" + quote(json.dumps(submission)).encode()


def test_slash_command_and_event_bodies_have_slacks_fields() -> None:
    sample = parse_qs((PAYLOADS / "slash_command_body.slack_docs.txt").read_text())
    ours = parse_qs(slash_command_body("/baton", "plan a launch").decode())
    assert set(sample) - {"enterprise_id", "enterprise_name"} <= set(ours)
    assert ours["command"] == ["/baton"] and ours["text"] == ["plan a launch"]

    docs = json.loads((PAYLOADS / "app_mention_event_callback.bolt_tests.json").read_text())
    envelope = json.loads(event_callback_body(docs["event"], event_id="Ev1"))
    assert set(docs) - {"event_context"} <= set(envelope)
    assert envelope["event_id"] == "Ev1" and envelope["authorizations"][0]["is_bot"] is True


@pytest.fixture
async def bolt_url(slack: SlackStandIn) -> AsyncIterator[str]:
    """A real Bolt app over HTTP, whose Web API client talks to the stand-in."""
    app = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token=slack.token, base_url=slack.api_url),
    )

    @app.command("/baton")
    async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_postMessage(
            channel=command["channel_id"], text=f"on it: {command['text']}"
        )

    @app.event("app_mention")
    async def mention(event: dict[str, Any], client: AsyncWebClient) -> None:
        await client.chat_postMessage(
            channel=event["channel"], thread_ts=event["ts"], text="hello!"
        )

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/slack/events"
    await runner.cleanup()


async def test_signed_slash_command_reaches_bolt_and_its_reply_reaches_the_stand_in(
    slack: SlackStandIn, bolt_url: str
) -> None:
    body = slash_command_body("/baton", "plan a launch", channel_id=GENERAL)
    status, _ = await deliver(None, bolt_url, SECRET, body=body, content_type=FORM)

    assert status == 200
    reply = await slack.wait_for(lambda: slack.messages(GENERAL))
    assert reply[0].text == "on it: plan a launch"


async def test_bolt_refuses_a_wrongly_signed_or_stale_request(bolt_url: str) -> None:
    body = slash_command_body("/baton", "hi")
    async with aiohttp.ClientSession() as session:
        wrong, _ = await deliver(session, bolt_url, "not-the-secret", body=body, content_type=FORM)
        stale, _ = await deliver(
            session,
            bolt_url,
            SECRET,
            body=body,
            content_type=FORM,
            timestamp=int(time.time()) - 600,
        )
    assert (wrong, stale) == (401, 401)


async def test_signed_mention_event_gets_a_threaded_reply(
    slack: SlackStandIn, bolt_url: str
) -> None:
    mention = await slack.post_as_user(GENERAL, "U0ALICE", "<@U0BATON> hi")
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": mention.text,
        "ts": mention.ts,
        "channel": GENERAL,
        "event_ts": mention.ts,
    }
    body = event_callback_body(event, event_id="Ev0MENTION")
    status, _ = await deliver(None, bolt_url, SECRET, body=body, content_type=JSON_TYPE)

    assert status == 200
    await slack.wait_for(lambda: len(slack.thread(GENERAL, mention.ts)) == 2)
    reply = slack.thread(GENERAL, mention.ts)[1]
    assert (reply.text, reply.user) == ("hello!", "U0BATON")


async def test_an_install_code_is_exchanged_once_and_each_token_is_its_own_workspace() -> None:
    async with SlackStandIn() as slack:
        slack.add_team("T0SECOND", token="xoxb-second")
        app = AsyncWebClient(base_url=slack.api_url)
        code = slack.allow_install("T0SECOND")
        with pytest.raises(SlackApiError) as refused:
            await app.oauth_v2_access(client_id=slack.client_id, client_secret="wrong", code=code)
        assert refused.value.response["error"] == "invalid_client_id"
        granted = await app.oauth_v2_access(
            client_id=slack.client_id, client_secret=slack.client_secret, code=code
        )
        assert granted["access_token"] == "xoxb-second"
        assert granted["team"]["id"] == "T0SECOND"
        with pytest.raises(SlackApiError) as again:
            await app.oauth_v2_access(
                client_id=slack.client_id, client_secret=slack.client_secret, code=code
            )
        assert again.value.response["error"] == "invalid_code"

        second = AsyncWebClient(token="xoxb-second", base_url=slack.api_url)
        first = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        assert (await second.auth_test())["team_id"] == "T0SECOND"
        assert (await first.auth_test())["team_id"] == slack.workspace.team_id
        await second.chat_postMessage(channel="C0GENERAL", text="hello from two")
        assert [m.text for m in slack.team("T0SECOND").all_messages("C0GENERAL")] == [
            "hello from two"
        ]
        assert slack.messages("C0GENERAL") == []
        assert slack.calls_to("chat.postMessage")[-1].token == "xoxb-second"

        slack.revoke("T0SECOND")
        with pytest.raises(SlackApiError) as revoked:
            await second.auth_test()
        assert revoked.value.response["error"] == "invalid_auth"


# who is in a channel


async def test_conversations_members_lists_a_channels_people_and_the_bot_page_by_page() -> None:
    from sandbox.workspace import DEFAULT_CHANNELS, Channel

    private = Channel("C0EXEC", "exec", is_private=True, members=("U0ALICE",))
    async with SlackStandIn(channels=(*DEFAULT_CHANNELS, private)) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)

        everyone = await client.conversations_members(channel=GENERAL)
        first = await client.conversations_members(channel=GENERAL, limit=2)
        rest = await client.conversations_members(
            channel=GENERAL, cursor=first["response_metadata"]["next_cursor"]
        )
        exec_ = await client.conversations_members(channel="C0EXEC")
        dm = await client.conversations_members(channel=ALICE_DM)
        missing = await slack_error(client.conversations_members(channel="C0NOPE"))

    assert everyone["members"] == ["U0ALICE", "U0BOB", "U0BATON"]
    assert first["members"] + rest["members"] == everyone["members"]
    assert exec_["members"] == ["U0ALICE", "U0BATON"]
    assert dm["members"] == ["U0ALICE", "U0BATON"]
    assert missing.response["error"] == "channel_not_found"

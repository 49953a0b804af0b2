"""The sandbox page's API, without a browser: what a person does reaches Baton as Slack sends
it, and what Baton does reaches the person's page — live, and only what they may see."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.request.payload_utils import (
    is_assistant_thread_context_changed_event,
    is_assistant_thread_started_event,
    is_user_message_event_in_assistant_thread,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

from sandbox.launch import Sandbox
from sandbox.relay import Relay
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import runs
from storage.models import Run
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.harness import PAYLOADS, running_sandbox, sample

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
GENERAL = "C0GENERAL"


@dataclass
class Page:
    """The calls the sandbox page makes, for one test."""

    session: aiohttp.ClientSession
    sandbox: Sandbox

    @property
    def slack(self) -> SlackStandIn:
        return self.sandbox.slack

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(path, json=body) as resp:
            answer: dict[str, Any] = await resp.json()
            return answer

    async def say(
        self, user: str, text: str, *, channel: str = GENERAL, thread_ts: str | None = None
    ) -> dict[str, Any]:
        body = {"user": user, "channel": channel, "text": text, "thread_ts": thread_ts}
        return await self.post("/api/messages", body)

    async def click(self, user: str, message: Message, label: str) -> dict[str, Any]:
        for index, block in enumerate(message.blocks):
            for element in block.get("elements") or []:
                if element.get("type") == "button" and element["text"]["text"] == label:
                    return await self.post(
                        "/api/actions",
                        {
                            "user": user,
                            "channel": message.channel,
                            "ts": message.ts,
                            "action_id": element["action_id"],
                            "block_index": index,
                        },
                    )
        raise AssertionError(f"no button {label!r} in the message")

    async def state(self, user: str) -> dict[str, Any]:
        async with self.session.get("/api/state", params={"user": user}) as resp:
            assert resp.status == 200
            state: dict[str, Any] = await resp.json()
            return state

    async def approval_message(self, channel: str = GENERAL) -> Message:
        def waiting() -> Message | None:
            return next(
                (
                    m
                    for m in self.slack.messages(channel)
                    if any(str(b.get("block_id", "")).startswith("approval:") for b in m.blocks)
                ),
                None,
            )

        found = await self.slack.wait_for(waiting, timeout=15)
        assert found is not None
        return found

    async def answer(self, root: Message) -> Message:
        """The message that ends the run: its footer names the run and what it cost."""

        def footed() -> Message | None:
            return next(
                (
                    m
                    for m in self.slack.thread(root.channel, root.ts)
                    if m.blocks and "tokens" in json.dumps(m.blocks[-1])
                ),
                None,
            )

        found = await self.slack.wait_for(footed, timeout=15)
        assert found is not None
        return found


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox() as running:
        yield running


@pytest.fixture
async def page(sandbox: Sandbox) -> AsyncIterator[Page]:
    async with aiohttp.ClientSession(base_url=sandbox.url) as session:
        yield Page(session, sandbox)


def root_of(page: Page, ts: str) -> Message:
    return next(m for m in page.slack.messages(GENERAL) if m.ts == ts)


def texts_for(state: dict[str, Any], channel: str = GENERAL) -> list[str]:
    return [m["text"] for m in state["messages"].get(channel, [])]


async def test_a_mention_typed_on_the_page_becomes_a_run_answered_in_its_thread(
    page: Page, sandbox: Sandbox
) -> None:
    answer = await page.say(ALICE, "@Baton run shop-health")

    assert answer == {
        "ok": True,
        "detail": "",
        "ts": answer["ts"],
        "delivered": "app_mention",
        "errors": {},
    }
    root = root_of(page, answer["ts"])
    assert root.text == "<@U0BATON> run shop-health" and root.user == ALICE
    final = await page.answer(root)
    assert "payments/health → 503" in final.text
    stream = next(m for m in page.slack.thread(GENERAL, root.ts) if m.tasks)
    assert {t["status"] for t in stream.tasks.values()} == {"complete"}
    assert sandbox.baton is not None
    run = await runs.latest_run(sandbox.baton.db, channel_id=GENERAL)
    assert run is not None and run.playbook == "shop-health" and run.user_id == ALICE


async def test_a_plain_channel_message_stays_in_the_channel_and_a_dm_reaches_baton(
    page: Page,
) -> None:
    quiet = await page.say(BOB, "lunch at noon?")
    dm = await page.say(
        ALICE, "is the shop up? check " + page.sandbox.shop.url + "/health", channel="D0ALICE"
    )

    assert quiet["ok"] and quiet["delivered"] is None
    assert dm["ok"] and dm["delivered"] == "message"
    root = next(m for m in page.slack.messages("D0ALICE") if m.ts == dm["ts"])
    final = await page.answer(root)
    assert "/health → 200" in final.text


async def test_a_reply_in_batons_thread_on_the_page_is_a_follow_up_and_others_are_not(
    page: Page, sandbox: Sandbox
) -> None:
    shop = page.sandbox.shop.url
    first = await page.say(ALICE, f"@Baton check {shop}/health")
    root = root_of(page, first["ts"])
    await page.answer(root)
    chat = await page.say(BOB, "lunch at noon?")
    aside = await page.say(ALICE, f"check {shop}/health too", thread_ts=chat["ts"])
    follow = await page.say(ALICE, f"and {shop}/payments/health?", thread_ts=root.ts)

    assert (aside["delivered"], follow["delivered"]) == ("message", "message")

    def answered_twice() -> bool:
        return (
            len([m for m in page.slack.thread(GENERAL, root.ts) if "payments/health" in m.text]) > 1
        )

    await page.slack.wait_for(answered_twice, timeout=15)
    assert sandbox.baton is not None
    async with sandbox.baton.db.session() as s:
        requests = sorted(r.request for r in (await s.exec(select(Run))).all())
    # Slack shows the links as <url>; one run each, and none for the thread Baton is not in.
    assert requests == [f"and <{shop}/payments/health>?", f"check <{shop}/health>"]
    assert [m.user for m in page.slack.thread(GENERAL, chat["ts"])] == [BOB, ALICE]


async def test_a_slash_command_with_bad_input_shows_the_error_only_to_its_author(
    page: Page,
) -> None:
    answer = await page.say(ALICE, "/baton run no-such-playbook")

    assert answer["ok"] and answer["delivered"] == "slash_command"
    [reply] = [m for m in page.slack.messages(GENERAL) if m.ephemeral_for == ALICE]
    assert reply.text.startswith("There is no playbook called `no-such-playbook`")
    assert page.slack.calls_to("command_ack")
    alice, bob = await page.state(ALICE), await page.state(BOB)
    assert any("no-such-playbook" in t for t in texts_for(alice))
    assert not any("no-such-playbook" in t for t in texts_for(bob))


async def test_an_unknown_command_is_answered_by_slack_itself(page: Page) -> None:
    answer = await page.say(ALICE, "/deploy now")

    assert answer["ok"] and answer["delivered"] is None
    [note] = [m for m in page.slack.messages(GENERAL) if m.ephemeral_for == ALICE]
    assert note.user == "USLACKBOT" and "`/deploy` is not a valid command" in note.text


async def test_people_see_their_own_dm_and_not_each_others(page: Page) -> None:
    await page.say(ALICE, "hello", channel="D0ALICE")

    alice, bob = await page.state(ALICE), await page.state(BOB)
    assert "D0ALICE" in {c["id"] for c in alice["channels"]}
    assert "D0ALICE" not in {c["id"] for c in bob["channels"]}
    assert "D0ALICE" not in bob["messages"] and "D0BOB" in bob["messages"]


async def test_only_the_approver_can_approve_and_others_are_told_privately(page: Page) -> None:
    started = await page.say(ALICE, "@Baton run deploy")
    approval = await page.approval_message()

    refused = await page.click(CAROL, approval, "Approve")
    assert refused["ok"] and refused["delivered"] == "block_actions"
    note = await page.slack.wait_for(
        lambda: [m for m in page.slack.messages(GENERAL) if m.ephemeral_for == CAROL]
    )
    assert note[0].text == "You cannot approve or reject this: <@U0BOB> can. Nothing was changed."
    assert page.sandbox.shop.calls == []
    assert not any("cannot approve" in t for t in texts_for(await page.state(BOB)))

    assert (await page.click(BOB, approval, "Approve"))["ok"]
    final = await page.answer(root_of(page, started["ts"]))
    assert "Webhook 'deploys' → 202" in final.text
    [call] = page.sandbox.shop.calls
    assert call.body == {"service": "shop", "version": "1.4.2"} and call.idempotency_key


async def test_reject_with_reason_opens_a_modal_whose_submission_reaches_baton(
    page: Page,
) -> None:
    started = await page.say(ALICE, "@Baton run deploy")
    approval = await page.approval_message()

    await page.click(BOB, approval, "Reject with reason")
    # The form opens right after the click's ack.
    await page.slack.wait_for(lambda: page.slack.open_views(BOB))
    [view] = (await page.state(BOB))["views"]
    assert view["title"]["text"] == "Reject with reason"
    assert (await page.state(ALICE))["views"] == []

    empty = await page.post(
        "/api/views/submit",
        {
            "user": BOB,
            "view_id": view["id"],
            "values": {"reason": {"reason_input": {"type": "plain_text_input", "value": " "}}},
        },
    )
    assert not empty["ok"] and "reason" in empty["errors"]
    assert page.slack.open_views(BOB)

    done = await page.post(
        "/api/views/submit",
        {
            "user": BOB,
            "view_id": view["id"],
            "values": {
                "reason": {"reason_input": {"type": "plain_text_input", "value": "Not on a Friday"}}
            },
        },
    )
    assert done["ok"] and not page.slack.open_views(BOB)
    final = await page.answer(root_of(page, started["ts"]))
    assert "`webhook_post` was not called: rejected by <@U0BOB>" in final.text
    assert "Not on a Friday" in final.text and "Do not try it again" not in final.text
    assert page.sandbox.shop.calls == []


async def test_closing_a_modal_closes_it_for_that_person(page: Page) -> None:
    await page.say(ALICE, "@Baton run deploy")
    approval = await page.approval_message()
    await page.click(BOB, approval, "Reject with reason")
    [view] = await page.slack.wait_for(lambda: page.slack.open_views(BOB))

    closed = await page.post("/api/views/close", {"user": BOB, "view_id": view.id, "values": {}})

    assert closed["ok"] and page.slack.open_views(BOB) == []


async def test_a_reload_shows_the_same_state(page: Page) -> None:
    started = await page.say(ALICE, "@Baton run shop-health")
    await page.answer(root_of(page, started["ts"]))

    first, again = await page.state(ALICE), await page.state(ALICE)

    assert first["messages"] == again["messages"] and first["seq"] == again["seq"]
    thread = [m for m in first["messages"][GENERAL] if m.get("thread_ts") == started["ts"]]
    assert thread[0]["text"] == "<@U0BATON> run shop-health"
    assert any(m["tasks"] for m in thread) and first["seq"] > 0
    assert {"method": "chat.startStream", "ok": True} in [
        {"method": c["method"], "ok": c["ok"]} for c in first["calls"]
    ]


async def test_the_home_tab_is_published_for_the_person_who_opened_it(page: Page) -> None:
    assert (await page.post("/api/home", {"user": ALICE}))["ok"]

    await page.slack.wait_for(lambda: page.slack.workspace.home_views.get(ALICE))
    home = (await page.state(ALICE))["home"]
    assert home["type"] == "home" and (await page.state(BOB))["home"] is None


async def test_an_approval_waiting_on_the_home_tab_is_decided_from_its_button(
    page: Page,
) -> None:
    started = await page.say(ALICE, "@Baton run deploy")
    await page.approval_message()
    assert (await page.post("/api/home", {"user": BOB}))["ok"]
    await page.slack.wait_for(
        lambda: "home:approve" in json.dumps(page.slack.workspace.home_views.get(BOB))
    )

    clicked = await page.post(
        "/api/actions", {"user": BOB, "home": True, "action_id": "home:approve"}
    )
    assert clicked["ok"] and clicked["delivered"] == "block_actions"
    final = await page.answer(root_of(page, started["ts"]))
    assert "Webhook 'deploys' → 202" in final.text and len(page.sandbox.shop.calls) == 1
    home = json.dumps((await page.state(BOB))["home"])
    assert "Approved run" in home and "home:approve" not in home


async def test_the_socket_pushes_each_change_only_to_the_people_who_may_see_it(
    page: Page, sandbox: Sandbox
) -> None:
    client = AsyncWebClient(token=sandbox.slack.token, base_url=sandbox.slack.api_url)
    seq = (await page.state(ALICE))["seq"]
    async with (
        page.session.ws_connect("/ws", params={"user": ALICE}) as alice_socket,
        page.session.ws_connect("/ws", params={"user": BOB}) as bob_socket,
    ):
        await client.chat_postEphemeral(channel=GENERAL, user=ALICE, text="psst, Alice")
        frames = [json.loads((await alice_socket.receive(timeout=5)).data) for _ in range(2)]
        await client.chat_postMessage(channel=GENERAL, text="hello everyone")
        bob_frames = [json.loads((await bob_socket.receive(timeout=5)).data) for _ in range(3)]

    [change] = [f["change"] for f in frames if "change" in f]
    assert change["type"] == "message_posted" and change["message"]["text"] == "psst, Alice"
    assert all(f["seq"] > seq for f in frames)
    # Bob is told that a call happened, but not what Alice alone may see.
    assert [f["change"]["message"]["text"] for f in bob_frames if "change" in f] == [
        "hello everyone"
    ]
    assert [f["call"]["method"] for f in bob_frames if "call" in f] == [
        "chat.postEphemeral",
        "chat.postMessage",
    ]


async def test_rate_limits_can_be_asked_for_and_baton_waits_them_out(page: Page) -> None:
    assert (await page.post("/api/faults", {"user": ALICE, "method": "chat.startStream"}))["ok"]

    started = await page.say(ALICE, "@Baton run shop-health")
    await page.answer(root_of(page, started["ts"]))

    streams = page.slack.calls_to("chat.startStream")
    assert [(c.status, c.response.get("error")) for c in streams] == [
        (429, "ratelimited"),
        (200, None),
    ]


async def test_mistakes_in_a_request_are_a_400_with_a_reason(page: Page) -> None:
    async with page.session.post("/api/messages", json={"user": "U0NOBODY", "text": "x"}) as resp:
        assert resp.status == 400 and "no such person" in (await resp.json())["detail"]
    async with page.session.post(
        "/api/messages", json={"user": ALICE, "channel": "C0NOPE", "text": "x"}
    ) as resp:
        assert resp.status == 400 and (await resp.json())["detail"] == "channel_not_found"


# What goes to Baton, checked against Slack's own samples and signature scheme.


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[Received]]]:
    """A stand-in for Baton's /slack/events that keeps what it is sent."""
    received: list[Received] = []

    async def events(request: web.Request) -> web.Response:
        received.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", received
    await runner.cleanup()


def signed_correctly(secret: str, request: Received) -> bool:
    return SignatureVerifier(secret).is_valid(
        request.body,
        request.headers["X-Slack-Request-Timestamp"],
        request.headers["X-Slack-Signature"],
    )


async def test_what_a_person_does_is_sent_signed_and_shaped_like_slacks_samples(
    recorder: tuple[str, list[Received]],
) -> None:
    url, received = recorder
    slack_click = sample("block_actions_button_click.bolt_tests.json")
    slack_submit = sample("view_submission.bolt_tests.json")
    async with SlackStandIn() as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        posted = await client.chat_postMessage(
            channel=GENERAL, text="pick", blocks=slack_click["message"]["blocks"]
        )
        view = {k: slack_submit["view"][k] for k in ("type", "title", "blocks", "callback_id")}
        opened = await client.views_open(trigger_id=slack.trigger_id(ALICE), view=view)
        relay = Relay(slack, events_url=url, signing_secret="s3cret")
        try:
            await relay.say(ALICE, GENERAL, "@Baton hey")
            await relay.say(ALICE, GENERAL, "/baton help")
            await relay.click(ALICE, GENERAL, posted["ts"], action_id="button", block_index=0)
            values = {"hspI": {"maBWU": {"type": "plain_text_input", "value": "test"}}}
            await relay.submit(ALICE, opened["view"]["id"], values)
        finally:
            await relay.aclose()

    mention, command, click, submit = received
    assert all(signed_correctly("s3cret", r) for r in received)
    assert not signed_correctly("another-secret", mention)

    envelope = json.loads(mention.body)
    slack_mention = sample("app_mention_event_callback.bolt_tests.json")
    assert mention.headers["Content-Type"] == "application/json"
    assert set(slack_mention) - {"event_context"} <= set(envelope)
    assert set(slack_mention["event"]) <= set(envelope["event"])
    assert envelope["event"]["text"] == "<@U0BATON> hey"
    assert envelope["event"]["blocks"][0]["elements"][0]["elements"] == [
        {"type": "user", "user_id": "U0BATON"},
        {"type": "text", "text": " hey"},
    ]

    fields = dict(parse_qsl(command.body.decode()))
    documented = dict(parse_qsl((PAYLOADS / "slash_command_body.slack_docs.txt").read_text()))
    assert set(documented) - {"enterprise_id", "enterprise_name"} <= set(fields)
    assert (fields["command"], fields["text"], fields["user_id"]) == ("/baton", "help", ALICE)

    pressed = json.loads(dict(parse_qsl(click.body.decode()))["payload"])
    assert set(slack_click) <= set(pressed)
    assert set(slack_click["container"]) <= set(pressed["container"])
    assert set(slack_click["actions"][0]) <= set(pressed["actions"][0])
    assert pressed["actions"][0]["value"] == "clicked" and pressed["user"]["id"] == ALICE
    assert pressed["message"]["ts"] == posted["ts"]

    submitted = json.loads(dict(parse_qsl(submit.body.decode()))["payload"])
    assert set(slack_submit) <= set(submitted)
    assert set(slack_submit["view"]) <= set(submitted["view"])
    assert submitted["view"]["state"]["values"] == values


FEEDBACK = {
    "type": "context_actions",
    "elements": [
        {
            "type": "feedback_buttons",
            "action_id": "answer_feedback",
            "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": "good"},
            "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": "bad"},
        }
    ],
}


async def test_the_assistant_container_is_delivered_as_slacks_assistant_events(
    recorder: tuple[str, list[Received]],
) -> None:
    url, received = recorder
    started = sample("assistant_thread_started_event_callback.bolt_tests.json")
    in_thread = sample("message_im_in_thread_event_callback.bolt_tests.json")
    async with SlackStandIn() as slack:
        relay = Relay(slack, events_url=url, signing_secret="s3cret")
        try:
            opened = await relay.open_assistant(ALICE, GENERAL)
            moved = await relay.change_context(ALICE, str(opened.ts), "C0RANDOM")
            stayed = await relay.change_context(ALICE, str(opened.ts), "C0RANDOM")
            asked = await relay.say(ALICE, "D0ALICE", "is the shop up?", thread_ts=opened.ts)
        finally:
            await relay.aclose()

    assert (opened.delivered, moved.delivered, stayed.delivered, asked.delivered) == (
        "assistant_thread_started",
        "assistant_thread_context_changed",
        None,
        "message",
    )
    first, second, message = (json.loads(r.body) for r in received)
    assert all(signed_correctly("s3cret", r) for r in received)
    assert is_assistant_thread_started_event(first)
    assert is_assistant_thread_context_changed_event(second)
    assert is_user_message_event_in_assistant_thread(message)
    assert set(started["event"]) <= set(first["event"])
    thread = first["event"]["assistant_thread"]
    assert set(started["event"]["assistant_thread"]) <= set(thread)
    assert set(thread["context"]) <= set(started["event"]["assistant_thread"]["context"])
    assert (thread["user_id"], thread["channel_id"], thread["thread_ts"]) == (
        ALICE,
        "D0ALICE",
        opened.ts,
    )
    assert thread["context"]["channel_id"] == GENERAL
    assert second["event"]["assistant_thread"]["context"]["channel_id"] == "C0RANDOM"
    assert set(in_thread["event"]) - {"user_team", "source_team", "user_profile", "blocks"} <= set(
        message["event"]
    )
    assert message["event"]["thread_ts"] == opened.ts
    assert message["event"]["parent_user_id"] == "U0BATON"
    [root] = [m for m in slack.messages("D0ALICE") if m.ts == opened.ts]
    assert root.subtype == "assistant_app_thread"


async def test_a_feedback_click_is_delivered_with_the_pressed_buttons_value(
    recorder: tuple[str, list[Received]],
) -> None:
    url, received = recorder
    async with SlackStandIn() as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        posted = await client.chat_postMessage(
            channel=GENERAL,
            text="the answer",
            blocks=[
                {"type": "section", "text": {"type": "mrkdwn", "text": "the answer"}},
                FEEDBACK,
            ],
        )
        relay = Relay(slack, events_url=url, signing_secret="s3cret")
        try:
            clicked = await relay.click(
                BOB,
                GENERAL,
                posted["ts"],
                action_id="answer_feedback",
                block_index=1,
                feedback="negative",
            )
        finally:
            await relay.aclose()

    assert clicked.ok and clicked.delivered == "block_actions"
    pressed = json.loads(dict(parse_qsl(received[0].body.decode()))["payload"])
    [chosen] = pressed["actions"]
    assert chosen["type"] == "feedback_buttons" and chosen["action_id"] == "answer_feedback"
    assert chosen["value"] == "bad" and chosen["text"] == {"type": "plain_text", "text": "👎"}
    assert chosen["block_id"] == "b1" and chosen["action_ts"]
    assert pressed["user"]["id"] == BOB and pressed["message"]["ts"] == posted["ts"]


async def test_a_permalink_opens_the_page_at_its_message(page: Page, sandbox: Sandbox) -> None:
    client = AsyncWebClient(token=sandbox.slack.token, base_url=sandbox.slack.api_url)
    parent = await client.chat_postMessage(channel=GENERAL, text="parent")
    reply = await client.chat_postMessage(channel=GENERAL, thread_ts=parent["ts"], text="reply")

    links = [
        (await client.chat_getPermalink(channel=GENERAL, message_ts=ts))["permalink"]
        for ts in (parent["ts"], reply["ts"])
    ]

    assert all(link.startswith(sandbox.url + "archives/") for link in links)
    places = []
    for link in links:
        async with page.session.get(link, allow_redirects=False) as resp:
            assert resp.status == 302
            places.append(dict(parse_qsl(resp.headers["Location"].split("?", 1)[1])))
    assert places == [
        {"channel": GENERAL, "thread": parent["ts"], "message": parent["ts"]},
        {"channel": GENERAL, "thread": parent["ts"], "message": reply["ts"]},
    ]
    assert (await client.auth_test())["url"] == sandbox.url


async def test_with_an_openai_compatible_url_the_same_page_uses_that_model() -> None:
    plan = {
        "title": "A haiku",
        "tasks": [{"id": "w", "agent": "writer", "instruction": "Write it"}],
    }
    async with FakeOpenAI() as model:
        model.when(
            lambda seen: "Turn the request into a plan" in seen.system, Reply(structured=plan)
        )
        model.when(
            lambda seen: "Write the final answer" in seen.system, Reply(text="Green checks at dawn")
        )
        model.default = Reply(text="a haiku about deploys")
        async with (
            running_sandbox(openai_api_key="sk-test", openai_base_url=model.base_url) as sandbox,
            aiohttp.ClientSession(base_url=sandbox.url) as session,
        ):
            page = Page(session, sandbox)
            assert (await page.state(ALICE))["info"]["model"] == "openai:gpt-4.1-mini"
            said = await page.say(ALICE, "write a haiku about deploys", channel="D0ALICE")
            root = next(m for m in sandbox.slack.messages("D0ALICE") if m.ts == said["ts"])
            final = await page.answer(root)

    assert final.text == "Green checks at dawn"
    assert {seen.model for seen in model.requests} == {"gpt-4.1-mini"}
    assert any("write a haiku about deploys" in seen.last_user_text for seen in model.requests)


async def test_nobody_can_post_in_someone_elses_dm(page: Page) -> None:
    async with page.session.post(
        "/api/messages", json={"user": BOB, "channel": "D0ALICE", "text": "hi"}
    ) as resp:
        assert resp.status == 400 and (await resp.json())["detail"] == "channel_not_found"
    assert page.slack.messages("D0ALICE") == []


@pytest.mark.parametrize(
    "request_text",
    [
        "run shop-health",
        # The README's example, aimed at the demo shop.
        "run morning-digest {shop}/health {shop}/payments/health alert=on_change",
    ],
    ids=["shop-health", "morning-digest"],
)
async def test_a_schedule_made_on_the_page_posts_its_digest_in_the_channel(
    page: Page, request_text: str
) -> None:
    asked = request_text.format(shop=page.sandbox.shop.url)
    made = await page.say(ALICE, f'/baton schedule add "every weekday at 09:00" {asked}')
    assert made["ok"]
    reply = await page.slack.wait_for(
        lambda: next(
            (m for m in page.slack.messages(GENERAL) if "Scheduled `" in json.dumps(m.blocks)),
            None,
        )
    )
    schedule_id = json.dumps(reply.blocks).split("Scheduled `", 1)[1].split("`", 1)[0]

    await page.say(ALICE, f"/baton schedule run {schedule_id}")

    digest = await page.slack.wait_for(
        lambda: next(
            (
                m
                for m in page.slack.messages(GENERAL)
                if f"Schedule `{schedule_id}`" in json.dumps(m.blocks) and not m.is_reply
            ),
            None,
        ),
        timeout=15,
    )
    shown = json.dumps(digest.blocks, ensure_ascii=False)
    # The demo shop's payments endpoint answers 503: the digest says so and offers its buttons.
    assert "checks failing" in shown and "/payments/health — 503" in shown
    assert "Acknowledge" in shown and "Investigate now" in shown
    state = await page.state(BOB)
    assert any(
        f"Schedule `{schedule_id}`" in json.dumps(m.get("blocks"))
        for m in state["messages"][GENERAL]
    )

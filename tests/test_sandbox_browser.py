"""The sandbox in a real browser: a person asks, watches the plan stream, and an approver
approves; the wrong person is refused; bad input is answered; modals open and submit; the
assistant container, permalinks, times, emoji, long messages, the API log and the layout at
1280 and 390 px.

Screenshots of each step go to test-artifacts/sandbox/. With BATON_UPDATE_SCREENSHOTS=1 the
finished run is also saved as docs/sandbox.png and the assistant container as
docs/assistant.png, the README's pictures.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Locator, Page, expect
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.launch import Sandbox
from sandbox.relay import Relay
from sandbox.server import SandboxPage
from sandbox.web_api import SlackStandIn
from testkit.harness import chromium, running_sandbox

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "sandbox"
README_SHOT = ROOT / "docs" / "sandbox.png"
ASSISTANT_SHOT = ROOT / "docs" / "assistant.png"
UPDATE_SHOTS = os.environ.get("BATON_UPDATE_SCREENSHOTS") == "1"
WAIT_MS = 20_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox() as running:
        yield running


async def new_page(browser: Browser, width: int, height: int) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": width, "height": height})
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    yield opened
    await context.close()
    assert problems == [], "the page reported errors"


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    async for opened in new_page(browser, 1440, 960):
        yield opened


@pytest_asyncio.fixture(loop_scope="module")
async def laptop(browser: Browser) -> AsyncIterator[Page]:
    async for opened in new_page(browser, 1280, 800):
        yield opened


@pytest_asyncio.fixture(loop_scope="module")
async def phone(browser: Browser) -> AsyncIterator[Page]:
    async for opened in new_page(browser, 390, 844):
        yield opened


async def open_as(page: Page, url: str, user: str, channel: str = "C0GENERAL") -> None:
    await page.goto(f"{url}?user={user}&channel={channel}")
    await expect(page.locator("#connection.on")).to_be_visible()


async def switch_to(page: Page, user: str) -> None:
    await page.select_option("#identity", user)
    await expect(page.locator("#connection.on")).to_be_visible()
    await expect(page.locator("#identity")).to_have_value(user)


async def type_in(page: Page, text: str, composer: str = "#composer") -> None:
    box = page.locator(f"{composer} textarea")
    await box.fill(text)
    await box.press("Enter")


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=SHOTS / f"{name}.png")


async def inside(page: Page, locator: Locator) -> None:
    """The element is drawn wholly inside the browser window."""
    box = await locator.bounding_box()
    assert box is not None, "not drawn"
    viewport = page.viewport_size
    assert viewport is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= viewport["width"], (box, viewport)
    assert box["y"] + box["height"] <= viewport["height"], (box, viewport)


async def within(outer: Locator, inner: Locator) -> None:
    """`inner` is drawn inside `outer`'s box (scrolled into its view). The page redraws a
    list whenever a call arrives, and a row being replaced has no box for a moment, so the
    boxes are read again until they hold, for up to 10 s."""
    deadline = time.monotonic() + 10
    while True:
        o, i = await outer.bounding_box(), await inner.bounding_box()
        drawn = o is not None and i is not None
        if drawn and i["y"] >= o["y"] - 1 and i["y"] + i["height"] <= o["y"] + o["height"] + 1:
            return
        assert time.monotonic() < deadline, (o, i)
        await asyncio.sleep(0.05)


def client_of(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.api_url)


# A run with Baton behind the page


async def test_a_request_streams_its_plan_and_an_approver_approves_it(
    sandbox: Sandbox, page: Page
) -> None:
    await open_as(page, sandbox.url, "U0ALICE")
    await shot(page, "01-workspace")

    await type_in(page, "@Baton run deploy")

    thread = page.locator("#thread-pane")
    await expect(thread).to_be_visible()
    await expect(thread.locator(".message").first).to_contain_text("@Baton run deploy")
    plan = thread.locator(".bk-plan").first
    await expect(plan.locator(".bk-plan-title")).to_contain_text("Check the shop, then deploy")
    await expect(plan.locator(".bk-task")).to_have_count(2)
    await expect(plan.locator(".bk-task[data-task-id=check]")).to_have_attribute(
        "data-status", "complete", timeout=WAIT_MS
    )
    waiting = plan.locator(".bk-task[data-task-id=deploy]")
    await expect(waiting).to_contain_text("waiting for approval")
    approve = thread.locator(".bk-button.bk-primary", has_text="Approve")
    await expect(approve).to_be_visible(timeout=WAIT_MS)
    await expect(thread.locator(".bk-button.bk-danger", has_text="Reject")).to_be_visible()
    await shot(page, "02-plan-and-approval")

    # Carol may not decide: only she is told, in the thread where she clicked; nothing happens.
    await switch_to(page, "U0CAROL")
    await approve.click()
    refusal = thread.locator(".message.ephemeral", has_text="You cannot approve")
    await expect(refusal).to_contain_text("@Bob can. Nothing was changed.")
    await expect(refusal.locator(".ephemeral-note")).to_have_text("Only visible to you")
    await shot(page, "03-refused")
    assert sandbox.shop.calls == []

    await switch_to(page, "U0BOB")
    await expect(page.locator("#messages .message.ephemeral")).to_have_count(0)
    await approve.click()
    await expect(thread).to_contain_text("Approved by @Bob", timeout=WAIT_MS)
    answer = thread.locator(".message", has_text="tokens").last
    await expect(answer).to_contain_text("Webhook 'deploys' → 202", timeout=WAIT_MS)
    await expect(answer).to_contain_text("by web-checker, deployer")
    assert [c.body for c in sandbox.shop.calls] == [{"service": "shop", "version": "1.4.2"}]
    await shot(page, "04-answer")

    # A reload comes back to the same thread, drawn from the same state.
    await switch_to(page, "U0ALICE")
    await page.reload()
    await expect(page.locator("#connection.on")).to_be_visible()
    await expect(thread.locator(".message", has_text="tokens").last).to_contain_text(
        "Webhook 'deploys' → 202"
    )
    # The task list is the same message, edited to its final state after the approval.
    await expect(thread).to_contain_text("once approved. · done")
    await expect(thread).to_contain_text("✅ deployer")
    await shot(page, "05-after-reload")
    if UPDATE_SHOTS:
        # Tall enough for the whole thread: request, plan, approval, answer.
        await page.set_viewport_size({"width": 1440, "height": 1400})
        await page.locator("#thread-messages").evaluate("list => { list.scrollTop = 0; }")
        await page.screenshot(path=README_SHOT)


async def test_a_slash_command_with_bad_input_shows_the_error_reply(
    sandbox: Sandbox, page: Page
) -> None:
    await open_as(page, sandbox.url, "U0ALICE")

    await type_in(page, "/baton run no-such-playbook")

    reply = page.locator("#messages .message.ephemeral")
    await expect(reply).to_contain_text("There is no playbook called no-such-playbook")
    await expect(reply).to_contain_text(
        "Playbooks: shop-health, morning-digest, deploy, announce, cancel-order."
    )
    await expect(reply.locator(".ephemeral-note")).to_have_text("Only visible to you")
    await shot(page, "06-slash-command-error")


async def test_reject_with_reason_opens_a_modal_that_checks_and_submits(
    sandbox: Sandbox, page: Page
) -> None:
    await open_as(page, sandbox.url, "U0BOB")
    await type_in(page, "@Baton run deploy")
    thread = page.locator("#thread-pane")
    await thread.locator(".bk-button", has_text="Reject with reason").click(timeout=WAIT_MS)

    modal = page.locator("dialog#modal")
    await expect(modal).to_be_visible()
    await expect(modal.locator(".modal-header")).to_contain_text("Reject with reason")
    await modal.locator("button[type=submit]").click()
    await expect(modal.locator(".bk-input-error")).to_contain_text("Say why")
    await modal.locator("textarea").fill("Not on a Friday")
    await shot(page, "07-modal")
    await modal.locator("button[type=submit]").click()

    await expect(modal).to_be_hidden()
    await expect(thread).to_contain_text("Rejected by @Bob", timeout=WAIT_MS)
    await expect(thread.locator(".message", has_text="tokens").last).to_contain_text(
        "Not on a Friday", timeout=WAIT_MS
    )
    assert sandbox.shop.calls == []


async def test_the_page_shows_each_web_api_call_as_it_happens(sandbox: Sandbox, page: Page) -> None:
    await open_as(page, sandbox.url, "U0ALICE", channel="C0RANDOM")
    client = client_of(sandbox.slack)
    for i in range(5):
        await client.chat_postMessage(channel="C0RANDOM", text=f"*update* number {i}")
        await expect(page.locator("#messages .message").nth(i)).to_contain_text(f"number {i}")

    await expect(page.locator("#messages .message b").first).to_have_text("update")


async def test_a_question_in_the_assistant_container_is_answered_in_its_thread(
    sandbox: Sandbox, laptop: Page
) -> None:
    page = laptop
    await open_as(page, sandbox.url, "U0ALICE")
    await page.click("#assistant-toggle")
    panel = page.locator("#assistant-pane")
    await expect(panel).to_be_visible()
    # Baton welcomes the person once and suggests what its catalog does.
    await expect(panel.locator(".message", has_text="specialists")).to_be_visible(timeout=WAIT_MS)
    await expect(panel.locator(".prompt").first).to_contain_text("Run shop-health")

    request = f"is {sandbox.shop.url}/health up?"
    await type_in(page, request, composer="#assistant-composer")

    answer = panel.locator(".message", has_text="tokens")
    await expect(answer).to_contain_text("/health → 200", timeout=WAIT_MS)
    await expect(panel.locator("#assistant-title")).to_have_text(request)
    await expect(panel.locator("#assistant-status")).to_have_text("")
    thumbs = answer.locator(".bk-feedback-button")
    await expect(thumbs).to_have_count(2)
    if UPDATE_SHOTS:
        await page.screenshot(path=ASSISTANT_SHOT)
    await thumbs.first.click()
    await expect(panel.locator(".message", has_text="glad it helped")).to_be_visible(
        timeout=WAIT_MS
    )
    [thread] = sandbox.slack.snapshot()["assistant_threads"]
    replies = sandbox.slack.thread("D0ALICE", thread["thread_ts"])
    assert [m.text for m in replies if m.user == "U0ALICE"] == [
        f"is <{sandbox.shop.url}/health> up?"
    ]
    assert replies[-1].user == "U0BATON"
    # The channel itself is left as it was.
    await expect(page.locator("#messages .message")).to_have_count(0)


async def test_the_api_log_fits_1280_px_shows_slacks_reply_and_stays_at_the_newest_call(
    sandbox: Sandbox, laptop: Page
) -> None:
    page = laptop
    await open_as(page, sandbox.url, "U0ALICE")
    await type_in(page, "@Baton run shop-health")
    await expect(page.locator("#thread-pane .message", has_text="tokens")).to_be_visible(
        timeout=WAIT_MS
    )
    client = client_of(sandbox.slack)
    for i in range(30):
        await client.chat_postMessage(channel="C0RANDOM", text=f"filler {i}")

    await page.click("#log-toggle")

    log = page.locator("#log")
    rows = log.locator("li")
    await expect(rows).to_have_count(len(sandbox.slack.calls))
    # Everything the log offers is on screen beside the open thread: the pane, the fault
    # button, and each row's status column.
    for part in ("#channel-pane", "#thread-pane", "#log-pane", "#fault-form button"):
        await inside(page, page.locator(part))
    for row in await rows.all():
        box = await row.locator(".status").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280, box
    # It opens at the newest call, whose reply body is one click away.
    newest = rows.last
    await within(log, newest)
    await expect(newest.locator("code")).to_have_text("chat.postMessage")
    await newest.locator("summary").click()
    reply = json.loads(await newest.locator("pre.response").inner_text())
    assert reply["ok"] is True and reply["message"]["text"] == "filler 29"
    await shot(page, "08-api-log-1280")

    await client.chat_postMessage(channel="C0RANDOM", text="one more")
    await expect(rows).to_have_count(len(sandbox.slack.calls))
    await within(log, rows.last)


async def test_a_rate_limit_asked_for_on_the_page_shows_as_a_429_in_the_log(
    sandbox: Sandbox, laptop: Page
) -> None:
    page = laptop
    await open_as(page, sandbox.url, "U0ALICE", channel="C0RANDOM")
    await page.click("#log-toggle")
    await page.select_option("#fault-method", "chat.postMessage")
    await page.click("#fault-form button")
    await expect(page.locator("#toasts")).to_contain_text("HTTP 429")

    client = client_of(sandbox.slack)
    with pytest.raises(Exception, match="ratelimited"):
        await client.chat_postMessage(channel="C0RANDOM", text="too soon")

    failed = page.locator("#log li.failed").last
    await expect(failed.locator(".status")).to_have_text("429")
    await expect(failed.locator(".error")).to_have_text("ratelimited")


async def test_the_channel_shows_its_newest_message_after_a_reload(
    sandbox: Sandbox, laptop: Page
) -> None:
    page = laptop
    client = client_of(sandbox.slack)
    first = await client.chat_postMessage(channel="C0RANDOM", text="the oldest message")
    for i in range(40):
        await client.chat_postMessage(channel="C0RANDOM", text=f"message {i}\nwith a second line")
    await client.chat_postMessage(channel="C0RANDOM", thread_ts=first["ts"], text="a reply")
    # A thread open beside the channel narrows it as the page loads.
    await page.goto(f"{sandbox.url}?user=U0ALICE&channel=C0RANDOM&thread={first['ts']}")
    await expect(page.locator("#thread-pane")).to_be_visible()

    await page.reload()
    await expect(page.locator("#connection.on")).to_be_visible()

    messages = page.locator("#messages")
    newest = messages.locator(".message").last
    await expect(newest).to_contain_text("message 39")
    await within(messages, newest)
    oldest = await messages.locator(".message").first.bounding_box()
    assert oldest is not None and oldest["y"] < 0, "the oldest message is scrolled out of view"


async def test_times_are_shown_in_the_viewers_slack_time_zone_on_a_24_hour_clock(
    sandbox: Sandbox, page: Page
) -> None:
    client = client_of(sandbox.slack)
    posted = await client.chat_postMessage(channel="C0RANDOM", text="what time is it?")
    at = datetime.fromtimestamp(float(posted["ts"]), ZoneInfo("UTC"))
    token = int(at.timestamp())
    await client.chat_postMessage(channel="C0RANDOM", text=f"next run <!date^{token}^{{time}}|x>")

    await open_as(page, sandbox.url, "U0ALICE", channel="C0RANDOM")
    berlin = at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")
    await expect(page.locator("#messages .message .when").first).to_have_text(berlin)
    await expect(page.locator("#messages time.date")).to_have_text(berlin)

    await switch_to(page, "U0BOB")
    new_york = at.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")
    await expect(page.locator("#messages .message .when").first).to_have_text(new_york)
    await expect(page.locator("#messages time.date")).to_have_text(new_york)
    await expect(page.locator("#model-info")).to_contain_text("America/New_York")


async def test_an_emoji_shortcode_a_person_types_is_shown_as_the_emoji(
    sandbox: Sandbox, page: Page
) -> None:
    await open_as(page, sandbox.url, "U0ALICE", channel="C0RANDOM")

    await type_in(page, "shipped :tada: and :rocket:")

    await expect(page.locator("#messages .message").last).to_contain_text("shipped 🎉 and 🚀")
    [stored] = sandbox.slack.messages("C0RANDOM")
    assert stored.text == "shipped :tada: and :rocket:"


async def test_a_long_message_is_clamped_until_show_more(sandbox: Sandbox, page: Page) -> None:
    lines = "\n".join(f"line {i}: the payments check failed again" for i in range(60))
    await client_of(sandbox.slack).chat_postMessage(channel="C0RANDOM", text=lines)
    await open_as(page, sandbox.url, "U0ALICE", channel="C0RANDOM")

    content = page.locator("#messages .message-content").last
    await expect(content).to_have_class("message-content clamped")
    short = await content.bounding_box()
    await page.locator("#messages .show-more").click()

    await expect(page.locator("#messages .show-more")).to_have_text("Show less")
    await expect(content).not_to_have_class("message-content clamped")
    tall = await content.bounding_box()
    assert short is not None and tall is not None and tall["height"] > 3 * short["height"]


async def test_a_permalink_opens_its_message_inside_the_sandbox(
    sandbox: Sandbox, page: Page
) -> None:
    client = client_of(sandbox.slack)
    parent = await client.chat_postMessage(channel="C0GENERAL", text="the deploy request")
    reply = await client.chat_postMessage(
        channel="C0GENERAL", thread_ts=parent["ts"], text="the approval"
    )
    link = (await client.chat_getPermalink(channel="C0GENERAL", message_ts=reply["ts"]))[
        "permalink"
    ]
    slack_com = f"https://slack.com/archives/C0GENERAL/p{parent['ts'].replace('.', '')}"
    await client.chat_postMessage(
        channel="C0RANDOM", text=f"waiting: <{link}|open> · elsewhere: <{slack_com}|old link>"
    )
    await open_as(page, sandbox.url, "U0ALICE", channel="C0RANDOM")

    await page.locator("#messages a", has_text="open").click()

    await expect(page.locator("#channel-title")).to_have_text("# general")
    highlighted = page.locator("#thread-pane .message.highlight")
    await expect(highlighted).to_contain_text("the approval")
    assert f"thread={parent['ts']}" in page.url

    await page.goto(link)
    await expect(page.locator("#thread-pane .message.highlight")).to_contain_text("the approval")
    await open_as(page, sandbox.url, "U0ALICE", channel="C0RANDOM")
    await page.locator("#messages a", has_text="old link").click()
    await expect(page.locator("#messages .message.highlight")).to_contain_text("the deploy request")


async def test_the_page_fits_a_390_px_phone(sandbox: Sandbox, phone: Page) -> None:
    page = phone
    await open_as(page, sandbox.url, "U0ALICE")
    await type_in(page, "@Baton run shop-health")

    thread = page.locator("#thread-pane")
    await expect(thread.locator(".message", has_text="tokens")).to_be_visible(timeout=WAIT_MS)
    await inside(page, thread)
    await shot(page, "09-phone-thread")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390

    await page.click("#thread-close")
    await expect(page.locator("#sidebar")).not_to_be_in_viewport()
    await page.click("#menu-toggle")
    await expect(page.locator("#sidebar")).to_be_in_viewport()
    await page.locator(".channel-link", has_text="random").click()
    await expect(page.locator("#channel-title")).to_have_text("# random")
    await expect(page.locator("#sidebar")).not_to_be_in_viewport()
    for part in ("#menu-toggle", "#assistant-toggle", "#log-toggle", "#composer button"):
        await inside(page, page.locator(part))
    await page.click("#log-toggle")
    await inside(page, page.locator("#fault-form button"))
    await shot(page, "10-phone-log")


# The assistant container and buttons, with the test playing the app behind the stand-in


@dataclass
class Delivered:
    """What the page's Slack side sent to the app: events and clicks, decoded."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    # Clicks wait for this before the app answers (Slack waits up to 3 s).
    release: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = 200

    async def next(self, kind: str, *, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((b for b in self.bodies[after:] if kind_of(b) == kind), None)

        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(found), timeout=WAIT_MS / 1000)
        body = found()
        assert body is not None
        return body


def kind_of(body: dict[str, Any]) -> str:
    return str(body["event"]["type"] if body.get("type") == "event_callback" else body["type"])


@dataclass
class Scripted:
    url: str
    slack: SlackStandIn
    delivered: Delivered

    @property
    def app(self) -> AsyncWebClient:
        return client_of(self.slack)


@pytest_asyncio.fixture(loop_scope="module")
async def scripted() -> AsyncIterator[Scripted]:
    """The stand-in and the page, delivering to an app this test plays (not Baton)."""
    delivered = Delivered()
    delivered.release.set()

    async def events(request: web.Request) -> web.Response:
        raw = await request.read()
        if raw.startswith(b"payload="):
            body = json.loads(dict(parse_qsl(raw.decode()))["payload"])
        elif raw.startswith(b"{"):
            body = json.loads(raw)
        else:
            body = {"type": "slash_command", **dict(parse_qsl(raw.decode()))}
        if body.get("type") == "block_actions":
            await delivered.release.wait()
        async with delivered.arrived:
            delivered.bodies.append(body)
            delivered.arrived.notify_all()
        return web.Response(status=delivered.status)

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    events_url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    async with SlackStandIn() as slack:
        relay = Relay(slack, events_url=events_url, signing_secret="s3cret")
        server = SandboxPage(slack, relay, info={"model": "rules", "catalog": "demo catalog"})
        await server.start()
        try:
            yield Scripted(server.url, slack, delivered)
        finally:
            await server.stop()
            await relay.aclose()
            await runner.cleanup()


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


async def test_the_assistant_container_shows_prompts_a_status_and_feedback_buttons(
    scripted: Scripted, laptop: Page
) -> None:
    page, app, delivered = laptop, scripted.app, scripted.delivered
    await open_as(page, scripted.url, "U0ALICE")

    await page.click("#assistant-toggle")

    started = (await delivered.next("assistant_thread_started"))["event"]["assistant_thread"]
    assert (started["user_id"], started["context"]["channel_id"]) == ("U0ALICE", "C0GENERAL")
    dm, ts = started["channel_id"], started["thread_ts"]
    panel = page.locator("#assistant-pane")
    await expect(panel).to_be_visible()
    await expect(panel.locator("#assistant-context")).to_have_text(
        "Baton can see you are in #general"
    )
    await app.assistant_threads_setSuggestedPrompts(
        channel_id=dm,
        thread_ts=ts,
        title="Try one of these",
        prompts=[
            {"title": "Is the shop up?", "message": "is the shop up?"},
            {"title": "What can you do?", "message": "help"},
        ],
    )
    prompts = panel.locator(".prompt")
    await expect(prompts).to_have_text(["Is the shop up?", "What can you do?"])
    await expect(panel.locator(".prompts-title")).to_have_text("Try one of these")

    await prompts.first.click()

    asked = (await delivered.next("message"))["event"]
    assert (asked["text"], asked["thread_ts"], asked["channel"]) == ("is the shop up?", ts, dm)
    await expect(prompts).to_have_count(0)
    await app.assistant_threads_setTitle(channel_id=dm, thread_ts=ts, title="Is the shop up?")
    await app.assistant_threads_setStatus(
        channel_id=dm,
        thread_ts=ts,
        status="is checking 2 URLs…",
        loading_messages=["Knocking on the shop's door…"],
    )
    await expect(panel.locator("#assistant-title")).to_have_text("Is the shop up?")
    status = panel.locator("#assistant-status")
    await expect(status).to_contain_text("Baton is checking 2 URLs…")
    await expect(status).to_contain_text("Knocking on the shop's door…")
    await shot(page, "11-assistant-working")

    await app.chat_postMessage(
        channel=dm,
        thread_ts=ts,
        text="The shop is up; payments answer 503.",
        blocks=[
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "The shop is *up*; payments answer `503`."},
            },
            FEEDBACK,
        ],
    )
    answer = panel.locator(".message", has_text="payments answer")
    await expect(answer).to_be_visible()
    await expect(status).to_have_text("")
    thumbs = answer.locator(".bk-feedback-button")
    await expect(thumbs).to_have_text(["👍", "👎"])
    # Prompts set after the person's message show again, as follow-ups.
    await app.assistant_threads_setSuggestedPrompts(
        channel_id=dm,
        thread_ts=ts,
        title="Follow-ups",
        prompts=[{"title": "Why is payments down?", "message": "investigate payments"}],
    )
    await expect(prompts).to_have_text(["Why is payments down?"])
    await shot(page, "12-assistant-answer")

    await thumbs.last.click()

    clicked = await delivered.next("block_actions")
    [action] = clicked["actions"]
    assert (action["type"], action["action_id"], action["value"]) == (
        "feedback_buttons",
        "answer_feedback",
        "bad",
    )
    assert clicked["container"]["thread_ts"] == ts and clicked["user"]["id"] == "U0ALICE"
    await expect(thumbs.last).to_have_class("bk-feedback-button selected")

    # Looking at another channel tells the app, once.
    seen = len(delivered.bodies)
    await page.locator(".channel-link", has_text="random").click()
    moved = await delivered.next("assistant_thread_context_changed", after=seen)
    assert moved["event"]["assistant_thread"]["context"]["channel_id"] == "C0RANDOM"
    await expect(panel.locator("#assistant-context")).to_have_text(
        "Baton can see you are in #random"
    )
    # The thread stays in the person's DM with Baton, under its title.
    await page.locator(".channel-link", has_text="Baton").click()
    await expect(page.locator("#messages .thread-card")).to_have_text("✦ Is the shop up?")


async def test_a_button_shows_it_is_working_until_the_app_answers_then_a_check(
    scripted: Scripted, page: Page
) -> None:
    buttons = {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Investigate now"},
                "action_id": "investigate",
                "value": "fire-1",
            }
        ],
    }
    await scripted.app.chat_postMessage(channel="C0GENERAL", text="digest", blocks=[buttons])
    await open_as(page, scripted.url, "U0ALICE")
    button = page.locator(".bk-button", has_text="Investigate now")
    scripted.delivered.release.clear()

    await button.click()

    await expect(button).to_have_class("bk-button is-pending")
    await expect(button).to_be_disabled()
    scripted.delivered.release.set()
    await expect(button).to_have_class("bk-button is-done")
    await expect(button).to_be_enabled()

    scripted.delivered.status = 404
    await button.click()
    await expect(page.locator(".bk-click-error")).to_contain_text(
        "Baton didn't respond: Baton answered HTTP 404"
    )

"""The sandbox in a real browser: a person asks, watches the plan stream, and an approver
approves; the wrong person is refused; bad input is answered; modals open and submit.

Screenshots of each step go to test-artifacts/sandbox/. With BATON_UPDATE_SCREENSHOTS=1 the
finished run is also saved as docs/sandbox.png, the README's picture.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.launch import Sandbox
from tests.harness import chromium, running_sandbox

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "sandbox"
README_SHOT = ROOT / "docs" / "sandbox.png"
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


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, sandbox: Sandbox) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1440, "height": 960})
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


async def open_as(page: Page, sandbox: Sandbox, user: str, channel: str = "C0GENERAL") -> None:
    await page.goto(f"{sandbox.url}?user={user}&channel={channel}")
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


async def test_a_request_streams_its_plan_and_an_approver_approves_it(
    page: Page, sandbox: Sandbox
) -> None:
    await open_as(page, sandbox, "U0ALICE")
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

    # Carol may not decide: only she is told, and nothing happens.
    await switch_to(page, "U0CAROL")
    await approve.click()
    refusal = page.locator("#messages .message.ephemeral", has_text="You cannot approve")
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
    if os.environ.get("BATON_UPDATE_SCREENSHOTS") == "1":
        # Tall enough for the whole thread: request, plan, approval, answer.
        await page.set_viewport_size({"width": 1280, "height": 1220})
        await page.locator("#thread-messages").evaluate("list => { list.scrollTop = 0; }")
        await page.screenshot(path=README_SHOT)


async def test_a_slash_command_with_bad_input_shows_the_error_reply(
    page: Page, sandbox: Sandbox
) -> None:
    await open_as(page, sandbox, "U0ALICE")

    await type_in(page, "/baton run no-such-playbook")

    reply = page.locator("#messages .message.ephemeral")
    await expect(reply).to_contain_text("There is no playbook called no-such-playbook")
    await expect(reply).to_contain_text("Playbooks: shop-health, deploy, announce.")
    await expect(reply.locator(".ephemeral-note")).to_have_text("Only visible to you")
    await shot(page, "06-slash-command-error")


async def test_reject_with_reason_opens_a_modal_that_checks_and_submits(
    page: Page, sandbox: Sandbox
) -> None:
    await open_as(page, sandbox, "U0BOB")
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


async def test_the_page_shows_a_web_api_call_within_a_fraction_of_a_second(
    page: Page, sandbox: Sandbox
) -> None:
    await open_as(page, sandbox, "U0ALICE", channel="C0RANDOM")
    client = AsyncWebClient(token=sandbox.slack.token, base_url=sandbox.slack.api_url)
    delays = []
    for i in range(5):
        start = time.perf_counter()
        await client.chat_postMessage(channel="C0RANDOM", text=f"*update* number {i}")
        await expect(page.locator("#messages .message").nth(i)).to_contain_text(f"number {i}")
        delays.append(time.perf_counter() - start)

    assert max(delays) < 1.0, f"page updates took {delays}"
    await expect(page.locator("#messages .message b").first).to_have_text("update")

"""The sandbox page draws Block Kit as Slack does: Slack's own sample messages, and every
message Baton builds (blocks, approvals, reports, App Home, streamed task lists), rendered in
a real browser by the page's own `renderBlocks` / `renderMessageContent`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from agents.spec import load_catalog
from agents.tools.registry import tool_names
from bot import approval_blocks, blocks, reports
from bot.blocks import RunView, TaskLine
from bot.home_blocks import Dashboard, home_view
from sandbox.demo import DemoShop, write_demo_catalog
from sandbox.relay import Relay
from sandbox.server import SandboxPage
from sandbox.web_api import SlackStandIn
from sandbox.workspace import JSON, Change
from storage import Database, approvals, home, run_states, runs
from storage.db import utcnow
from storage.models import Approval, ApprovalStatus, Run, RunStatus, TaskRow, TaskStatus
from testkit.harness import chromium, running_bot, sample

pytestmark = pytest.mark.asyncio(loop_scope="module")

NAMES = {"U0ALICE": "Alice", "U0BOB": "Bob", "U0BATON": "Baton", "C0GENERAL": "general"}

DRAW = """([kind, payload, names]) => {
  const ctx = { user: (id) => names[id] || id, channel: (id) => names[id] || id };
  const el = kind === "blocks"
    ? window.renderBlocks(payload, { ctx })
    : window.renderMessageContent(payload, { ctx });
  const host = document.createElement("div");
  host.append(el);
  document.body.append(host);
  const all = (selector) => [...el.querySelectorAll(selector)];
  const drawn = {
    text: el.innerText,
    blocks: all(".bk-block").map((b) => b.className.split(" ").find((c) => c.startsWith("bk-") && c !== "bk-block")),
    unknown: all(".bk-unknown").map((u) => u.textContent),
    buttons: all("button.bk-button").map((b) => ({
      text: b.innerText,
      style: b.classList.contains("bk-primary") ? "primary" : b.classList.contains("bk-danger") ? "danger" : null,
      action_id: b.dataset.actionId,
      value: b.dataset.value ?? null,
    })),
    inputs: all("[data-element-type]").map((i) => i.dataset.actionId),
    tasks: all(".bk-task").map((t) => ({ id: t.dataset.taskId, status: t.dataset.status, text: t.innerText })),
    plan: el.querySelector(".bk-plan-title")?.innerText ?? null,
    tags: all("*").map((n) => n.tagName.toLowerCase()),
    links: all("a[href]").map((a) => [a.innerText, a.getAttribute("href")]),
    mentions: all(".mention").map((m) => m.innerText),
    times: all("time").length,
  };
  host.remove();
  return drawn;
}"""


@dataclass
class Drawn:
    text: str
    blocks: list[str]
    unknown: list[str]
    buttons: list[dict[str, Any]]
    inputs: list[str]
    tasks: list[dict[str, Any]]
    plan: str | None
    tags: list[str]
    links: list[list[str]]
    mentions: list[str]
    times: int


@dataclass
class Renderer:
    page: Page

    async def blocks(self, payload: list[JSON]) -> Drawn:
        return Drawn(**await self.page.evaluate(DRAW, ["blocks", payload, NAMES]))

    async def message(self, payload: JSON) -> Drawn:
        return Drawn(**await self.page.evaluate(DRAW, ["message", payload, NAMES]))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def draw() -> AsyncIterator[Renderer]:
    async with SlackStandIn() as slack, chromium() as browser:
        relay = Relay(slack, events_url="http://127.0.0.1:9/slack/events", signing_secret="x")
        server = SandboxPage(slack, relay)
        url = (await server.start()).url
        page = await browser.new_page()
        try:
            await page.goto(f"{url}?user=U0ALICE")
            await page.wait_for_function("typeof window.renderBlocks === 'function'")
            yield Renderer(page)
        finally:
            await page.close()
            await server.stop()
            await relay.aclose()


# Slack's own samples


async def test_slacks_sample_button_message_renders_its_section_and_button(draw: Renderer) -> None:
    message = sample("block_actions_button_click.bolt_tests.json")["message"]

    drawn = await draw.message(message)

    assert drawn.text.startswith("This is a section block with a button.")
    assert drawn.blocks == ["bk-section"] and drawn.unknown == []
    assert drawn.buttons == [
        {"text": "Click Me", "style": None, "action_id": "button", "value": "clicked"}
    ]


async def test_slacks_sample_modal_renders_its_input(draw: Renderer) -> None:
    view = sample("view_submission.bolt_tests.json")["view"]

    drawn = await draw.blocks(view["blocks"])

    assert drawn.blocks == ["bk-input"] and drawn.inputs == ["maBWU"]
    assert "Label" in drawn.text and drawn.unknown == []


async def test_slacks_sample_mention_renders_its_rich_text(draw: Renderer) -> None:
    event = sample("app_mention_event_callback.bolt_tests.json")["event"]

    drawn = await draw.message(event)

    assert drawn.blocks == ["bk-rich-text"] and drawn.unknown == []
    assert drawn.text.strip() == "@U111 hey" and drawn.mentions == ["@U111"]


# Baton's own messages


def a_run(**fields: Any) -> Run:
    values: dict[str, Any] = {
        "id": "3fa9c2d1",
        "request": "check the shop",
        "user_id": "U0ALICE",
        "channel_id": "C0GENERAL",
        "status": RunStatus.WAITING,
        "cost_usd": 0.0123,
        "input_tokens": 900,
        "output_tokens": 340,
    }
    return Run(**(values | fields))


def a_task(**fields: Any) -> TaskRow:
    values: dict[str, Any] = {
        "run_id": "3fa9c2d1",
        "task_id": "announce",
        "agent": "announcer",
        "instruction": "Post the digest to <#C0GENERAL>",
    }
    return TaskRow(**(values | fields))


def an_approval(**fields: Any) -> Approval:
    values: dict[str, Any] = {
        "id": "ap_1",
        "run_id": "3fa9c2d1",
        "task_id": "announce",
        "kind": "tool",
        "tool_name": "post_message",
        "tool_args": {"channel": "C0GENERAL", "text": "All green"},
        "summary": "The digest is ready",
        "approvers": ["U0BOB", "S0ONCALL"],
        "expires_at": utcnow() + timedelta(hours=24),
        "channel_id": "C0GENERAL",
        "message_ts": "1700000000.000100",
    }
    return Approval(**(values | fields))


def decided(status: ApprovalStatus, **fields: Any) -> Approval:
    return an_approval(status=status, decided_by="U0BOB", decided_at=utcnow(), **fields)


async def baton_home(tmp_path: Path) -> list[JSON]:
    db = Database(f"sqlite:///{tmp_path}/home.db")
    await db.create_all()
    try:
        run = await runs.create_run(db, a_run(status=RunStatus.QUEUED))
        await run_states.run_started(
            db, run.id, driver="test", deadline_at=utcnow(), budget_usd=None
        )
        await run_states.plan_ready(db, run.id, {}, [a_task()])
        await approvals.create(db, an_approval(approvers=["U0ALICE"]), task_fields={})
        data = await home.for_user(db, "U0ALICE", since=utcnow() - timedelta(days=7))
        view = home_view(
            Dashboard(
                recent=data.recent,
                tasks=data.tasks,
                mine=data.waiting,
                waiting_runs=data.waiting_runs,
            )
        )
    finally:
        await db.dispose()
    return list(view["blocks"])


async def everything_baton_builds(tmp_path: Path) -> dict[str, list[JSON]]:
    view = RunView(
        run_id="3fa9c2d1",
        status="running",
        title="Check the shop",
        tasks={
            "a": TaskLine("a", "web-checker", "Check /health", "succeeded", summary="200 in 3 ms"),
            "b": TaskLine("b", "web-checker", "Check /payments", "failed", ["503 in 2 ms"]),
            "c": TaskLine("c", "announcer", "Post the digest", "waiting"),
        },
    )
    footer = blocks.footer(
        run_id="3fa9c2d1",
        status="partial",
        tokens=1240,
        cost_usd=0.0123,
        contributors=["web-checker", "writer"],
    )
    finished = a_task(
        status=TaskStatus.FAILED, error="503", started_at=utcnow(), finished_at=utcnow()
    )
    catalog = load_catalog(None, known_tools=tool_names())
    built = {
        "status message": blocks.status_blocks(view),
        "answer": blocks.answer_blocks(
            "*Done.*\n• `/health` is up\n• payments is down",
            footer_block=footer,
            feedback_run="3fa9c2d1",
        ),
        "error": blocks.error_blocks("The plan could not be made."),
        "agents report": reports.agents_report(catalog, lambda model: model),
        "status report": reports.status_report(a_run(error="one task failed"), [finished]),
        "approvals report": reports.approvals_report([an_approval()]),
        "no approvals": reports.approvals_report([]),
        "reason modal": approval_blocks.reason_modal("ap_1")["blocks"],
        "home": await baton_home(tmp_path),
    }
    for kind in ("tool", "task", "agent", "budget"):
        built[f"{kind} approval"] = approval_blocks.request_blocks(
            an_approval(kind=kind), a_run(), a_task()
        )
    for status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED):
        built[f"{status.value} approval"] = approval_blocks.decided_blocks(
            decided(status, reason="Not now"), a_run(), a_task()
        )
    return built


async def test_every_block_baton_builds_renders_and_none_is_a_placeholder(
    draw: Renderer, tmp_path: Path
) -> None:
    built = await everything_baton_builds(tmp_path)
    sent_types = {b["type"] for bs in built.values() for b in bs}

    drawn = {name: await draw.blocks(bs) for name, bs in built.items()}

    assert sent_types == {
        "header",
        "section",
        "context",
        "divider",
        "actions",
        "input",
        "context_actions",
    }
    assert {name: d.unknown for name, d in drawn.items() if d.unknown} == {}
    for name, bs in built.items():
        assert drawn[name].blocks == [f"bk-{b['type'].replace('_', '-')}" for b in bs], name
    assert "Check the shop · working…" in drawn["status message"].text
    assert "Run 3fa9c2d1 · done, with problems · by web-checker, writer" in drawn["answer"].text
    assert "Baton's specialists" in drawn["agents report"].text
    assert "Waiting for you · 1 approval" in drawn["home"].text
    assert drawn["reason modal"].inputs == ["reason_input"]
    assert "✅ Approved by @Bob" in drawn["approved approval"].text


async def test_an_approval_request_shows_what_will_happen_and_styled_buttons(
    draw: Renderer,
) -> None:
    request = approval_blocks.request_blocks(an_approval(), a_run(), a_task())

    drawn = await draw.blocks(request)

    assert drawn.blocks == [
        "bk-header",
        "bk-section",
        "bk-section",
        "bk-section",
        "bk-context",
        "bk-actions",
    ]
    assert drawn.text.startswith("✋ Approval needed before an action")
    assert "Target:" in drawn.text
    assert "announcer wants to call post_message with:" in drawn.text
    assert [(b["text"], b["style"], b["value"]) for b in drawn.buttons] == [
        ("Approve", "primary", "ap_1"),
        ("Approve for this run", None, "ap_1"),
        ("Reject", "danger", "ap_1"),
        ("Reject with reason", None, "ap_1"),
    ]
    # The channel (argument and target) is shown by name, as are the people who may decide.
    assert drawn.mentions == ["#general", "#general", "@Bob", "@S0ONCALL"] and drawn.times == 1
    assert {"b", "code"} <= set(drawn.tags)


async def test_a_streamed_reply_shows_the_plan_and_each_task_as_it_changes(
    draw: Renderer, tmp_path: Path
) -> None:
    snapshots: list[JSON] = []

    def keep(change: Change) -> None:
        message = change.get("message") or {}
        if message.get("task_display_mode"):
            snapshots.append(message)

    def running() -> bool:
        return any('"in_progress"' in json.dumps(s) for s in snapshots)

    async with SlackStandIn() as slack, DemoShop() as shop:
        slack.subscribe(keep)
        catalog = write_demo_catalog(tmp_path, shop.url)
        # The metrics check answers when the list has shown a step running: a run this
        # short would otherwise show its plan and its end in one edit.
        shop.hold_metrics = asyncio.Event()
        async with running_bot(
            slack, f"sqlite:///{tmp_path}/b.db", baton_agents_file=catalog
        ) as bot:
            asked = await bot.mention("run shop-health")
            await slack.wait_for(running, timeout=20)
            shop.hold_metrics.set()
            await bot.idle()
            posted = [m for m in bot.thread(asked)[1:]]

    first = await draw.message(snapshots[0])
    last = await draw.message(snapshots[-1])

    assert len(snapshots) >= 3 and first.unknown == last.unknown == []
    assert any(t["status"] != "complete" for t in first.tasks) or first.tasks == []
    assert [t["id"] for t in last.tasks] == ["endpoints", "queue", "digest"]
    assert {t["status"] for t in last.tasks} == {"complete"}, last.tasks
    assert last.plan is not None and last.plan.endswith("· done")
    assert "payments/health → 503" in last.text
    changing = [{t["id"]: t["status"] for t in (await draw.message(s)).tasks} for s in snapshots]
    assert any("in_progress" in c.values() or "pending" in c.values() for c in changing)
    for message in posted:
        drawn = await draw.message(slack_json(message))
        assert drawn.unknown == [] and drawn.text.strip()


def slack_json(message: Any) -> JSON:
    fields = ("text", "blocks", "attachments", "tasks", "plan_title", "task_display_mode")
    out = {k: getattr(message, k) for k in fields}
    out["tasks"] = list(message.tasks.values())
    copied: JSON = json.loads(json.dumps(out))
    return copied


# mrkdwn and the rest of Block Kit


def section(text: str) -> JSON:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_mrkdwn_is_drawn_as_slack_draws_it(draw: Renderer) -> None:
    text = (
        "*bold* _italic_ ~struck~ `code` and <https://example.com/x?a=1&amp;b=2|a link>, "
        "<https://example.org>, &lt;https://example.net/a&gt;, <@U0ALICE>, <#C0GENERAL|general>, "
        "<!here> :tada: :white_check_mark:\n"
        "> quoted line\n```\nline one\n*not bold*\n```\nafter"
    )

    drawn = await draw.blocks([section(text)])

    assert {"b", "i", "s", "code", "pre", "blockquote", "a"} <= set(drawn.tags)
    assert drawn.links == [
        ["a link", "https://example.com/x?a=1&b=2"],
        ["https://example.org", "https://example.org"],
        ["https://example.net/a", "https://example.net/a"],
    ]
    assert "<https://example.net/a>," in drawn.text
    assert drawn.mentions == ["@Alice", "#general", "@here"]
    assert "🎉 ✅" in drawn.text and "*not bold*" in drawn.text
    assert "quoted line" in drawn.text and drawn.text.rstrip().endswith("after")


async def test_message_text_cannot_inject_markup(draw: Renderer) -> None:
    drawn = await draw.blocks(
        [section("&lt;img src=x onerror=alert(1)&gt; <javascript:alert(1)|click>")]
    )

    assert "img" not in drawn.tags and drawn.links == []
    assert "<img src=x onerror=alert(1)>" in drawn.text and "click" in drawn.text


async def test_the_rest_of_block_kit_renders(draw: Renderer) -> None:
    drawn = await draw.message(
        {
            "text": "fallback",
            "blocks": [
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": "*Status*\nup"},
                        {"type": "plain_text", "text": "Latency :zap: 3 ms"},
                    ],
                    "accessory": {"type": "image", "image_url": "data:,", "alt_text": "logo"},
                },
                {
                    "type": "context",
                    "elements": [
                        {"type": "image", "image_url": "data:,", "alt_text": "icon"},
                        {"type": "plain_text", "text": "small print"},
                    ],
                },
                {
                    "type": "image",
                    "image_url": "data:,",
                    "alt_text": "chart",
                    "title": {"type": "plain_text", "text": "Chart"},
                },
                {"type": "markdown", "text": "**Markdown** with [a link](https://example.com)"},
                {
                    "type": "rich_text",
                    "elements": [
                        {
                            "type": "rich_text_list",
                            "style": "bullet",
                            "elements": [
                                {
                                    "type": "rich_text_section",
                                    "elements": [
                                        {"type": "text", "text": "first", "style": {"bold": True}}
                                    ],
                                },
                            ],
                        },
                        {
                            "type": "rich_text_quote",
                            "elements": [{"type": "text", "text": "wise words"}],
                        },
                        {
                            "type": "rich_text_preformatted",
                            "elements": [{"type": "text", "text": "x = 1"}],
                        },
                    ],
                },
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open"},
                            "action_id": "open",
                            "url": "https://example.com",
                        }
                    ],
                },
            ],
            "attachments": [{"color": "2eb886", "title": "Legacy", "text": "still shown"}],
        }
    )

    assert drawn.unknown == [] and "fallback" not in drawn.text
    assert drawn.blocks == [
        "bk-section",
        "bk-context",
        "bk-image",
        "bk-markdown",
        "bk-rich-text",
        "bk-actions",
    ]
    for shown in (
        "Status",
        "Latency ⚡ 3 ms",
        "small print",
        "Chart",
        "Markdown",
        "first",
        "wise words",
        "x = 1",
        "Legacy",
        "still shown",
    ):
        assert shown in drawn.text, shown
    assert ["a link", "https://example.com"] in drawn.links and "ul" in drawn.tags


async def test_unknown_blocks_and_elements_show_a_visible_placeholder(draw: Renderer) -> None:
    drawn = await draw.blocks(
        [
            {"type": "call", "call_id": "R0123"},
            {"type": "actions", "elements": [{"type": "static_select", "action_id": "pick"}]},
            {"type": "section", "text": {"type": "plain_text", "text": "still here"}},
        ]
    )

    assert drawn.unknown == ["Unsupported block: call", "Unsupported element: static_select"]
    assert "still here" in drawn.text and len(drawn.blocks) == 3


async def test_feedback_buttons_and_an_emoji_element_render_as_slack_shows_them(
    draw: Renderer,
) -> None:
    drawn = await draw.blocks(
        [
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [
                            {"type": "text", "text": "shipped "},
                            {"type": "emoji", "name": "tada", "unicode": "1f389"},
                            {"type": "text", "text": " :rocket:"},
                        ],
                    }
                ],
            },
            {
                "type": "context_actions",
                "elements": [
                    {
                        "type": "feedback_buttons",
                        "action_id": "answer_feedback",
                        "positive_button": {
                            "text": {"type": "plain_text", "text": "Good answer"},
                            "value": "good",
                        },
                        "negative_button": {
                            "text": {"type": "plain_text", "text": "Bad answer"},
                            "value": "bad",
                        },
                    },
                    {
                        "type": "icon_button",
                        "icon": "trash",
                        "text": {"type": "plain_text", "text": "Delete"},
                        "action_id": "delete",
                    },
                ],
            },
        ]
    )

    assert drawn.unknown == [] and drawn.blocks == ["bk-rich-text", "bk-context-actions"]
    # An emoji element is drawn; a shortcode inside a text element is text, as in Slack.
    assert "shipped 🎉 :rocket:" in drawn.text
    assert "Good answer" in drawn.text and "Bad answer" in drawn.text

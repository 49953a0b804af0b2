"""The sandbox's demo MCP server: an MCP approval a newcomer can try offline (`rules`)."""

from __future__ import annotations

import json
from pathlib import Path

from bot import approval_blocks as ui
from sandbox.demo import write_demo_catalog
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import Run, RunStatus
from testkit.harness import Bot, running_bot
from tests.test_approvals import approval_messages, value_of


async def test_the_demo_order_desk_looks_up_at_once_and_cancels_once_bob_approves(
    sqlite_url: str, tmp_path: Path
) -> None:
    agents = write_demo_catalog(tmp_path, "http://127.0.0.1:9")
    async with (
        SlackStandIn() as slack,
        running_bot(slack, sqlite_url, baton_agents_file=agents) as bot,
    ):
        await bot.slash("run cancel-order")
        await bot.idle()
        [approval] = approval_messages(slack)
        asked = json.dumps(approval.blocks, ensure_ascii=False)
        looked_up = [
            e.data["summary"]
            for e in await runs.events(bot.baton.db, (await latest(bot)).id)
            if e.kind == "tool_result" and e.data
        ]

        approval_id = value_of(approval)
        assert await bot.click(ui.APPROVE, approval_id, user="U0BOB", message=approval) == 200
        await bot.idle()
        run = await latest(bot)
        thread = bot.slack.thread("C0GENERAL", run.thread_ts or "")

    assert looked_up == ["order_status: Order 1042: paid, packing — 2 × blue mug for Dana, €24.00"]
    assert "*order-desk* wants to call `cancel_order` on the MCP server `shop-admin`" in asked
    assert "*order_id*: 1042" in asked and "*reason*: the customer asked" in asked
    assert "Who can decide: <@U0BOB>" in asked
    assert run.status == RunStatus.SUCCEEDED
    assert "Order 1042 cancelled; Dana is refunded €24.00." in thread[-1].text


async def latest(bot: Bot) -> Run:
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    return run

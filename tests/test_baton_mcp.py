"""`baton mcp`: an MCP client starts a run; its approval still happens in Slack."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from bot import approval_blocks as ui
from sandbox.web_api import SlackStandIn
from testkit.harness import running_bot
from tests.mcp_helpers import ROOT
from tests.test_approvals import approval_messages, posted_in_random, value_of, write_catalog


@asynccontextmanager
async def baton_mcp(slack: SlackStandIn, db_url: str, agents: Path) -> AsyncIterator[Client]:
    """`baton mcp` in its own process, as an IDE would start it, and a client talking to it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bot.cli", "mcp"],
        env={
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.api_url,
            "BATON_DATABASE_URL": db_url,
            "BATON_AGENTS_FILE": str(agents),
            "BATON_LOG_LEVEL": "WARNING",
            "PATH": os.environ.get("PATH", ""),
        },
        cwd=agents.parent,
    )
    async with Client(params, cache=None) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_an_mcp_client_starts_a_playbook_whose_approval_happens_in_slack(
    sqlite_url: str, tmp_path: Path
) -> None:
    agents = write_catalog(tmp_path)
    async with SlackStandIn() as slack, baton_mcp(slack, sqlite_url, agents) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        started = await call(
            client, "run_playbook", playbook="announce", channel="C0GENERAL", user="U0ALICE"
        )
        run_id = started["run_id"]
        status: dict[str, Any] = {}
        for _ in range(400):
            status = await call(client, "run_status", run_id=run_id)
            if status["status"] == "waiting":
                break
            await asyncio.sleep(0.05)
        waiting = await call(client, "list_approvals", channel="C0GENERAL")
        unknown = await client.call_tool(
            "run_playbook", {"playbook": "nope", "channel": "C0GENERAL"}
        )

        # The Baton that serves Slack takes the click and finishes the run.
        async with running_bot(slack, sqlite_url, baton_agents_file=agents) as bot:
            [approval] = approval_messages(slack)
            assert (
                await bot.click(ui.APPROVE, value_of(approval), user="U0ALICE", message=approval)
                == 200
            )
            await bot.idle()
            # Whichever process still held the run when the click came (the MCP server, if
            # its drive had not let go yet) finishes it: wait for that, then look.
            finished = await call(client, "run_status", run_id=run_id)
            for _ in range(400):
                if finished["status"] not in ("queued", "planning", "running", "waiting"):
                    break
                await asyncio.sleep(0.05)
                finished = await call(client, "run_status", run_id=run_id)

    assert (
        tools["run_status"].annotations is not None
        and tools["run_status"].annotations.read_only_hint
    )
    assert started["thread"].startswith("https://slack.com/archives/C0GENERAL/p")
    assert status["status"] == "waiting"
    assert (
        status["waiting_for"][0]["what"]
        == "call `post_message` (channel: C0RANDOM, text: Deploy finished)"
    )
    assert [w["run_id"] for w in waiting["waiting"]] == [run_id]
    assert unknown.is_error and "Playbooks: announce, two-posts, gated-check" in str(
        unknown.content
    )
    request = next(m for m in slack.messages("C0GENERAL") if "asked" in m.text)
    assert request.text == "<@U0ALICE> asked: run `announce`"
    assert posted_in_random(slack) == ["Deploy finished"]
    assert finished["status"] == "succeeded" and finished["answer"]
    assert [t["status"] for t in finished["tasks"]] == ["succeeded"]

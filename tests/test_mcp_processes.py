"""MCP servers and Baton's own process: a claimed call survives `kill -9`, and `kill -TERM`
leaves no server behind. Baton runs as `baton run --http` in its own process here."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot import approval_blocks as ui
from sandbox.signing import FORM, block_actions_body, signed_headers
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import Database, runs, tool_calls
from storage.models import RunStatus
from testkit.fakes.model_servers import FakeOpenAI
from testkit.harness import PAYLOADS, SECRET, sample
from testkit.processes import ROOT, free_port
from tests.mcp_helpers import (
    catalog,
    clerk,
    is_clerk,
    is_synthesis,
    ops_server,
    recorded,
    synthesis,
)
from tests.test_approvals import approval_messages, value_of


@asynccontextmanager
async def baton_process(
    slack: SlackStandIn, openai: FakeOpenAI, db_url: str, agents: Path, workdir: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`baton run --http` with a model and an agent catalog; SIGKILLed if still running at the end."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": openai.base_url,
        "BATON_MODEL": "openai:gpt-4.1-mini",
        "BATON_DATABASE_URL": db_url,
        "BATON_AGENTS_FILE": str(agents),
        "BATON_LOG_LEVEL": "WARNING",
        # A killed process's lease lapses quickly, so the next one takes its runs over.
        "BATON_LEASE_SECONDS": "2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--http", "--port", str(port), cwd=workdir, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                with suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/healthz") as resp:
                        if resp.status == 200:
                            break
                assert proc.returncode is None, "baton exited during start-up"
                assert time.monotonic() < deadline, "baton did not start"
                await asyncio.sleep(0.1)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


async def post(url: str, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/slack/events",
            data=body,
            headers=signed_headers(SECRET, body, content_type=FORM),
        ) as resp,
    ):
        return resp.status


async def slash(url: str, slack: SlackStandIn, text: str) -> None:
    raw = (PAYLOADS / "slash_command_body.slack_docs.txt").read_text().strip()
    fields = dict(line.split("=", 1) for line in raw.split("&"))
    fields.update(
        team_id="T0BATON",
        channel_id="C0GENERAL",
        user_id="U0ALICE",
        command="/baton",
        text=text,
        response_url=slack.response_url("C0GENERAL", "U0ALICE"),
    )
    assert await post(url, urlencode(fields).encode()) == 200


async def approve(url: str, slack: SlackStandIn, message: Message) -> None:
    payload: dict[str, Any] = sample("block_actions_button_click.bolt_tests.json")
    payload.update(
        user={"id": "U0ALICE"},
        team={"id": "T0BATON"},
        channel={"id": "C0GENERAL"},
        trigger_id=slack.trigger_id("U0ALICE"),
    )
    payload["container"].update(message_ts=message.ts, channel_id="C0GENERAL")
    payload["actions"] = [
        {
            "type": "button",
            "action_id": ui.APPROVE,
            "block_id": "b",
            "value": value_of(message),
            "action_ts": str(time.time()),
        }
    ]
    assert await post(url, block_actions_body(payload)) == 200


async def until(predicate: Any, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, "the condition was not met in time"
        await asyncio.sleep(0.05)
    return found


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state


async def test_a_call_claimed_before_a_kill_9_is_not_made_again_after_the_restart(
    pg_url: str, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    # `--hold`: the server records the cancel, then never answers; Baton dies meanwhile.
    agents = catalog(tmp_path, servers=ops_server(record, "--hold"), tools=["mcp:ops/cancel"])
    async with SlackStandIn() as slack, FakeOpenAI() as openai:
        openai.when(is_synthesis, synthesis)
        openai.when(is_clerk, clerk(("ops__cancel", {"order_id": "1042"})))
        async with baton_process(slack, openai, pg_url, agents, tmp_path) as (_, first):
            await slash(first, slack, "run ask cancel order 1042")
            [message] = await slack.wait_for(lambda: approval_messages(slack) or None, timeout=30)
            await approve(first, slack, message)
            await until(lambda: recorded(record, "call", "cancel"))
        # Killed with SIGKILL between claiming the call and hearing its result.
        db = Database(pg_url)
        try:
            run = await runs.latest_run(db, channel_id="C0GENERAL")
            assert run is not None and run.status == RunStatus.RUNNING and run.lease_owner
            async with baton_process(slack, openai, pg_url, agents, tmp_path):
                finished = await until(
                    lambda: [m for m in slack.messages("C0GENERAL") if "is not repeated" in m.text],
                    timeout=60,
                )
            final = await runs.get_run(db, run.id)
            claimed = await tool_calls.for_run(db, run.id)
        finally:
            await db.dispose()
            for start in recorded(record, "started"):
                with suppress(ProcessLookupError):
                    os.kill(start["pid"], signal.SIGKILL)

    assert final is not None and final.status.is_final
    assert len(recorded(record, "call", "cancel")) == 1
    assert len(recorded(record, "started")) == 2  # the restarted Baton started its own server
    assert len(claimed) == 1 and claimed[0].result == ""
    assert "may already have happened" in finished[-1].text


async def test_sigterm_stops_baton_and_leaves_no_mcp_server_running(
    sqlite_url: str, tmp_path: Path
) -> None:
    ops, other = tmp_path / "ops.jsonl", tmp_path / "other.jsonl"
    agents = catalog(
        tmp_path,
        servers=ops_server(ops) + ops_server(other, name="other"),
        tools=["mcp:ops/hang", "mcp:other/lookup"],
    )
    async with SlackStandIn() as slack, FakeOpenAI() as openai:
        openai.when(is_synthesis, synthesis)
        openai.when(is_clerk, clerk(("ops__hang", {})))
        async with baton_process(slack, openai, sqlite_url, agents, tmp_path) as (proc, url):
            await slash(url, slack, "run ask wait")
            # Both servers are up, and one is in the middle of a call that never ends.
            await until(lambda: recorded(ops, "call", "hang") and recorded(other, "started"))
            pids = [s["pid"] for s in recorded(ops, "started") + recorded(other, "started")]
            assert all(alive(p) for p in pids)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=30)

    assert code == 0
    assert [p for p in pids if alive(p)] == []

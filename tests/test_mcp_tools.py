"""Specialists using MCP servers' tools: real servers (stdio and Streamable HTTP), the model
asking for the calls, signed Slack requests in, and what people see in the thread."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.mcp.status import ServerState
from agents.retry import RetryPolicy
from bot import approval_blocks as ui
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import runs, tool_calls
from storage.models import RunStatus, TaskStatus
from testkit.fakes.model_servers import FakeOpenAI
from testkit.harness import Bot, running_bot
from testkit.processes import PYTHON, http_server
from tests.mcp_helpers import (
    catalog,
    clerk,
    is_clerk,
    is_synthesis,
    ops_server,
    recorded,
    synthesis,
    tool_messages,
)
from tests.test_approvals import approval_messages, value_of


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.when(is_synthesis, synthesis)
        yield server


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "mcp-record.jsonl"


def bot_for(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, agents_file: Path, **overrides: Any
) -> Any:
    return running_bot(
        slack,
        sqlite_url,
        limits=Limits(
            retry=RetryPolicy(max_attempts=2, base_delay=0.01), task_timeout=30, run_deadline=60
        ),
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        baton_model="openai:gpt-4.1-mini",
        baton_agents_file=agents_file,
        **overrides,
    )


async def ask(bot: Bot, request: str = "") -> tuple[Message, str]:
    """`/baton run ask <request>`; returns the request's message and the run id."""
    await bot.slash(f"run ask {request}".strip())
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    [request_message] = [
        m for m in bot.slack.messages("C0GENERAL") if m.ts == run.thread_ts and not m.ephemeral_for
    ]
    return request_message, run.id


def task_line(bot: Bot, msg: Message, task: str = "step") -> dict[str, Any]:
    stream = next(m for m in bot.thread(msg) if m.tasks)
    line: dict[str, Any] = stream.tasks[task]
    return line


def progress(events: list[Any]) -> list[str]:
    return [e.data["detail"] for e in events if e.kind == "task_progress" and e.data]


async def test_a_read_only_tool_runs_at_once_and_its_result_reaches_the_thread(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(
        tmp_path, servers=ops_server(record), tools=["mcp:ops/lookup", "mcp:ops/cancel"]
    )
    openai.when(is_clerk, clerk(("ops__lookup", {"order_id": "1042"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, run_id = await ask(bot, "where is order 1042?")
        run = await runs.get_run(bot.baton.db, run_id)
        trail = progress(await runs.events(bot.baton.db, run_id))

    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert approval_messages(slack) == []
    assert "Order 1042: shipped on Tuesday, 2 items" in bot.thread(msg)[-1].text
    assert "calling `mcp:ops/lookup`" in trail
    assert "lookup: Order 1042: shipped on Tuesday, 2 items" in trail
    assert task_line(bot, msg)["status"] == "complete"
    assert [r["args"] for r in recorded(record, "call")] == [{"order_id": "1042"}]
    # Only the tools the specialist lists are offered, under names that say their server.
    [first] = [s for s in openai.requests if is_clerk(s)][:1]
    assert first.tool_names == ["ops__lookup", "ops__cancel"]
    offered = {t["function"]["name"]: t["function"] for t in first.body["tools"]}
    assert offered["ops__lookup"]["description"] == "Look up an order's state."
    assert offered["ops__lookup"]["parameters"]["required"] == ["order_id"]


async def test_a_tool_the_specialist_does_not_list_is_never_offered_and_refused_if_asked_for(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/lookup"])
    openai.when(is_clerk, clerk(("ops__admin_report", {})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, run_id = await ask(bot, "show me the admin report")
        trail = progress(await runs.events(bot.baton.db, run_id))

    clerk_requests = [s for s in openai.requests if is_clerk(s)]
    assert all("ops__admin_report" not in s.tool_names for s in clerk_requests)
    assert "refused `ops__admin_report`: not one of this specialist's tools" in trail
    [refusal] = tool_messages(clerk_requests[-1])
    assert "is not available to you" in refusal["content"]
    assert recorded(record, "call") == []
    assert "secret figures" not in json.dumps([m.text for m in bot.thread(msg)])


async def test_a_destructive_tool_waits_for_approve_and_then_runs_exactly_once(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/*"])
    openai.when(is_clerk, clerk(("ops__cancel", {"order_id": "1042"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, run_id = await ask(bot, "cancel order 1042")
        [approval] = approval_messages(slack)
        shown = json.dumps(approval.blocks, ensure_ascii=False)
        waiting = await runs.get_run(bot.baton.db, run_id)
        calls_before = recorded(record, "call")
        approval_id = value_of(approval)

        assert await bot.click(ui.APPROVE, approval_id, user="U0ALICE", message=approval) == 200
        await bot.idle()
        # A second click (or a replay) changes nothing.
        assert await bot.click(ui.APPROVE, approval_id, user="U0ALICE", message=approval) == 200
        await bot.idle()
        run = await runs.get_run(bot.baton.db, run_id)
        claimed = await tool_calls.for_run(bot.baton.db, run_id)

    assert waiting is not None and waiting.status == RunStatus.WAITING
    assert calls_before == []
    assert "*clerk* wants to call `cancel` on the MCP server `ops`" in shown
    assert "*order_id*: 1042" in shown
    assert run is not None and run.status == RunStatus.SUCCEEDED
    [call] = recorded(record, "call", "cancel")
    assert call["args"] == {"order_id": "1042"}
    # The request carried the call's idempotency key, the same one the claim was made under.
    [claim] = claimed
    assert claim.tool == "mcp:ops/cancel" and call["key"] == claim.idempotency_key
    assert "Order 1042 cancelled" in bot.thread(msg)[-1].text


async def test_a_rejected_destructive_tool_never_runs_and_the_thread_says_so(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/cancel"])
    openai.when(is_clerk, clerk(("ops__cancel", {"order_id": "1042"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, run_id = await ask(bot, "cancel order 1042")
        [approval] = approval_messages(slack)
        assert (
            await bot.click(ui.REJECT, value_of(approval), user="U0ALICE", message=approval) == 200
        )
        await bot.idle()
        [task] = await runs.list_tasks(bot.baton.db, run_id)

    assert recorded(record, "call") == []
    # The step is rejected, in Baton's words; the model is not asked to work around it.
    assert task.status == TaskStatus.REJECTED
    assert task.error == "`mcp:ops/cancel` was not called: rejected by <@U0ALICE>"
    assert len([s for s in openai.requests if is_clerk(s)]) == 1
    decided = slack.workspace.message("C0GENERAL", approval.ts)
    assert "Rejected by <@U0ALICE>" in json.dumps(decided.blocks)
    answer = bot.thread(msg)[-1].text
    assert "was not called: rejected by <@U0ALICE>" in answer and "Do not try" not in answer


async def test_the_catalog_can_require_or_waive_approval_whatever_the_annotations_say(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    # `comment` has no annotations (so it would ask); `lookup` says it only reads.
    agents = catalog(
        tmp_path,
        servers=ops_server(record),
        tools=["mcp:ops/lookup", "mcp:ops/comment"],
        extra=(
            "approvals:\n"
            "  require: {'mcp:ops/comment': false, 'mcp:ops/lookup': true}\n"
            "  tools: {'mcp:ops/*': [U0BOB]}\n"
        ),
    )
    openai.when(
        is_clerk,
        clerk(
            ("ops__comment", {"order_id": "7", "text": "gift wrap"}),
            ("ops__lookup", {"order_id": "7"}),
        ),
    )

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        await ask(bot, "note gift wrap on order 7 and look it up")
        [approval] = approval_messages(slack)
        shown = json.dumps(approval.blocks, ensure_ascii=False)

    assert [r["tool"] for r in recorded(record, "call")] == ["comment"]
    assert "`lookup` on the MCP server `ops`" in shown
    assert "<@U0BOB>" in shown  # approvers named for the whole server


async def test_a_server_that_crashes_mid_call_fails_the_task_then_restarts_for_the_next_run(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/*"])
    openai.when(lambda s: is_clerk(s) and "crash" in s.last_user_text, clerk(("ops__crash", {})))
    openai.when(is_clerk, clerk(("ops__lookup", {"order_id": "9"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        first, first_id = await ask(bot, "crash please")
        failed = (await runs.list_tasks(bot.baton.db, first_id))[0]
        second, second_id = await ask(bot, "where is order 9?")
        run = await runs.get_run(bot.baton.db, second_id)

    assert failed.status == TaskStatus.FAILED
    assert failed.error is not None
    assert "the MCP server `ops` stopped during the call to `mcp:ops/crash`" in failed.error
    line = task_line(bot, first)
    assert line["status"] == "error" and "stopped during the call" in line["output"]
    assert "Traceback" not in json.dumps([m.text for m in bot.thread(first)])
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert "Order 9: shipped" in bot.thread(second)[-1].text
    starts = recorded(record, "started")
    assert len(starts) == 2 and starts[0]["pid"] != starts[1]["pid"]


async def test_a_tool_that_hangs_is_cancelled_at_the_tool_timeout_and_the_run_goes_on(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/hang"])
    openai.when(is_clerk, clerk(("ops__hang", {})))

    async with bot_for(slack, openai, sqlite_url, agents, baton_tool_timeout=0.5) as bot:
        _, run_id = await ask(bot, "wait for it")
        run = await runs.get_run(bot.baton.db, run_id)
        trail = progress(await runs.events(bot.baton.db, run_id))

    # The run ends (it is not left hanging), and honestly: the task's only call failed.
    assert run is not None and run.status == RunStatus.FAILED and run.finished_at is not None
    expected = "no answer within 0.5 s (BATON_TOOL_TIMEOUT); the call was cancelled"
    assert f"`mcp:ops/hang` failed: {expected}" in trail
    [told] = tool_messages([s for s in openai.requests if is_clerk(s)][-1])
    assert told["content"] == f'<tool_result tool="ops__hang">\nError: {expected}\n</tool_result>'
    assert len(recorded(record, "call", "hang")) == 1


async def test_a_tool_error_reaches_the_model_and_the_task_list(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/fail"])
    openai.when(is_clerk, clerk(("ops__fail", {})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        _, run_id = await ask(bot, "check stock")
        trail = progress(await runs.events(bot.baton.db, run_id))

    assert any(
        t.startswith("`mcp:ops/fail` failed:") and "closed for stocktaking" in t for t in trail
    )
    [told] = tool_messages([s for s in openai.requests if is_clerk(s)][-1])
    assert told["content"].startswith('<tool_result tool="ops__fail">\nError: ')
    assert "closed for stocktaking" in told["content"]


async def test_long_text_is_cut_with_a_note_and_structured_content_is_kept_as_json(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/flood", "mcp:ops/stock"])
    openai.when(is_clerk, clerk(("ops__flood", {}), ("ops__stock", {"sku": "MUG-1"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        _, run_id = await ask(bot, "everything")
        results = [
            e.data
            for e in await runs.events(bot.baton.db, run_id)
            if e.kind == "tool_result" and e.data
        ]

    flood, stock = tool_messages([s for s in openai.requests if is_clerk(s)][-1])
    assert len(flood["content"]) < 8400
    assert (
        "[… cut: the tool returned 40,289 characters; the first 8,000 are shown]"
        in flood["content"]
    )
    assert json.loads(stock["content"].partition("\n\n")[2].removesuffix("\n</tool_result>")) == {
        "sku": "MUG-1",
        "on_hand": 17,
        "warehouse": "Leeds",
    }
    assert {
        "tool": "mcp:ops/stock",
        "data": {"sku": "MUG-1", "on_hand": 17, "warehouse": "Leeds"},
    }.items() <= next(r for r in results if r["tool"] == "mcp:ops/stock").items()


async def test_a_300_tool_server_sends_only_the_2_listed_tools_to_the_model(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(
        tmp_path,
        servers=ops_server(record, "--many", "300", name="big"),
        tools=["mcp:big/tool_007", "mcp:big/tool_123"],
    )
    openai.when(is_clerk, clerk(("big__tool_123", {})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, _ = await ask(bot, "run tool 123")
        [status] = bot.baton.toolbox.servers()

    first = next(s for s in openai.requests if is_clerk(s))
    assert [t["function"]["name"] for t in first.body["tools"]] == [
        "big__tool_007",
        "big__tool_123",
    ]
    assert len(json.dumps(first.body["tools"])) < 1000
    assert status.tools is not None and len(status.tools) == 300
    assert [r["tool"] for r in recorded(record, "call")] == ["tool_123"]
    assert "tool_123 ran" in bot.thread(msg)[-1].text


async def test_a_streamable_http_server_gets_its_headers_from_the_environment(
    slack: SlackStandIn,
    openai: FakeOpenAI,
    sqlite_url: str,
    tmp_path: Path,
    record: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPS_TOKEN", "s3cret-token")
    openai.when(is_clerk, clerk(("remote__lookup", {"order_id": "55"})))
    async with http_server(record) as url:
        agents = catalog(
            tmp_path,
            servers=(
                "  - name: remote\n"
                f"    url: {url}\n"
                "    headers: {Authorization: 'Bearer ${OPS_TOKEN}'}\n"
            ),
            tools=["mcp:remote/lookup"],
        )
        async with bot_for(slack, openai, sqlite_url, agents) as bot:
            msg, run_id = await ask(bot, "where is order 55?")
            run = await runs.get_run(bot.baton.db, run_id)
            [status] = bot.baton.toolbox.servers()

    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert "Order 55: shipped" in bot.thread(msg)[-1].text
    assert status.transport == "Streamable HTTP"
    requests = recorded(record, "http")
    assert requests and {r["authorization"] for r in requests} == {"Bearer s3cret-token"}
    assert "s3cret-token" not in agents.read_text()


async def test_the_published_time_server_runs_over_stdio(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    command = [PYTHON, "-m", "mcp_server_time", "--local-timezone", "UTC"]
    agents = catalog(
        tmp_path,
        servers=f"  - name: time\n    command: {json.dumps(command)}\n",
        tools=["mcp:time/get_current_time"],
    )
    openai.when(is_clerk, clerk(("time__get_current_time", {"timezone": "Asia/Tokyo"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, run_id = await ask(bot, "what time is it in Tokyo?")
        run = await runs.get_run(bot.baton.db, run_id)
        [status] = bot.baton.toolbox.servers()

    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert approval_messages(slack) == []  # it says it only reads
    assert '"timezone": "Asia/Tokyo"' in bot.thread(msg)[-1].text
    assert status.tools is not None and {t.name for t in status.tools} >= {
        "get_current_time",
        "convert_time",
    }


async def test_tool_lists_are_cached_and_read_again_when_the_server_says_they_changed(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(tmp_path, servers=ops_server(record), tools=["mcp:ops/*"])
    openai.when(lambda s: is_clerk(s) and "grow" in s.last_user_text, clerk(("ops__grow", {})))
    openai.when(is_clerk, clerk(("ops__lookup", {"order_id": "1"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        await ask(bot, "look up order 1")
        await ask(bot, "look up order 1 again")
        lists_before = len(recorded(record, "list"))
        await ask(bot, "grow")
        await slack.wait_for(lambda: bot.baton.toolbox.servers()[0].refresh_pending, timeout=10)
        await ask(bot, "look up order 1 once more")
        lists_after = len(recorded(record, "list"))

    assert lists_before == 1  # listed when it started, then served from the cache
    assert lists_after == 2  # listed again once, after the server said its tools changed
    offered = [s.tool_names for s in openai.requests if is_clerk(s) and not tool_messages(s)]
    assert "ops__fresh" not in offered[0] and "ops__fresh" in offered[-1]


async def test_a_server_that_cannot_start_leaves_its_tools_out_and_the_run_goes_on(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    broken = '  - name: broken\n    command: ["/nonexistent/mcp-server", "--stdio"]\n'
    agents = catalog(
        tmp_path, servers=ops_server(record) + broken, tools=["mcp:broken/*", "mcp:ops/lookup"]
    )
    openai.when(is_clerk, clerk(("ops__lookup", {"order_id": "3"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, run_id = await ask(bot, "where is order 3?")
        run = await runs.get_run(bot.baton.db, run_id)
        trail = progress(await runs.events(bot.baton.db, run_id))
        status, reply = await bot.slash("agents")

    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert "Order 3: shipped" in bot.thread(msg)[-1].text
    first = next(s for s in openai.requests if is_clerk(s))
    assert first.tool_names == ["ops__lookup"]
    why = "the MCP server `broken` is unavailable: cannot start it: no such program '/nonexistent/mcp-server'"
    assert f"{why}; its tools are not offered" in trail
    assert status == 200 and reply is not None
    shown = json.dumps(reply["blocks"], ensure_ascii=False)
    assert "`broken` (stdio) · ⚠️ unavailable: cannot start it: no such program" in shown


async def test_a_specialist_left_with_none_of_its_tools_fails_its_task_without_guessing(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    broken = '  - name: broken\n    command: ["/nonexistent/mcp-server"]\n'
    agents = catalog(tmp_path, servers=broken, tools=["mcp:broken/*"])

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        msg, run_id = await ask(bot, "file a ticket")
        [task] = await runs.list_tasks(bot.baton.db, run_id)

    assert not [s for s in openai.requests if is_clerk(s)]  # the model was never asked
    assert task.status == TaskStatus.FAILED and task.error is not None
    assert task.error.startswith(
        "none of its tools can be used: the MCP server `broken` is unavailable: cannot start it"
    )
    assert task_line(bot, msg)["status"] == "error"


async def test_baton_agents_lists_each_specialists_mcp_tools_and_each_servers_state(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, record: Path
) -> None:
    agents = catalog(
        tmp_path,
        servers=ops_server(record),
        tools=["mcp:ops/lookup", "mcp:ops/cancel", "calculator"],
    )
    openai.when(is_clerk, clerk(("ops__lookup", {"order_id": "1"})))

    async with bot_for(slack, openai, sqlite_url, agents) as bot:
        _, before = await bot.slash("agents")
        await ask(bot, "look up order 1")
        _, after = await bot.slash("agents")
        [status] = bot.baton.toolbox.servers()

    assert before is not None and after is not None
    shown_before = json.dumps(before["blocks"], ensure_ascii=False)
    assert (
        "`ops` (stdio) · not started yet (starts when a specialist first needs it)" in shown_before
    )
    assert "Tools: `mcp:ops/lookup`, `mcp:ops/cancel`, `calculator`" in shown_before
    shown = json.dumps(after["blocks"], ensure_ascii=False)
    assert "`ops` (stdio) · running · 10 tools, 2 ✋" in shown
    assert "`mcp:ops/lookup` (`lookup`), `mcp:ops/cancel` (`cancel` ✋), `calculator`" in shown
    assert status.state == ServerState.RUNNING

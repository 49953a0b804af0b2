"""What calling a tool through an MCP server costs over calling a built-in tool directly.

The same trivial work each way: the built-in `calculator` in Baton's process, and the test
server's read-only `lookup` over stdio and over Streamable HTTP, each through the tool Baton
gives a specialist (argument check, call, result conversion), after a warm-up.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from agents.mcp.server_entries import McpServerSpec
from agents.mcp.servers import McpServers
from agents.tools.base import Tool, ToolContext
from agents.tools.calculator import Calculator
from bench.figures import pct
from testkit.processes import PYTHON, ROOT, http_server

CALLS = 200


async def timed(tool: Tool, arguments: dict[str, object]) -> float:
    """p50 of CALLS calls, in milliseconds."""
    ctx = ToolContext(run_id="bench", task_id="t", idempotency_key="")
    for _ in range(10):
        await tool.run(tool.parse_args(arguments), ctx)
    timings = []
    for _ in range(CALLS):
        start = time.perf_counter()
        await tool.run(tool.parse_args(arguments), ctx)
        timings.append((time.perf_counter() - start) * 1000)
    return pct(timings, 0.5)


async def through(spec: McpServerSpec) -> float:
    servers = McpServers([spec], environ=os.environ, require={}, call_timeout=30)
    try:
        [lookup] = [t for t in await servers.tools(spec.name) if t.tool == "lookup"]
        return await timed(lookup, {"order_id": "1042"})
    finally:
        await servers.aclose()


async def call_overhead() -> list[tuple[str, str, str]]:
    builtin = await timed(Calculator(), {"expression": "2 + 3 * 4"})
    with tempfile.TemporaryDirectory() as tmp:
        command = [PYTHON, "-m", "testkit.fakes.fake_mcp_server"]
        stdio = await through(McpServerSpec(name="ops", command=command, cwd=ROOT))
        async with http_server(Path(tmp) / "record.jsonl") as url:
            http = await through(McpServerSpec(name="ops", url=url))
    return [
        (
            f"MCP tool call vs built-in tool ({CALLS} calls each)",
            "p50 built-in · stdio · HTTP",
            f"{builtin:.2f} · {stdio:.2f} (+{stdio - builtin:.2f}) · "
            f"{http:.2f} (+{http - builtin:.2f}) ms",
        )
    ]

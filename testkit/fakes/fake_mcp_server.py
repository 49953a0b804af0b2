"""An MCP server for the tests, written with the SDK's server side, over stdio or HTTP.

    python -m testkit.fakes.fake_mcp_server [--http PORT] [--many N] [--record FILE] [--hold]

Every start, listing and call is appended to `--record` as a JSON line, so a test can count
what really reached the server (and which process it reached). `--hold` makes `cancel`
record its call and then never answer, for killing Baton between a call and its result.
`--many N` serves N read-only tools `tool_000`… instead of the usual ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import Tool as McpTool
from mcp.types import ToolAnnotations
from pydantic import BaseModel

READ_ONLY = ToolAnnotations(read_only_hint=True)
DESTRUCTIVE = ToolAnnotations(destructive_hint=True)


class Stock(BaseModel):
    sku: str
    on_hand: int
    warehouse: str


class Recorder:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        line = json.dumps({"event": event, "pid": os.getpid(), **fields})
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


class RecordingServer(MCPServer[Any]):
    """Records each tools/list it answers."""

    def __init__(self, record: Recorder) -> None:
        super().__init__("ops", log_level="WARNING")
        self.record = record

    async def list_tools(self) -> list[McpTool]:
        self.record("list")
        return await super().list_tools()


def key_of(ctx: Context[Any, Any]) -> str | None:
    meta = ctx.request_context.meta or {}
    key = meta.get("idempotencyKey")
    return str(key) if key is not None else None


def ops_server(record: Recorder, *, hold: bool) -> MCPServer[Any]:
    server = RecordingServer(record)

    @server.tool(annotations=READ_ONLY)
    def lookup(order_id: str) -> str:
        """Look up an order's state."""
        record("call", tool="lookup", args={"order_id": order_id})
        return f"Order {order_id}: shipped on Tuesday, 2 items"

    @server.tool(annotations=READ_ONLY)
    def stock(sku: str) -> Stock:
        """How many of a product are on hand."""
        record("call", tool="stock", args={"sku": sku})
        return Stock(sku=sku, on_hand=17, warehouse="Leeds")

    @server.tool(annotations=DESTRUCTIVE)
    async def cancel(order_id: str, ctx: Context[Any, Any]) -> str:
        """Cancel an order (it cannot be undone)."""
        record("call", tool="cancel", args={"order_id": order_id}, key=key_of(ctx))
        if hold:
            await asyncio.Event().wait()
        return f"Order {order_id} cancelled"

    @server.tool()
    async def comment(order_id: str, text: str, ctx: Context[Any, Any]) -> str:
        """Add a comment to an order (says nothing about what it changes)."""
        record("call", tool="comment", args={"order_id": order_id, "text": text}, key=key_of(ctx))
        return f"Comment added to order {order_id}"

    @server.tool(annotations=READ_ONLY)
    def admin_report() -> str:
        """Internal figures no specialist in the tests may read."""
        record("call", tool="admin_report", args={})
        return "secret figures"

    @server.tool(annotations=READ_ONLY)
    def crash() -> str:
        """Exits the server in the middle of the call."""
        record("call", tool="crash", args={})
        os._exit(3)

    @server.tool(annotations=READ_ONLY)
    async def hang() -> str:
        """Never answers."""
        record("call", tool="hang", args={})
        await asyncio.Event().wait()
        return "unreachable"

    @server.tool(annotations=READ_ONLY)
    def fail() -> str:
        """Always fails, as a tool error."""
        record("call", tool="fail", args={})
        raise ToolError("the warehouse system is closed for stocktaking")

    @server.tool(annotations=READ_ONLY)
    def flood() -> str:
        """Answers with far too much text."""
        record("call", tool="flood", args={})
        return "\n".join(f"line {i}: " + "x" * 90 for i in range(400))

    @server.tool(annotations=READ_ONLY)
    async def grow(ctx: Context[Any, Any]) -> str:
        """Adds a tool `fresh`, and says the tool list changed."""
        record("call", tool="grow", args={})

        def fresh() -> str:
            """A tool that was not there at first."""
            record("call", tool="fresh", args={})
            return "fresh and new"

        server.add_tool(fresh, annotations=READ_ONLY)
        # Both protocol eras: a subscription event (2026) and a connection notification (2025).
        await ctx.notify_tools_changed()
        await ctx.request_context.session.send_tool_list_changed()
        return "added a tool"

    return server


def many_server(record: Recorder, count: int) -> MCPServer[Any]:
    server = RecordingServer(record)

    def numbered(name: str) -> Any:
        def tool() -> str:
            record("call", tool=name, args={})
            return f"{name} ran"

        return tool

    for i in range(count):
        name = f"tool_{i:03d}"
        server.add_tool(
            numbered(name), name=name, description=f"Tool number {i}.", annotations=READ_ONLY
        )
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve Streamable HTTP on PORT")
    parser.add_argument("--many", type=int, default=0)
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args(argv)
    record = Recorder(args.record)
    server = many_server(record, args.many) if args.many else ops_server(record, hold=args.hold)
    record("started", transport="http" if args.http else "stdio")
    if args.http is None:
        server.run()
        return
    import uvicorn

    app = server.streamable_http_app()

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization")
            record("http", method=scope["method"], authorization=auth and auth.decode())
        await app(scope, receive, send)

    uvicorn.run(recording, host="127.0.0.1", port=args.http, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])

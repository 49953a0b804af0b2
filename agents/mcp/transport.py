"""How Baton reaches an MCP server: a process over stdio, or Streamable HTTP.

`watched` tells the connection the moment the server's side of the transport ends (the
process exited), before any caller can take the connection for a live one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import anyio
import httpx2
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import CONNECTION_CLOSED

from agents.mcp.server_entries import McpServerSpec, expand

TransportStreams = tuple[Any, Any]


def open_transport(
    spec: McpServerSpec, environ: Mapping[str, str]
) -> AbstractAsyncContextManager[TransportStreams]:
    """The server's transport, its `${NAME}` values filled in from `environ`."""
    if spec.command is not None:
        return stdio_client(
            StdioServerParameters(
                command=spec.command[0],
                args=spec.command[1:],
                env=expand(spec.env, environ) or None,
                cwd=spec.cwd,
            )
        )
    assert spec.url is not None
    return _http(spec.url, expand(spec.headers, environ))


@asynccontextmanager
async def _http(url: str, headers: dict[str, str]) -> AsyncIterator[TransportStreams]:
    # The SDK's defaults: 30 s to connect and write, 5 minutes for a response stream.
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


@asynccontextmanager
async def watched(
    inner: AbstractAsyncContextManager[TransportStreams], lost: Callable[[], None]
) -> AsyncIterator[TransportStreams]:
    """The transport's streams, calling `lost` when the server's side ends (e.g. it exited)."""
    async with inner as (read, write):
        forward, received = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump() -> None:
            try:
                with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    async for item in read:
                        await forward.send(item)
                # Before the session hears of it: no caller may take this connection for live.
                lost()
            finally:
                forward.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                yield received, write
            finally:
                tg.cancel_scope.cancel()
                received.close()


def describe(error: BaseException) -> str:
    """A failure as a short sentence, without the SDK's exception groups around it."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, FileNotFoundError):
        return f"cannot start it: no such program '{error.filename}'"
    if isinstance(error, PermissionError):
        return f"cannot start it: '{error.filename}' may not be run"
    if isinstance(error, httpx2.ConnectError):
        return f"cannot connect: {error}"
    if isinstance(error, httpx2.HTTPStatusError):
        return f"the server answered HTTP {error.response.status_code}"
    if isinstance(error, MCPError):
        if error.code == CONNECTION_CLOSED:
            return "it closed the connection before answering (it may have exited)"
        return error.message
    text = str(error).strip()
    return text or type(error).__name__

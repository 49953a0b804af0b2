"""One MCP server's connection: started on first use, shared by every run, restarted after a crash.

A supervisor task owns the SDK's `Client` for its whole life (the SDK's task groups must be
entered and left by one task); runs call through it from their own tasks. When the
connection ends — the process exits, the HTTP transport fails — the supervisor starts it
again, at once the first time and then after growing pauses, so a server that keeps
crashing is not restarted in a tight loop. Whatever fails, the sentence is kept for
`/baton agents` and the log, and the server's tools are simply not offered meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

import anyio
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged
from mcp.types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    CallToolResult,
    Implementation,
    RequestParamsMeta,
    ToolListChangedNotification,
)
from mcp.types import Tool as McpDefinition
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

from agents.errors import ToolError, ToolServerError
from agents.mcp import tool_names
from agents.mcp.server_entries import McpServerSpec
from agents.mcp.status import ServerState
from agents.mcp.transport import describe, open_transport, watched

log = logging.getLogger(__name__)

# Where a call's idempotency key goes in the request's `_meta`, for servers that honour one.
IDEMPOTENCY_KEY = "idempotencyKey"
CLIENT_INFO = Implementation(name="baton", version="0.1.0")
# Listing stops after this many pages: a server whose cursor never ends cannot hang a run.
MAX_PAGES = 50
# A caller waits for a restart that is due this soon rather than reporting the server down.
WAIT_FOR_RETRY = 1.0


@dataclass(frozen=True)
class Backoff:
    """Pauses before starting a failed server again: at once, then 1, 2, 4 … up to 60 s."""

    first: float = 0.0
    base: float = 1.0
    most: float = 60.0
    # A server that stayed up this long has recovered: its next crash counts as the first.
    healthy_after: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row."""
        if failures <= 1:
            return self.first
        return min(self.most, self.base * 2.0 ** (failures - 2))


@dataclass
class _Live:
    """A running connection and its cached tool list."""

    client: Client
    tools: list[McpDefinition]
    stale: bool = False


@dataclass
class Snapshot:
    """The connection's state for a report, read without waiting."""

    state: ServerState
    problem: str
    retry_in: float | None
    tools: list[McpDefinition] | None
    version: int
    refresh_pending: bool = False


class Connection:
    def __init__(
        self,
        spec: McpServerSpec,
        *,
        environ: Mapping[str, str],
        call_timeout: float,
        start_timeout: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self.backoff = backoff or Backoff()
        self._environ = dict(environ)
        self._state = ServerState.NOT_STARTED
        self._problem = ""
        self._retry_at: float | None = None
        self._live: _Live | None = None
        self._listed: list[McpDefinition] | None = None
        # Bumped whenever the tool list is (re)read, so callers can cache what they build on it.
        self.version = 0
        self._failed_starts = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._start_scope: anyio.CancelScope | None = None
        self._list_lock = asyncio.Lock()

    # What runs use

    async def tools(self) -> list[McpDefinition]:
        """The server's tools (started first if need be); re-listed after it said they changed."""
        live = await self._ready()
        if live.stale:
            async with self._list_lock:
                if live.stale:
                    # Cleared first: a change announced while listing marks it stale again.
                    live.stale = False
                    try:
                        async with asyncio.timeout(self.call_timeout):
                            live.tools = await _list_all(live.client)
                    except Exception as e:
                        live.stale = True
                        raise ToolServerError(
                            f"the MCP server `{self.name}` did not list its tools: {describe(e)}"
                        ) from e
                    self._listed = live.tools
                    self.version += 1
        return live.tools

    async def call(self, tool: str, arguments: dict[str, Any], *, key: str) -> CallToolResult:
        """Call one tool, within the per-call timeout; `key` goes along in `_meta`."""
        live = await self._ready()
        label = f"`{tool_names.canonical(self.name, tool)}`"
        try:
            # The SDK's own timeout cancels the request on the server; this one also covers a
            # server so stuck that it stopped reading its input.
            async with asyncio.timeout(self.call_timeout + 1.0):
                return await live.client.call_tool(
                    tool,
                    arguments,
                    read_timeout_seconds=self.call_timeout,
                    meta=cast(RequestParamsMeta, {IDEMPOTENCY_KEY: key}) if key else None,
                )
        except TimeoutError as e:
            raise self._timed_out() from e
        except MCPError as e:
            if e.code == REQUEST_TIMEOUT:
                raise self._timed_out() from e
            if e.code == CONNECTION_CLOSED:
                if self._live is live:
                    self._live = None
                    self._wake.set()
                raise ToolServerError(
                    f"the MCP server `{self.name}` stopped during the call to {label}, so it "
                    "may or may not have happened; the server is being restarted"
                ) from e
            raise ToolError(f"the MCP server `{self.name}` refused the call: {e.message}") from e
        except Exception as e:
            raise ToolError(
                f"the MCP server `{self.name}` answered with something Baton cannot read: "
                f"{describe(e)}"
            ) from e

    def snapshot(self) -> Snapshot:
        retry_in = None
        if self._state is ServerState.UNAVAILABLE and self._retry_at is not None:
            retry_in = max(0.0, self._retry_at - _now())
        return Snapshot(
            state=self._state,
            problem=self._problem,
            retry_in=retry_in,
            tools=self._listed,
            version=self.version,
            refresh_pending=self._live is not None and self._live.stale,
        )

    async def aclose(self) -> None:
        """Stop the server (or close the connection) and wait until it is gone."""
        self._stopping.set()
        self._wake.set()
        if self._start_scope is not None and self._state is ServerState.STARTING:
            self._start_scope.cancel()
        if self._supervisor is not None:
            try:
                # The SDK stops a stdio server in steps: stdin closed, SIGTERM, SIGKILL.
                await asyncio.wait_for(asyncio.shield(self._supervisor), timeout=20)
            except TimeoutError:
                self._supervisor.cancel()
                await asyncio.gather(self._supervisor, return_exceptions=True)
        self._set(ServerState.STOPPED)

    # The supervisor

    async def _ready(self) -> _Live:
        """The running connection, starting the server if it is not yet; else ToolServerError."""
        if self._stopping.is_set():
            raise ToolServerError(
                f"the MCP server `{self.name}` is stopped: Baton is shutting down"
            )
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"mcp-{self.name}")
        failed_before = self._failed_starts
        give_up = _now() + self.start_timeout + 5.0
        while True:
            if self._state is ServerState.RUNNING and self._live is not None:
                return self._live
            if self._state is ServerState.STOPPED or self._stopping.is_set():
                raise ToolServerError(
                    f"the MCP server `{self.name}` is stopped: Baton is shutting down"
                )
            due = self._retry_at - _now() if self._retry_at is not None else 0.0
            if self._failed_starts > failed_before or (
                self._state is ServerState.UNAVAILABLE and due > WAIT_FOR_RETRY
            ):
                raise ToolServerError(self.unavailable())
            remaining = give_up - _now()
            if remaining <= 0:
                raise ToolServerError(
                    f"the MCP server `{self.name}` did not start within {self.start_timeout:g} s"
                )
            changed = self._changed
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def unavailable(self) -> str:
        """Why the server cannot be used now, as a sentence."""
        why = f": {self._problem}" if self._problem else ""
        return f"the MCP server `{self.name}` is unavailable{why}"

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            self._set(ServerState.STARTING)
            started = loop.time()
            ran: list[bool] = []
            try:
                await self._session(ran)
                problem = "the server closed the connection (it exited)"
            except Exception as e:
                problem = describe(e)
            self._live = None
            if self._stopping.is_set():
                break
            if ran and loop.time() - started >= self.backoff.healthy_after:
                failures = 0
            failures += 1
            if not ran:
                self._failed_starts += 1
            delay = self.backoff.delay(failures)
            log.warning("MCP server %s: %s; starting it again in %.0f s", self.name, problem, delay)
            self._retry_at = loop.time() + delay
            self._set(ServerState.UNAVAILABLE, problem)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self._set(ServerState.STOPPED)

    async def _session(self, ran: list[bool]) -> None:
        """One connection, from start to its end (a crash, or Baton stopping)."""
        wake = asyncio.Event()
        self._wake = wake
        if self._stopping.is_set():
            return

        def lost() -> None:
            self._live = None
            wake.set()

        with anyio.CancelScope(deadline=anyio.current_time() + self.start_timeout) as scope:
            self._start_scope = scope
            try:
                async with Client(
                    watched(open_transport(self.spec, self._environ), lost),
                    message_handler=self._on_message,
                    client_info=CLIENT_INFO,
                    cache=None,
                ) as client:
                    tools = await _list_all(client)
                    scope.deadline = math.inf
                    if not wake.is_set():  # else lost (or told to stop) while listing
                        await self._serve(client, _Live(client, tools), wake, ran)
            finally:
                self._start_scope = None
        if scope.cancelled_caught and not ran and not self._stopping.is_set():
            raise TimeoutError(f"it did not answer within {self.start_timeout:g} s of starting")

    async def _serve(
        self, client: Client, live: _Live, wake: asyncio.Event, ran: list[bool]
    ) -> None:
        """Offer the connection to runs until it is lost or Baton stops."""
        self._live, self._listed = live, live.tools
        self.version += 1
        ran.append(True)
        self._retry_at = None
        self._set(ServerState.RUNNING, "")
        log.info("MCP server %s: running, %d tools", self.name, len(live.tools))
        async with anyio.create_task_group() as tg:
            if _announces_changes(client):
                tg.start_soon(self._listen, client, live)
            await wake.wait()
            tg.cancel_scope.cancel()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            self._tools_changed()
        elif isinstance(message, Exception):
            log.warning("MCP server %s: %s", self.name, describe(message))

    async def _listen(self, client: Client, live: _Live) -> None:
        """2026-era servers announce changes on a subscription rather than the connection."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        self._tools_changed()
        except Exception as e:
            log.debug("MCP server %s: change subscription ended: %s", self.name, describe(e))

    def _tools_changed(self) -> None:
        if self._live is not None:
            self._live.stale = True
            log.info("MCP server %s: its tools changed; listing them again on next use", self.name)
            self._set(self._state, self._problem)

    def _timed_out(self) -> ToolError:
        return ToolError(
            f"no answer within {self.call_timeout:g} s (BATON_TOOL_TIMEOUT); the call was cancelled"
        )

    def _set(self, state: ServerState, problem: str | None = None) -> None:
        self._state = state
        if problem is not None:
            self._problem = problem
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _now() -> float:
    return asyncio.get_running_loop().time()


def _announces_changes(client: Client) -> bool:
    tools = client.server_capabilities.tools
    return (
        client.protocol_version in MODERN_PROTOCOL_VERSIONS
        and tools is not None
        and bool(tools.list_changed)
    )


async def _list_all(client: Client) -> list[McpDefinition]:
    tools: list[McpDefinition] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools

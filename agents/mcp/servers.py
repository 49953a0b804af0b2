"""Every MCP server in the catalog, by name: their tools as Baton tools, and their states."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from agents.mcp import tool_names
from agents.mcp.connection import Backoff, Connection
from agents.mcp.server_entries import McpServerSpec
from agents.mcp.status import ServerStatus, ToolInfo
from agents.mcp.tool import McpTool, needs_approval


class McpServers:
    """The catalog's `mcp_servers:`; each starts when a specialist first needs it."""

    def __init__(
        self,
        specs: Sequence[McpServerSpec],
        *,
        environ: Mapping[str, str],
        require: Mapping[str, bool],
        call_timeout: float,
        start_timeout: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._connections = {
            s.name: Connection(
                s,
                environ=environ,
                call_timeout=call_timeout,
                start_timeout=start_timeout,
                backoff=backoff,
            )
            for s in specs
        }
        self._require = dict(require)
        # Per server: the listing version these tools were built from, and the tools.
        self._built: dict[str, tuple[int, list[McpTool]]] = {}
        self._by_model_name: dict[str, McpTool] = {}

    def __contains__(self, server: object) -> bool:
        return server in self._connections

    async def tools(self, server: str) -> list[McpTool]:
        """The server's tools; `ToolServerError` says why when it cannot be used."""
        connection = self._connections[server]
        definitions = await connection.tools()
        built = self._built.get(server)
        if built is None or built[0] != connection.version:
            tools = [
                McpTool(connection, d, require=self.override(server, d.name)) for d in definitions
            ]
            if built is not None:
                for old in built[1]:
                    self._by_model_name.pop(old.model_name, None)
            self._by_model_name.update((t.model_name, t) for t in tools)
            built = (connection.version, tools)
            self._built[server] = built
        return built[1]

    def override(self, server: str, tool: str) -> bool | None:
        """The catalog's `approvals.require` for this tool: exact name first, then `server/*`."""
        exact = self._require.get(tool_names.canonical(server, tool))
        return exact if exact is not None else self._require.get(tool_names.canonical(server, "*"))

    def by_model_name(self) -> Mapping[str, McpTool]:
        """The tools listed so far, by the name a model calls them."""
        return self._by_model_name

    def status(self) -> list[ServerStatus]:
        """Each server's state and tools, from what is already known (never waits)."""
        found = []
        for name, connection in self._connections.items():
            snap = connection.snapshot()
            tools = None
            if snap.tools is not None:
                tools = tuple(
                    ToolInfo(d.name, needs_approval(d.annotations, self.override(name, d.name)))
                    for d in snap.tools
                )
            found.append(
                ServerStatus(
                    name=name,
                    transport=connection.spec.transport,
                    state=snap.state,
                    problem=snap.problem,
                    retry_in=snap.retry_in,
                    tools=tools,
                    refresh_pending=snap.refresh_pending,
                )
            )
        return found

    async def aclose(self) -> None:
        """Stop every server, together."""
        await asyncio.gather(*(c.aclose() for c in self._connections.values()))

"""Every tool a specialist may be given: Baton's own, and its MCP servers' tools.

A specialist is offered only the tools its catalog entry lists (`http_check`,
`mcp:tickets/create_ticket`, `mcp:docs/*`). MCP servers start when first needed; one that
cannot start leaves its tools out with a sentence saying why, and the rest go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agents.errors import ToolServerError
from agents.mcp import tool_names
from agents.mcp.status import ServerStatus
from agents.spec import AgentSpec
from agents.tools.base import Tool

if TYPE_CHECKING:
    from agents.mcp.servers import McpServers
    from agents.mcp.tool import McpTool


@dataclass(frozen=True)
class Offered:
    """The tools one specialist gets now, and why any it lists are missing."""

    tools: dict[str, Tool]  # by the name the model calls them
    missing: tuple[str, ...] = ()


class Toolbox:
    def __init__(self, builtins: Mapping[str, Tool], mcp: McpServers | None = None) -> None:
        self.builtins = builtins
        self.mcp = mcp

    async def for_agent(self, spec: AgentSpec) -> Offered:
        """The tools `spec` lists, by model name (MCP servers are started if need be)."""
        tools: dict[str, Tool] = {}
        missing: list[str] = []
        refs = [r for r in map(tool_names.parse, spec.tools) if r is not None]
        servers = list(dict.fromkeys(r.server for r in refs))
        listed = await asyncio.gather(*(self._server_tools(s) for s in servers))
        by_server = dict(zip(servers, listed, strict=True))
        for entry in spec.tools:
            ref = tool_names.parse(entry)
            if ref is None:
                if entry in self.builtins:
                    tools[entry] = self.builtins[entry]
                continue
            found = by_server[ref.server]
            if isinstance(found, str):
                if found not in missing:
                    missing.append(found)
                continue
            matched = [t for t in found if ref.matches(t.server, t.tool)]
            if not matched:
                missing.append(f"the MCP server `{ref.server}` has no tool `{ref.tool}`")
            tools.update((t.model_name, t) for t in matched)
        return Offered(tools, tuple(missing))

    async def needs_approval(self, spec: AgentSpec) -> bool:
        """Whether any tool the specialist gets asks a person before each call."""
        offered = await self.for_agent(spec)
        return any(t.requires_approval for t in offered.tools.values())

    def by_model_name(self) -> Mapping[str, Tool]:
        """Every tool known so far by the name a model calls it (a live view)."""
        return _ByModelName(self)

    def servers(self) -> list[ServerStatus]:
        """The MCP servers' states, for `/baton agents` (never waits)."""
        return self.mcp.status() if self.mcp is not None else []

    async def aclose(self) -> None:
        """Stop the MCP servers."""
        if self.mcp is not None:
            await self.mcp.aclose()

    async def _server_tools(self, server: str) -> list[McpTool] | str:
        if self.mcp is None or server not in self.mcp:
            return f"the MCP server `{server}` is not configured"
        try:
            return await self.mcp.tools(server)
        except ToolServerError as e:
            return f"{e}; its tools are not offered"


class _ByModelName(Mapping[str, Tool]):
    def __init__(self, toolbox: Toolbox) -> None:
        self._toolbox = toolbox

    def _mcp(self) -> Mapping[str, Tool]:
        return self._toolbox.mcp.by_model_name() if self._toolbox.mcp is not None else {}

    def __getitem__(self, name: str) -> Tool:
        if name in self._toolbox.builtins:
            return self._toolbox.builtins[name]
        return self._mcp()[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._toolbox.builtins
        yield from self._mcp()

    def __len__(self) -> int:
        return len(self._toolbox.builtins) + len(self._mcp())

"""How MCP tools are named: in the catalog (`mcp:<server>/<tool>`) and for a model.

A model sees `<server>__<tool>`: server names cannot contain `__`, so two servers' tools
never collide. Names a model's API would refuse (other characters, over 64 characters) get
a short hash of the exact `server/tool` instead, so the same tool always has the same name
(a specialist resumed after an approval calls it by the name it was given before).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "mcp:"
ANY = "*"
SEPARATOR = "__"
MAX_MODEL_NAME = 64
_MODEL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class ToolRef:
    """`mcp:<server>/<tool>`, or `mcp:<server>/*` for all of a server's tools."""

    server: str
    tool: str

    @property
    def everything(self) -> bool:
        return self.tool == ANY

    def matches(self, server: str, tool: str) -> bool:
        return server == self.server and (self.everything or tool == self.tool)

    def __str__(self) -> str:
        return f"{PREFIX}{self.server}/{self.tool}"


def is_mcp(entry: str) -> bool:
    """Whether a catalog tool entry names an MCP tool."""
    return entry.startswith(PREFIX)


def parse(entry: str) -> ToolRef | None:
    """`mcp:tickets/create` → ToolRef; None when the entry is not of that form."""
    if not is_mcp(entry):
        return None
    server, slash, tool = entry[len(PREFIX) :].partition("/")
    if not server or not slash or not tool:
        return None
    return ToolRef(server, tool)


def canonical(server: str, tool: str) -> str:
    """The catalog's name for one tool of one server."""
    return str(ToolRef(server, tool))


def model_name(server: str, tool: str) -> str:
    """The name a model calls the tool by; stable and unique per server and tool."""
    plain = f"{server}{SEPARATOR}{tool}"
    if _MODEL_SAFE.match(plain) and len(plain) <= MAX_MODEL_NAME:
        return plain
    digest = hashlib.sha256(f"{server}/{tool}".encode()).hexdigest()[:10]
    safe = _UNSAFE.sub("_", plain)[: MAX_MODEL_NAME - len(digest) - 1]
    return f"{safe}_{digest}"

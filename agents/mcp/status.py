"""What `/baton agents` shows about each MCP server: plain values, read without waiting."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ServerState(StrEnum):
    NOT_STARTED = "not started"  # starts when a specialist first needs it
    STARTING = "starting"
    RUNNING = "running"
    UNAVAILABLE = "unavailable"  # failed; tried again after a pause
    STOPPED = "stopped"


@dataclass(frozen=True)
class ToolInfo:
    """One tool of a server, as listed."""

    name: str  # the server's own name for it
    needs_approval: bool


@dataclass(frozen=True)
class ServerStatus:
    name: str
    transport: str  # "stdio" or "Streamable HTTP"
    state: ServerState
    # Why the last attempt failed (or the connection was lost); empty when all is well.
    problem: str = ""
    # Seconds until the next attempt, while unavailable.
    retry_in: float | None = None
    # None until the server has been listed once.
    tools: tuple[ToolInfo, ...] | None = None
    # The server said its tools changed; they are listed again on next use.
    refresh_pending: bool = False

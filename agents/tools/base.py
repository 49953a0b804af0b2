"""What a tool is: typed arguments, a permission flag, and an async `run`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, Field

from agents.messages import ToolSchema


class SlackGateway(Protocol):
    """The Slack calls tools may make; `bot` provides the implementation."""

    async def history(self, channel: str, *, limit: int) -> list[dict[str, Any]]: ...

    async def post_message(self, channel: str, text: str) -> str: ...


@dataclass(frozen=True)
class ToolContext:
    """What a tool call may use besides its arguments."""

    run_id: str
    task_id: str
    # Hosts the HTTP tools may reach even when they resolve to private/loopback addresses.
    http_allow_hosts: frozenset[str] = frozenset()
    # Named webhook URLs the webhook tool may POST to (name -> URL).
    webhooks: dict[str, str] = field(default_factory=dict)
    slack: SlackGateway | None = None
    http_timeout: float = 10.0
    # Unique per call; side-effecting tools pass it on where the far side supports it.
    idempotency_key: str = ""


class ToolResult(BaseModel):
    ok: bool = True
    summary: str  # one line a person reads in the task list
    content: str  # what the model reads
    data: dict[str, Any] = Field(default_factory=dict)


class Tool(ABC):
    """A tool: subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]
    # A call changes something outside Baton; it needs a person's approval first.
    requires_approval: ClassVar[bool] = False

    @abstractmethod
    async def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        """Do the work. Raise `ToolError` with a sentence a person understands."""

    def args_from_text(self, text: str) -> list[BaseModel]:
        """Arguments found in plain text, for the offline `rules` provider (none by default)."""
        return []

    def schema(self) -> ToolSchema:
        return ToolSchema(
            name=self.name, description=self.description, parameters=self.Args.model_json_schema()
        )

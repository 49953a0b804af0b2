"""What a tool is: typed arguments, a permission flag, and an async `run`.

Built-in tools set these as class attributes; a tool from an MCP server sets them per
instance (its name, schema and whether it needs approval come from the server and the
catalog).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol

from pydantic import BaseModel, Field, ValidationError
from typing_extensions import TypeVar

from agents.errors import InvalidToolArguments
from agents.messages import ToolSchema


class SlackGateway(Protocol):
    """The Slack calls tools may make; `bot` provides the implementation."""

    async def history(self, channel: str, *, limit: int) -> list[dict[str, Any]]: ...

    async def post_message(self, channel: str, text: str) -> str: ...

    async def is_member(self, channel: str, user: str) -> bool: ...


# In `Scope.read_channels` / `post_channels`: any channel the requester is a member of.
ANY_CHANNEL = "*"


@dataclass(frozen=True)
class Scope:
    """How far one call may reach: the requester's, never the bot's.

    Made by the orchestrator from the run (who asked, where) and the specialist's `reach:`
    in the catalog; a tool refuses targets outside it whatever its model asks.
    """

    # Who asked for the run, and the channel (or DM) it was asked in.
    requester: str | None = None
    channel: str | None = None
    # Channels `slack_history` may read besides the request's own (`*`: any the requester is in).
    read_channels: frozenset[str] = frozenset()
    # Channels `post_message` may post in besides the request's own (`*`: any of the requester's).
    post_channels: frozenset[str] = frozenset()
    # Webhooks `webhook_post` may call, by name; None: every configured one.
    webhooks: frozenset[str] | None = None


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
    # Who the call acts for and where it may reach.
    scope: Scope = field(default_factory=Scope)


# Makes each call's context: (run id, task id, idempotency key) -> ToolContext.
ToolContextFactory = Callable[[str, str, str], ToolContext]


class ToolResult(BaseModel):
    ok: bool = True
    summary: str  # one line a person reads in the task list
    content: str  # what the model reads
    data: dict[str, Any] = Field(default_factory=dict)


# A tool's argument model. A bare `Tool` (a tool of any kind, as in the registry) is `Tool[Any]`.
ArgsT = TypeVar("ArgsT", bound=BaseModel, default=Any)


class Tool(ABC, Generic[ArgsT]):
    """A tool: subclasses set the attributes and implement `run` for their `Args` model."""

    # The name the catalog lists it by (`http_check`, `mcp:tickets/create_ticket`).
    name: str
    description: str
    Args: type[ArgsT]
    # A call changes something outside Baton; it needs a person's approval first.
    requires_approval: bool = False

    @property
    def model_name(self) -> str:
        """The name a model calls it by (only letters, digits, `_` and `-`)."""
        return self.name

    def parse_args(self, arguments: dict[str, Any]) -> ArgsT:
        """The model's arguments, checked; `InvalidToolArguments` says what is wrong."""
        try:
            return self.Args.model_validate(arguments)
        except ValidationError as e:
            raise InvalidToolArguments(
                "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            ) from e

    @abstractmethod
    async def run(self, args: ArgsT, ctx: ToolContext) -> ToolResult:
        """Do the work. Raise `ToolError` with a sentence a person understands."""

    def out_of_reach(self, args: ArgsT, scope: Scope) -> str | None:
        """Why this call's target is outside `scope` (a sentence), or None when it is within."""
        return None

    def args_from_text(self, text: str) -> list[ArgsT]:
        """Arguments found in plain text, for the offline `rules` provider (none by default)."""
        return []

    def schema(self) -> ToolSchema:
        """The tool as the model sees it."""
        return ToolSchema(
            name=self.model_name,
            description=self.description,
            parameters=self.Args.model_json_schema(),
        )

"""Everything `agents` raises, drawn once.

    AgentsError (storage.errors.BatonError)
    ├── CatalogError            the catalog YAML is unreadable or invalid
    ├── CompatError             OPENAI_COMPAT cannot be read (also a ValueError)
    ├── ModelError              a model call failed (what happened: `failure`)
    │   ├── TransientModelError     worth retrying: 429, 5xx, timeouts, dropped connections
    │   ├── PermanentModelError     not worth retrying: bad key, bad request, unknown model
    │   └── ModelBehaviorError      the model answered, but not in the shape asked for
    │       └── MaxTurnsExceeded        a task used up its turns (runner)
    ├── ToolError               a tool could not do what was asked (handed back to the model)
    │   └── Unreachable             the address is not one tools may reach (tools.netguard)
    ├── InvalidToolArguments    a call's arguments do not fit the tool (handed back to the model)
    └── ToolServerError         a tool's server failed or cannot start (stops the task)

A `ModelError`'s message is for the log: it may quote the server. What a person reads is
made from its fields by `agents.explain`, the one place errors become sentences.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from storage.errors import BatonError

if TYPE_CHECKING:
    from agents.messages import Usage


class AgentsError(BatonError):
    """Base class for errors from the agents package."""


class CatalogError(AgentsError):
    """The agent catalog (YAML) is unreadable or invalid; the message names file, entry, problem."""


class CompatError(AgentsError, ValueError):
    """OPENAI_COMPAT is not a preset and `feature=true|false|auto` pairs; the message says why."""


class Failure(StrEnum):
    """What went wrong with a model call, in terms a person can act on."""

    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"  # a 5xx, an overloaded server, a stream that broke off
    BAD_KEY = "bad_key"
    NO_CREDIT = "no_credit"
    FORBIDDEN = "forbidden"
    UNKNOWN_MODEL = "unknown_model"
    REFUSED_REQUEST = "refused_request"  # a 4xx, or a 500 that is a validation error
    TOO_LARGE = "too_large"
    BAD_OUTPUT = "bad_output"  # not the JSON or tool call that was asked for
    DECLINED = "declined"  # the model refused to answer
    UNSUPPORTED = "unsupported"  # the provider cannot do this at all (e.g. `rules` planning)
    OTHER = "other"


class ModelError(AgentsError):
    """A model call failed. `provider` names who failed ("OpenAI", "the … server at …")."""

    default_failure = Failure.OTHER

    def __init__(
        self,
        message: str,
        *,
        failure: Failure | None = None,
        provider: str = "",
        model: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure or self.default_failure
        self.provider = provider
        self.model = model
        self.status = status


class TransientModelError(ModelError):
    """Worth retrying: rate limited, a 5xx, a timeout, a dropped connection."""

    default_failure = Failure.SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        failure: Failure | None = None,
        provider: str = "",
        model: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message, failure=failure, provider=provider, model=model, status=status)
        self.retry_after = retry_after


class PermanentModelError(ModelError):
    """Not worth retrying: bad key, bad request, unknown model."""

    default_failure = Failure.REFUSED_REQUEST


class ModelBehaviorError(ModelError):
    """The model answered, but not in the shape asked for (e.g. invalid JSON).

    `usage`: what the unusable answer cost, when the server said (it is still paid for).
    """

    default_failure = Failure.BAD_OUTPUT
    usage: Usage | None = None


class ToolError(AgentsError):
    """A tool could not do what was asked; the message is shown to the model and the user."""


class InvalidToolArguments(AgentsError):
    """A model called a tool with arguments its schema does not accept; the message says why."""


class ToolServerError(AgentsError):
    """A tool's server failed (it crashed during the call, or cannot start): the task stops.

    Unlike `ToolError`, this is not handed back to the model to work around: the task fails
    with the message, which names the server and what happened to the call.
    """

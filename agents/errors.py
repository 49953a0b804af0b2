"""Everything `agents` raises, drawn once:

AgentsError
├── CatalogError
├── ModelError
│   ├── TransientModelError
│   ├── PermanentModelError
│   └── ModelBehaviorError
├── ToolError              (handed back to the model)
├── InvalidToolArguments   (handed back to the model)
└── ToolServerError        (stops the task)
"""

from __future__ import annotations


class AgentsError(Exception):
    """Base class for errors from the agents package."""


class CatalogError(AgentsError):
    """The agent catalog (YAML) is unreadable or invalid; the message names file, entry, problem."""


class ModelError(AgentsError):
    """A model call failed."""


class TransientModelError(ModelError):
    """Worth retrying: rate limited, a 5xx, a timeout, a dropped connection."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentModelError(ModelError):
    """Not worth retrying: bad key, bad request, unknown model."""


class ModelBehaviorError(ModelError):
    """The model answered, but not in the shape asked for (e.g. invalid JSON)."""


class ToolError(AgentsError):
    """A tool could not do what was asked; the message is shown to the model and the user."""


class InvalidToolArguments(AgentsError):
    """A model called a tool with arguments its schema does not accept; the message says why."""


class ToolServerError(AgentsError):
    """A tool's server failed (it crashed during the call, or cannot start): the task stops.

    Unlike `ToolError`, this is not handed back to the model to work around: the task fails
    with the message, which names the server and what happened to the call.
    """

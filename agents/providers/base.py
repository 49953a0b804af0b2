"""The one seam between Baton and a model vendor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from agents.messages import ModelRequest, ModelResponse

TextSink = Callable[[str], Awaitable[None]]


class ModelProvider(Protocol):
    """Answers one request. With `on_text`, streams text deltas to it as they arrive.

    Implementations raise `TransientModelError` for what is worth retrying (429, 5xx,
    timeouts, connection errors) and `PermanentModelError` for the rest; they do not retry
    themselves — `agents.retry` does, the same way for every provider.
    """

    name: str
    # Who this is, for people: "OpenAI", "the OpenAI-compatible server at 127.0.0.1:8080".
    label: str

    async def complete(
        self, request: ModelRequest, *, on_text: TextSink | None = None
    ) -> ModelResponse: ...

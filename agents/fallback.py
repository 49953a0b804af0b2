"""Asking a model with its fallbacks: each model gets its retries, then the next takes over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agents.errors import ModelError
from agents.messages import ModelRequest, ModelResponse
from agents.providers.base import TextSink
from agents.providers.registry import Binding
from agents.retry import RetryHook, RetryPolicy, call_with_retries

# (the model that failed, why, the model that takes over)
SwitchHook = Callable[[Binding, ModelError, Binding], Awaitable[None]]


async def ask(
    links: tuple[Binding, ...],
    request: ModelRequest,
    *,
    policy: RetryPolicy,
    on_retry: RetryHook | None = None,
    on_switch: SwitchHook | None = None,
    on_text: TextSink | None = None,
) -> tuple[Binding, ModelResponse]:
    """The first answer from `links`, in order, and which model gave it.

    A model that still fails after its retries (or fails in a way retrying cannot help)
    hands over to the next; when the last one fails too, its error is raised.
    """
    for i, link in enumerate(links):
        asked = request.model_copy(update={"model": link.model_id})

        async def call(asked: ModelRequest = asked, link: Binding = link) -> ModelResponse:
            return await link.provider.complete(asked, on_text=on_text)

        try:
            return link, await call_with_retries(call, policy=policy, on_retry=on_retry)
        except ModelError as error:
            if i + 1 == len(links):
                raise
            if on_switch is not None:
                await on_switch(link, error, links[i + 1])
    raise ValueError("a model chain needs at least one model")

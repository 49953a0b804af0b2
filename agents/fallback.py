"""Asking a model with its fallbacks: each model gets its retries, then the next takes over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agents.errors import ModelBehaviorError, ModelError
from agents.messages import ModelRequest, ModelResponse, Usage
from agents.providers.base import TextSink
from agents.providers.registry import Binding
from agents.retry import RetryHook, RetryPolicy, call_with_retries
from agents.spans import call_model

# (the model that failed, why, the model that takes over)
SwitchHook = Callable[[Binding, ModelError, Binding], Awaitable[None]]
# Every answer's tokens, usable or not, and the model (`provider:model-id`) that gave it.
UsageHook = Callable[[Usage, str], Awaitable[None]]


async def ask(
    links: tuple[Binding, ...],
    request: ModelRequest,
    *,
    policy: RetryPolicy,
    on_retry: RetryHook | None = None,
    on_switch: SwitchHook | None = None,
    on_text: TextSink | None = None,
    on_usage: UsageHook | None = None,
) -> tuple[Binding, ModelResponse]:
    """The first answer from `links`, in order, and which model gave it.

    A model that still fails after its retries (or fails in a way retrying cannot help)
    hands over to the next; when the last one fails too, its error is raised. A text answer
    cut off at the token limit counts as failed while another model can take over.
    """
    for i, link in enumerate(links):
        asked = request.model_copy(update={"model": link.model_id})

        async def call(asked: ModelRequest = asked, link: Binding = link) -> ModelResponse:
            try:
                response = await call_model(link.provider, asked, on_text=on_text)
            except ModelBehaviorError as e:
                if e.usage is not None and on_usage is not None:
                    await on_usage(e.usage, link.ref)  # an unusable answer is still paid for
                raise
            if on_usage is not None:
                await on_usage(response.usage, link.ref)
            return response

        last = i + 1 == len(links)
        try:
            response = await call_with_retries(call, policy=policy, on_retry=on_retry)
            if response.cut_off and not response.tool_calls and not last:
                raise ModelBehaviorError(
                    "the answer was cut off at the token limit",
                    provider=link.provider.label,
                    model=link.model_id,
                )
            return link, response
        except ModelError as error:
            if last:
                raise
            if on_switch is not None:
                await on_switch(link, error, links[i + 1])
    raise ValueError("a model chain needs at least one model")

"""The assistant container's own events, through Bolt's `Assistant` middleware.

`assistant_thread_started` and `assistant_thread_context_changed` are acked at once; the
welcome, the prompts and the context's channel name come after, in `Background`. A person's
message in the thread is a DM like any other (`events.py`), so the middleware passes it on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant

from bot import assistant

if TYPE_CHECKING:
    from bot.app import Baton


def register(baton: Baton) -> None:
    container = AsyncAssistant()

    @container.thread_started
    async def on_started(payload: dict[str, Any]) -> None:
        baton.background.spawn(assistant.started(baton, payload), name="assistant-started")

    @container.thread_context_changed
    async def on_context_changed(payload: dict[str, Any]) -> None:
        baton.background.spawn(assistant.context_changed(baton, payload), name="assistant-context")

    baton.app.assistant(container)

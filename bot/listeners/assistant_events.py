"""The assistant container's own events, through Bolt's `Assistant` middleware.

`assistant_thread_started` and `assistant_thread_context_changed` are acked at once; the
welcome, the prompts and the context's channel name come after, in `Background`. A person's
message in the thread is a DM like any other (`events.py`), so the middleware passes it on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant

from bot import assistant_container

if TYPE_CHECKING:
    from bot.parts import Baton


def register(baton: Baton) -> None:
    container = AsyncAssistant()

    @container.thread_started
    async def on_started(payload: dict[str, Any], body: dict[str, Any]) -> None:
        baton.background.spawn(
            assistant_container.started(baton, payload, team_id=_team(body)),
            name="assistant-started",
        )

    @container.thread_context_changed
    async def on_context_changed(payload: dict[str, Any], body: dict[str, Any]) -> None:
        baton.background.spawn(
            assistant_container.context_changed(baton, payload, team_id=_team(body)),
            name="assistant-context",
        )

    baton.app.assistant(container)


def _team(body: dict[str, Any]) -> str | None:
    """The workspace the event came from: its names and calls use that workspace's token."""
    return str(body.get("team_id") or "") or None

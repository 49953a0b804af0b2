"""The assistant container's own events, through Bolt's `Assistant` middleware.

`assistant_thread_started` and `assistant_thread_context_changed` are acked at once; the
welcome, the prompts and the context's channel name come after, in `Background`. A person's
message in the thread is a DM like any other (`events.py`), so the middleware passes it on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.payload_utils import (
    is_assistant_event,
    is_other_message_sub_event_in_assistant_thread,
)
from slack_bolt.response import BoltResponse

from bot import assistant_container

if TYPE_CHECKING:
    from bot.parts import Baton


class ContainerEvents(AsyncAssistant):
    """Bolt's Assistant middleware, passed by at once for a request that cannot be one of
    its events (a slash command, a mention, a click).

    The middleware sees every request and tries each of its listeners' matchers on it, and
    each matcher builds the arguments a listener could ask for: about a third of the CPU a
    mention's ack took before this, for requests it never takes.
    """

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        # Bolt's own tests for what the middleware takes: its listeners' events, and the
        # other message events in an assistant thread, which it acks.
        if not (
            is_assistant_event(req.body) or is_other_message_sub_event_in_assistant_thread(req.body)
        ):
            return await next()
        result: BoltResponse | None = await super().async_process(req=req, resp=resp, next=next)
        return result


def register(baton: Baton) -> None:
    container = ContainerEvents()

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

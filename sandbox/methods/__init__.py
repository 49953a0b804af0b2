"""Slack Web API methods, answered from a `Workspace` the way Slack answers them."""

from __future__ import annotations

from sandbox.methods import assistant, chat, conversations, streams, views
from sandbox.methods._args import Handler
from sandbox.workspace import JSON, SlackError, Workspace

METHODS: dict[str, Handler] = {
    **conversations.METHODS,
    **chat.METHODS,
    **assistant.METHODS,
    **streams.METHODS,
    **views.METHODS,
}


def call(ws: Workspace, name: str, args: JSON) -> JSON:
    """Answer one Web API call, or raise the `SlackError` Slack would answer with."""
    handler = METHODS.get(name)
    if handler is None:
        raise SlackError("unknown_method")
    ws.expire_streams()
    return handler(ws, args)

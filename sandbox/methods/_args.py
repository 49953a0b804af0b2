"""Reading a method's arguments the way Slack does, and the checks every message goes through."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sandbox.slack_limits import BLOCK_TEXT_LIMIT, TEXT_LIMIT, block_problems, block_text_length
from sandbox.workspace import JSON, Channel, Message, SlackError, Workspace

Handler = Callable[[Workspace, JSON], JSON]
T = TypeVar("T")


def required(args: JSON, name: str) -> str:
    """A required argument, or Slack's `invalid_arguments`."""
    value = args.get(name)
    if value is None or value == "":
        raise SlackError("invalid_arguments", [f"missing required field: {name}"])
    return str(value)


def optional(args: JSON, name: str) -> str | None:
    """An optional argument; an empty string counts as absent."""
    value = args.get(name)
    return None if value is None or value == "" else str(value)


def list_arg(args: JSON, name: str, error: str) -> list[Any] | None:
    """An array argument (already decoded from JSON text), or Slack error `error`."""
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        # A string here is JSON the stand-in could not decode.
        raise SlackError(error, [f"{name} must be an array [json-pointer:/{name}]"])
    return value


def content(args: JSON) -> tuple[str, list[JSON], list[JSON]]:
    """The text, blocks and attachments of a message, checked against Slack's limits."""
    text = str(args.get("text") or args.get("markdown_text") or "")
    blocks = list_arg(args, "blocks", "invalid_blocks_format") or []
    attachments = list_arg(args, "attachments", "invalid_attachments") or []
    if not (text or blocks or attachments):
        raise SlackError("no_text")
    problems = block_problems(blocks)
    if problems:
        raise SlackError("invalid_blocks", problems)
    if len(text) > TEXT_LIMIT or block_text_length(blocks) > BLOCK_TEXT_LIMIT:
        raise SlackError("msg_too_long")
    return text, blocks, attachments


def postable(ws: Workspace, args: JSON) -> Channel:
    """The channel named by `channel`, if the bot may post there."""
    channel = ws.channel(args.get("channel"))
    if not channel.bot_is_member:
        raise SlackError("not_in_channel")
    return channel


def bot_message(ws: Workspace, channel: Channel, **fields: Any) -> Message:
    """A new message from the bot, with a fresh ts."""
    return Message(
        channel=channel.id,
        ts=ws.next_ts(),
        user=ws.bot.id,
        bot_id=ws.bot.bot_id,
        app_id=ws.app_id,
        **fields,
    )


def page(items: Sequence[T], args: JSON, *, default_limit: int) -> tuple[list[T], JSON]:
    """One page of `items` by `limit` and `cursor`, and the paging fields of the answer."""
    start = 0
    cursor = optional(args, "cursor")
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
        except (ValueError, binascii.Error) as e:
            raise SlackError("invalid_cursor") from e
    try:
        limit = int(args.get("limit") or default_limit)
    except ValueError as e:
        raise SlackError("invalid_limit") from e
    limit = max(1, min(limit, 999))
    chosen = list(items[start : start + limit])
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return chosen, {"has_more": more, "response_metadata": {"next_cursor": next_cursor}}


def in_window(messages: list[Message], args: JSON) -> list[Message]:
    """The messages between `oldest` and `latest` (bounds included with `inclusive`)."""
    inclusive = str(args.get("inclusive", "")) in ("1", "true", "True")
    latest = float(args.get("latest") or "inf")
    oldest = float(args.get("oldest") or 0)

    def keep(m: Message) -> bool:
        ts = float(m.ts)
        return oldest <= ts <= latest if inclusive else oldest < ts < latest

    return [m for m in messages if keep(m)]

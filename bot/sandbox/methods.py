"""Slack Web API methods, answered from a `Workspace` the way Slack answers them."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bot.sandbox.limits import (
    BLOCK_TEXT_LIMIT,
    STREAM_APPEND_LIMIT,
    TEXT_LIMIT,
    block_problems,
    block_text_length,
    view_problems,
)
from bot.sandbox.workspace import JSON, Channel, Edited, Message, SlackError, View, Workspace

Handler = Callable[[Workspace, JSON], JSON]
T = TypeVar("T")

METHODS: dict[str, Handler] = {}
TASK_STATUSES = ("pending", "in_progress", "complete", "error")
CHUNK_TYPES = ("markdown_text", "plan_update", "task_update", "blocks")
MAX_VIEW_STACK = 3


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a function as the answer to Web API method `name`."""

    def register(handler: Handler) -> Handler:
        METHODS[name] = handler
        return handler

    return register


def call(ws: Workspace, name: str, args: JSON) -> JSON:
    """Answer one Web API call, or raise the `SlackError` Slack would answer with."""
    handler = METHODS.get(name)
    if handler is None:
        raise SlackError("unknown_method")
    ws.expire_streams()
    return handler(ws, args)


# arguments


def _required(args: JSON, name: str) -> str:
    value = args.get(name)
    if value is None or value == "":
        raise SlackError("invalid_arguments", [f"missing required field: {name}"])
    return str(value)


def _optional(args: JSON, name: str) -> str | None:
    value = args.get(name)
    return None if value is None or value == "" else str(value)


def _list(args: JSON, name: str, error: str) -> list[Any] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        # A string here is JSON the stand-in could not decode.
        raise SlackError(error, [f"{name} must be an array [json-pointer:/{name}]"])
    return value


def _content(args: JSON, *, required: bool = True) -> tuple[str, list[JSON], list[JSON]]:
    """The text, blocks and attachments of a message, checked against Slack's limits."""
    text = str(args.get("text") or args.get("markdown_text") or "")
    blocks = _list(args, "blocks", "invalid_blocks_format") or []
    attachments = _list(args, "attachments", "invalid_attachments") or []
    if required and not (text or blocks or attachments):
        raise SlackError("no_text")
    problems = block_problems(blocks)
    if problems:
        raise SlackError("invalid_blocks", problems)
    if len(text) > TEXT_LIMIT or block_text_length(blocks) > BLOCK_TEXT_LIMIT:
        raise SlackError("msg_too_long")
    return text, blocks, attachments


def _postable(ws: Workspace, args: JSON) -> Channel:
    channel = ws.channel(args.get("channel"))
    if not channel.bot_is_member:
        raise SlackError("not_in_channel")
    return channel


def _page(items: Sequence[T], args: JSON, *, default_limit: int) -> tuple[list[T], JSON]:
    """One page of `items` by `limit` and `cursor`, and the paging fields of the answer."""
    start = 0
    cursor = _optional(args, "cursor")
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
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return page, {"has_more": more, "response_metadata": {"next_cursor": next_cursor}}


def _in_window(messages: list[Message], args: JSON) -> list[Message]:
    inclusive = str(args.get("inclusive", "")) in ("1", "true", "True")
    latest = float(args.get("latest") or "inf")
    oldest = float(args.get("oldest") or 0)

    def keep(m: Message) -> bool:
        ts = float(m.ts)
        if inclusive:
            return oldest <= ts <= latest
        return oldest < ts < latest

    return [m for m in messages if keep(m)]


# auth, users, conversations


@method("auth.test")
def auth_test(ws: Workspace, args: JSON) -> JSON:
    """Who the token belongs to."""
    return {
        "ok": True,
        "url": ws.base_url,
        "team": ws.team_name,
        "user": ws.bot.name,
        "team_id": ws.team_id,
        "user_id": ws.bot.id,
        "bot_id": ws.bot.bot_id,
        "is_enterprise_install": False,
    }


@method("users.info")
def users_info(ws: Workspace, args: JSON) -> JSON:
    """A person's profile, time zone included."""
    return {"ok": True, "user": ws.user(args.get("user")).to_slack(ws.team_id)}


@method("conversations.info")
def conversations_info(ws: Workspace, args: JSON) -> JSON:
    """A channel's description."""
    return {"ok": True, "channel": ws.channel(args.get("channel")).to_slack()}


@method("conversations.history")
def conversations_history(ws: Workspace, args: JSON) -> JSON:
    """Top-level messages, newest first."""
    channel = ws.channel(args.get("channel"))
    top = [m for m in ws.all_messages(channel.id) if not m.is_reply and m.ephemeral_for is None]
    newest_first = list(reversed(_in_window(top, args)))
    page, paging = _page(newest_first, args, default_limit=100)
    return {"ok": True, "messages": [ws.render(m) for m in page], "pin_count": 0, **paging}


@method("conversations.replies")
def conversations_replies(ws: Workspace, args: JSON) -> JSON:
    """A thread: its parent, then the replies oldest first."""
    channel = ws.channel(args.get("channel"))
    root = ws.thread_root(channel.id, _required(args, "ts")) or ""
    thread = ws.replies(channel.id, root)
    try:
        thread.insert(0, ws.message(channel.id, root))
    except SlackError:
        if not thread:
            raise SlackError("thread_not_found") from None
    page, paging = _page(_in_window(thread, args), args, default_limit=1000)
    return {"ok": True, "messages": [ws.render(m) for m in page], **paging}


# chat


def _bot_message(ws: Workspace, channel: Channel, **fields: Any) -> Message:
    return Message(
        channel=channel.id,
        ts=ws.next_ts(),
        user=ws.bot.id,
        bot_id=ws.bot.bot_id,
        app_id=ws.app_id,
        **fields,
    )


@method("chat.postMessage")
def chat_post_message(ws: Workspace, args: JSON) -> JSON:
    """Post a message or a thread reply (`reply_broadcast` is ignored)."""
    channel = _postable(ws, args)
    text, blocks, attachments = _content(args)
    thread_ts = ws.thread_root(channel.id, args.get("thread_ts"))
    metadata = args.get("metadata") if isinstance(args.get("metadata"), dict) else None
    message = ws.add_message(
        _bot_message(
            ws,
            channel,
            text=text,
            blocks=blocks,
            attachments=attachments,
            thread_ts=thread_ts,
            metadata=metadata,
        )
    )
    return {"ok": True, "channel": channel.id, "ts": message.ts, "message": ws.render(message)}


@method("chat.postEphemeral")
def chat_post_ephemeral(ws: Workspace, args: JSON) -> JSON:
    """Show a message to one person only; it never appears in history."""
    channel = _postable(ws, args)
    user = ws.user(_required(args, "user"))
    if channel.is_im and channel.user != user.id:
        raise SlackError("user_not_in_channel")
    text, blocks, attachments = _content(args)
    message = ws.add_message(
        _bot_message(
            ws,
            channel,
            text=text,
            blocks=blocks,
            attachments=attachments,
            thread_ts=ws.thread_root(channel.id, args.get("thread_ts")),
            ephemeral_for=user.id,
        )
    )
    return {"ok": True, "message_ts": message.ts}


@method("chat.update")
def chat_update(ws: Workspace, args: JSON) -> JSON:
    """Edit a message in place; blocks left out are kept, as Slack keeps them."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, _required(args, "ts"))
    if message.user != ws.bot.id:
        raise SlackError("cant_update_message")
    if message.streaming:
        raise SlackError("streaming_state_conflict")
    text, blocks, attachments = _content(args)
    if args.get("text") is not None or args.get("markdown_text") is not None:
        message.text = text
    if args.get("blocks") is not None:
        message.blocks = blocks
    if args.get("attachments") is not None:
        message.attachments = attachments
    message.edited = Edited(user=ws.bot.id, ts=ws.next_ts())
    ws.emit("message_updated", message)
    rendered = ws.render(message)
    return {
        "ok": True,
        "channel": channel.id,
        "ts": message.ts,
        "text": message.text,
        "message": rendered,
    }


@method("chat.delete")
def chat_delete(ws: Workspace, args: JSON) -> JSON:
    """Delete one of the bot's messages."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, _required(args, "ts"))
    if message.user != ws.bot.id:
        raise SlackError("cant_delete_message")
    ws.remove_message(message)
    return {"ok": True, "channel": channel.id, "ts": message.ts}


@method("chat.getPermalink")
def chat_get_permalink(ws: Workspace, args: JSON) -> JSON:
    """A link to a message, under the stand-in's own URL."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, _required(args, "message_ts"))
    link = f"{ws.base_url}archives/{channel.id}/p{message.ts.replace('.', '')}"
    if message.is_reply:
        link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
    return {"ok": True, "channel": channel.id, "permalink": link}


@method("reactions.add")
def reactions_add(ws: Workspace, args: JSON) -> JSON:
    """Add the bot's emoji reaction to a message."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, _required(args, "timestamp"))
    name = _required(args, "name").strip(":")
    users = message.reactions.setdefault(name, [])
    if ws.bot.id in users:
        raise SlackError("already_reacted")
    users.append(ws.bot.id)
    ws.emit("reaction_added", message)
    return {"ok": True}


@method("assistant.threads.setStatus")
def assistant_threads_set_status(ws: Workspace, args: JSON) -> JSON:
    """Show (or, with an empty status, clear) "is thinking…" under a thread."""
    channel = ws.channel(args.get("channel_id"))
    thread_ts = _required(args, "thread_ts")
    if "status" not in args:
        raise SlackError("invalid_arguments", ["missing required field: status"])
    status = str(args["status"] or "")
    if status:
        ws.statuses[(channel.id, thread_ts)] = status
    else:
        ws.statuses.pop((channel.id, thread_ts), None)
    ws.emit_change(
        {"type": "status_set", "channel": channel.id, "thread_ts": thread_ts, "status": status}
    )
    return {"ok": True}


# streaming


def _stream_chunks(args: JSON) -> list[JSON]:
    """The chunks of a stream call (a bare `markdown_text` first), checked before any is applied."""
    chunks: list[JSON] = []
    if args.get("markdown_text"):
        chunks.append({"type": "markdown_text", "text": str(args["markdown_text"])})
    chunks += _list(args, "chunks", "invalid_arguments") or []
    markdown = 0
    for i, chunk in enumerate(chunks):
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind not in CHUNK_TYPES:
            raise SlackError(
                "invalid_arguments", [f"unknown chunk type [json-pointer:/chunks/{i}]"]
            )
        if kind == "markdown_text":
            markdown += len(str(chunk.get("text", "")))
        elif kind == "task_update":
            if not chunk.get("id"):
                raise SlackError(
                    "invalid_arguments", [f"missing required field: id [json-pointer:/chunks/{i}]"]
                )
            if chunk.get("status", "pending") not in TASK_STATUSES:
                raise SlackError(
                    "invalid_arguments", [f"invalid status [json-pointer:/chunks/{i}/status]"]
                )
        elif kind == "blocks":
            problems = block_problems(chunk.get("blocks"))
            if problems:
                raise SlackError("invalid_blocks", problems)
    if markdown > STREAM_APPEND_LIMIT:
        raise SlackError("msg_too_long")
    return chunks


def _apply_chunks(message: Message, chunks: list[JSON]) -> None:
    for chunk in chunks:
        kind = chunk["type"]
        if kind == "markdown_text":
            message.text += str(chunk.get("text", ""))
        elif kind == "plan_update":
            message.plan_title = str(chunk.get("title", ""))
        elif kind == "task_update":
            # Later updates of a task replace only the fields they carry.
            task = message.tasks.setdefault(str(chunk["id"]), {})
            task.update({k: v for k, v in chunk.items() if k != "type" and v is not None})
        elif kind == "blocks":
            message.blocks += chunk["blocks"]
    message.chunks += chunks
    message.stream_active_at = time.monotonic()


def _live_stream(ws: Workspace, args: JSON) -> tuple[Channel, Message]:
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, _required(args, "ts"))
    if not message.streaming:
        raise SlackError("message_not_in_streaming_state")
    return channel, message


@method("chat.startStream")
def chat_start_stream(ws: Workspace, args: JSON) -> JSON:
    """Open a streamed reply in a thread."""
    channel = _postable(ws, args)
    thread_ts = ws.thread_root(channel.id, _required(args, "thread_ts"))
    if not channel.is_im:
        # Outside a DM Slack must know whose screen the stream renders on.
        _required(args, "recipient_user_id")
        _required(args, "recipient_team_id")
    chunks = _stream_chunks(args)
    message = _bot_message(
        ws,
        channel,
        thread_ts=thread_ts,
        streaming=True,
        task_display_mode=_optional(args, "task_display_mode"),
    )
    _apply_chunks(message, chunks)
    ws.add_message(message)
    return {"ok": True, "channel": channel.id, "ts": message.ts}


@method("chat.appendStream")
def chat_append_stream(ws: Workspace, args: JSON) -> JSON:
    """Add text, plan and task updates to a stream that is still open."""
    channel, message = _live_stream(ws, args)
    _apply_chunks(message, _stream_chunks(args))
    ws.emit("message_streamed", message)
    return {"ok": True, "channel": channel.id, "ts": message.ts}


@method("chat.stopStream")
def chat_stop_stream(ws: Workspace, args: JSON) -> JSON:
    """Finish a stream; its message becomes an ordinary one."""
    channel, message = _live_stream(ws, args)
    chunks = _stream_chunks(args)
    blocks = _list(args, "blocks", "invalid_blocks_format") or []
    problems = block_problems(blocks)
    if problems:
        raise SlackError("invalid_blocks", problems)
    _apply_chunks(message, chunks)
    message.blocks += blocks
    if isinstance(args.get("metadata"), dict):
        message.metadata = args["metadata"]
    message.streaming = False
    ws.emit("stream_stopped", message)
    return {"ok": True, "channel": channel.id, "ts": message.ts, "message": ws.render(message)}


# views


def _checked_view(args: JSON) -> JSON:
    view = args.get("view")
    problems = view_problems(view)
    if problems:
        raise SlackError("invalid_arguments", problems)
    assert isinstance(view, dict)
    return view


def _trigger_user(ws: Workspace, args: JSON) -> str:
    trigger = _optional(args, "trigger_id") or _optional(args, "interactivity_pointer")
    if trigger is None:
        raise SlackError("invalid_arguments", ["missing required field: trigger_id"])
    return ws.trigger_user(trigger)


def _new_view(
    ws: Workspace, user: str, body: JSON, *, root: str | None, previous: str | None
) -> View:
    view_id = ws.next_id("V")
    view = View(
        id=view_id,
        user=user,
        body=body,
        hash=f"{int(time.time())}.{secrets.token_hex(4)}",
        root_view_id=root or view_id,
        previous_view_id=previous,
    )
    ws.views[view_id] = view
    return view


@method("views.open")
def views_open(ws: Workspace, args: JSON) -> JSON:
    """Open a modal for the person whose click made the trigger id."""
    body = _checked_view(args)
    user = _trigger_user(ws, args)
    for old in ws.view_stacks.pop(user, []):
        ws.views.pop(old, None)
    view = _new_view(ws, user, body, root=None, previous=None)
    ws.view_stacks[user] = [view.id]
    rendered = ws.render_view(view)
    ws.emit_change({"type": "view_opened", "user": user, "view": rendered})
    return {"ok": True, "view": rendered}


@method("views.push")
def views_push(ws: Workspace, args: JSON) -> JSON:
    """Stack a modal on top of the one already open."""
    body = _checked_view(args)
    user = _trigger_user(ws, args)
    stack = ws.view_stacks.setdefault(user, [])
    if len(stack) >= MAX_VIEW_STACK:
        raise SlackError("push_limit_reached")
    view = _new_view(
        ws, user, body, root=stack[0] if stack else None, previous=stack[-1] if stack else None
    )
    stack.append(view.id)
    rendered = ws.render_view(view)
    ws.emit_change({"type": "view_pushed", "user": user, "view": rendered})
    return {"ok": True, "view": rendered}


@method("views.update")
def views_update(ws: Workspace, args: JSON) -> JSON:
    """Replace an open modal's contents, by `view_id` or `external_id`."""
    body = _checked_view(args)
    view_id, external_id = _optional(args, "view_id"), _optional(args, "external_id")
    if view_id is None and external_id is None:
        raise SlackError("invalid_arguments", ["missing required field: view_id"])
    view = next(
        (
            v
            for v in ws.views.values()
            if v.id == view_id or (external_id and v.body.get("external_id") == external_id)
        ),
        None,
    )
    if view is None:
        raise SlackError("not_found")
    if _optional(args, "hash") not in (None, view.hash):
        raise SlackError("hash_conflict")
    view.body = body
    view.hash = f"{int(time.time())}.{secrets.token_hex(4)}"
    rendered = ws.render_view(view)
    ws.emit_change({"type": "view_updated", "user": view.user, "view": rendered})
    return {"ok": True, "view": rendered}

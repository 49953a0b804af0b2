"""Streamed replies (`chat.startStream` / `appendStream` / `stopStream`) and their chunks."""

from __future__ import annotations

import time

from sandbox.methods._args import (
    Handler,
    bot_message,
    list_arg,
    optional,
    postable,
    required,
)
from sandbox.slack_limits import STREAM_APPEND_LIMIT, block_problems
from sandbox.workspace import JSON, Channel, Message, SlackError, Workspace

TASK_STATUSES = ("pending", "in_progress", "complete", "error")
CHUNK_TYPES = ("markdown_text", "plan_update", "task_update", "blocks")


def _chunk_error(i: int, problem: str) -> SlackError:
    return SlackError("invalid_arguments", [f"{problem} [json-pointer:/chunks/{i}]"])


def checked_chunks(args: JSON) -> list[JSON]:
    """The chunks of a stream call (a bare `markdown_text` first), all checked before any is applied."""
    chunks: list[JSON] = []
    if args.get("markdown_text"):
        chunks.append({"type": "markdown_text", "text": str(args["markdown_text"])})
    chunks += list_arg(args, "chunks", "invalid_arguments") or []
    markdown = 0
    for i, chunk in enumerate(chunks):
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind not in CHUNK_TYPES:
            raise _chunk_error(i, "unknown chunk type")
        if kind == "markdown_text":
            markdown += len(str(chunk.get("text", "")))
        elif kind == "task_update":
            if not chunk.get("id"):
                raise _chunk_error(i, "missing required field: id")
            if chunk.get("status", "pending") not in TASK_STATUSES:
                raise _chunk_error(i, f"status must be one of {', '.join(TASK_STATUSES)}")
        elif kind == "blocks" and (problems := block_problems(chunk.get("blocks"))):
            raise SlackError("invalid_blocks", problems)
    if markdown > STREAM_APPEND_LIMIT:
        raise SlackError("msg_too_long")
    return chunks


def apply_chunks(message: Message, chunks: list[JSON]) -> None:
    """Fold chunks into the message: text grows, the plan retitles, tasks merge by id."""
    for chunk in chunks:
        kind = chunk["type"]
        if kind == "markdown_text":
            message.text += str(chunk.get("text", ""))
        elif kind == "plan_update":
            message.plan_title = str(chunk.get("title", ""))
        elif kind == "task_update":
            # A later update of a task replaces only the fields it carries.
            task = message.tasks.setdefault(str(chunk["id"]), {})
            task.update({k: v for k, v in chunk.items() if k != "type" and v is not None})
        elif kind == "blocks":
            message.blocks += chunk["blocks"]
    message.chunks += chunks
    message.stream_active_at = time.monotonic()


def _live_stream(ws: Workspace, args: JSON) -> tuple[Channel, Message]:
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, required(args, "ts"))
    if not message.streaming:
        raise SlackError("message_not_in_streaming_state")
    return channel, message


def start_stream(ws: Workspace, args: JSON) -> JSON:
    """Open a streamed reply in a thread."""
    channel = postable(ws, args)
    thread_ts = ws.thread_root(channel.id, required(args, "thread_ts"))
    if not channel.is_im:
        # Outside a DM Slack must know whose screen the stream renders on.
        required(args, "recipient_user_id")
        required(args, "recipient_team_id")
    chunks = checked_chunks(args)
    message = bot_message(
        ws,
        channel,
        thread_ts=thread_ts,
        streaming=True,
        task_display_mode=optional(args, "task_display_mode"),
    )
    apply_chunks(message, chunks)
    ws.add_message(message)
    return {"ok": True, "channel": channel.id, "ts": message.ts}


def append_stream(ws: Workspace, args: JSON) -> JSON:
    """Add text, plan and task updates to a stream that is still open."""
    channel, message = _live_stream(ws, args)
    apply_chunks(message, checked_chunks(args))
    ws.emit("message_streamed", message)
    return {"ok": True, "channel": channel.id, "ts": message.ts}


def stop_stream(ws: Workspace, args: JSON) -> JSON:
    """Finish a stream; its message becomes an ordinary one."""
    channel, message = _live_stream(ws, args)
    chunks = checked_chunks(args)
    blocks = list_arg(args, "blocks", "invalid_blocks_format") or []
    if problems := block_problems(blocks):
        raise SlackError("invalid_blocks", problems)
    apply_chunks(message, chunks)
    message.blocks += blocks
    if isinstance(args.get("metadata"), dict):
        message.metadata = args["metadata"]
    message.streaming = False
    ws.emit("stream_stopped", message)
    return {"ok": True, "channel": channel.id, "ts": message.ts, "message": ws.render(message)}


METHODS: dict[str, Handler] = {
    "chat.startStream": start_stream,
    "chat.appendStream": append_stream,
    "chat.stopStream": stop_stream,
}

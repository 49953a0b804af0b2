"""Posting and changing messages (`chat.*`), permalinks and reactions."""

from __future__ import annotations

from typing import Any

from sandbox.methods._args import Handler, bot_message, content, postable, required
from sandbox.workspace import JSON, Channel, Edited, Message, SlackError, Workspace


def post_message(ws: Workspace, args: JSON) -> JSON:
    """Post a message or a thread reply (`reply_broadcast` is ignored)."""
    channel = postable(ws, args)
    metadata = args.get("metadata")
    message = _add_bot_message(
        ws, channel, args, metadata=metadata if isinstance(metadata, dict) else None
    )
    return {"ok": True, "channel": channel.id, "ts": message.ts, "message": ws.render(message)}


def post_ephemeral(ws: Workspace, args: JSON) -> JSON:
    """Show a message to one person only; it never appears in history."""
    channel = postable(ws, args)
    user = ws.user(required(args, "user"))
    if channel.is_im and channel.user != user.id:
        raise SlackError("user_not_in_channel")
    message = _add_bot_message(ws, channel, args, ephemeral_for=user.id)
    return {"ok": True, "message_ts": message.ts}


def _add_bot_message(ws: Workspace, channel: Channel, args: JSON, **fields: Any) -> Message:
    """The bot's message with the call's content, in the thread the call names."""
    text, blocks, attachments = content(args)
    return ws.add_message(
        bot_message(
            ws,
            channel,
            text=text,
            blocks=blocks,
            attachments=attachments,
            thread_ts=ws.thread_root(channel.id, args.get("thread_ts")),
            **fields,
        )
    )


def update(ws: Workspace, args: JSON) -> JSON:
    """Edit a message in place; blocks left out are kept, as Slack keeps them."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, required(args, "ts"))
    if message.user != ws.bot.id:
        raise SlackError("cant_update_message")
    if message.streaming:
        raise SlackError("streaming_state_conflict")
    text, blocks, attachments = content(args)
    if args.get("text") is not None or args.get("markdown_text") is not None:
        message.text = text
    if args.get("blocks") is not None:
        message.blocks = blocks
        # A streamed message's plan and tasks are part of its content: new blocks replace them.
        message.tasks, message.plan_title, message.task_display_mode = {}, None, None
        message.chunks = []
    if args.get("attachments") is not None:
        message.attachments = attachments
    if isinstance(args.get("metadata"), dict):
        message.metadata = args["metadata"]
    message.edited = Edited(user=ws.bot.id, ts=ws.next_ts())
    ws.emit("message_updated", message)
    return {
        "ok": True,
        "channel": channel.id,
        "ts": message.ts,
        "text": message.text,
        "message": ws.render(message),
    }


def delete(ws: Workspace, args: JSON) -> JSON:
    """Delete one of the bot's messages."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, required(args, "ts"))
    if message.user != ws.bot.id:
        raise SlackError("cant_delete_message")
    ws.remove_message(message)
    return {"ok": True, "channel": channel.id, "ts": message.ts}


def get_permalink(ws: Workspace, args: JSON) -> JSON:
    """A link to a message, under the stand-in's own URL."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, required(args, "message_ts"))
    link = f"{ws.web_url or ws.base_url}archives/{channel.id}/p{message.ts.replace('.', '')}"
    if message.is_reply:
        link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
    return {"ok": True, "channel": channel.id, "permalink": link}


def add_reaction(ws: Workspace, args: JSON) -> JSON:
    """Add the bot's emoji reaction to a message."""
    channel = ws.channel(args.get("channel"))
    message = ws.message(channel.id, required(args, "timestamp"))
    users = message.reactions.setdefault(required(args, "name").strip(":"), [])
    if ws.bot.id in users:
        raise SlackError("already_reacted")
    users.append(ws.bot.id)
    ws.emit("reaction_added", message)
    return {"ok": True}


METHODS: dict[str, Handler] = {
    "chat.postMessage": post_message,
    "chat.postEphemeral": post_ephemeral,
    "chat.update": update,
    "chat.delete": delete,
    "chat.getPermalink": get_permalink,
    "reactions.add": add_reaction,
}

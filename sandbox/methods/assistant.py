"""The assistant container's methods: `assistant.threads.setStatus`, `setSuggestedPrompts`, `setTitle`."""

from __future__ import annotations

from typing import Any

from sandbox.methods._args import Handler, list_arg, optional, required
from sandbox.workspace import JSON, SlackError, Workspace

MAX_PROMPTS = 4
MAX_LOADING_MESSAGES = 10


def _invalid(problem: str, pointer: str) -> SlackError:
    return SlackError("invalid_arguments", [f"{problem} [json-pointer:{pointer}]"])


def _text(value: Any, pointer: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("must be a non-empty string", pointer)
    return value


def set_status(ws: Workspace, args: JSON) -> JSON:
    """Show (or, with an empty status, clear) "is thinking…" under a thread."""
    channel = ws.channel(args.get("channel_id"))
    thread_ts = required(args, "thread_ts")
    if "status" not in args:
        raise SlackError("invalid_arguments", ["missing required field: status"])
    loading = list_arg(args, "loading_messages", "invalid_arguments") or []
    if len(loading) > MAX_LOADING_MESSAGES:
        raise _invalid(f"must contain at most {MAX_LOADING_MESSAGES} items", "/loading_messages")
    messages = [_text(m, f"/loading_messages/{i}") for i, m in enumerate(loading)]
    root = ws.thread_root(channel.id, thread_ts) or thread_ts
    ws.set_status(channel.id, root, str(args["status"] or ""), messages)
    return {"ok": True}


def set_suggested_prompts(ws: Workspace, args: JSON) -> JSON:
    """Offer up to four prompts (`{title, message}`) in an assistant thread."""
    channel = ws.channel(args.get("channel_id"))
    prompts = list_arg(args, "prompts", "invalid_arguments")
    if not prompts:
        raise SlackError("invalid_arguments", ["missing required field: prompts"])
    if len(prompts) > MAX_PROMPTS:
        raise _invalid(f"must contain at most {MAX_PROMPTS} items", "/prompts")
    checked = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, dict):
            raise _invalid("must be an object", f"/prompts/{i}")
        checked.append(
            {
                "title": _text(prompt.get("title"), f"/prompts/{i}/title"),
                "message": _text(prompt.get("message"), f"/prompts/{i}/message"),
            }
        )
    thread_ts = optional(args, "thread_ts")
    if thread_ts is None:
        # Without a thread, Slack sets them on the channel's latest assistant thread.
        mine = [t for t in ws.assistant_threads.values() if t.channel == channel.id]
        if not mine:
            raise SlackError("invalid_thread_ts")
        thread = max(mine, key=lambda t: float(t.thread_ts))
    else:
        thread = ws.assistant_thread(channel.id, thread_ts)
    thread.prompts = checked
    thread.prompts_title = optional(args, "title") or ""
    thread.prompts_at = ws.next_ts()
    ws.thread_changed(thread)
    return {"ok": True}


def set_title(ws: Workspace, args: JSON) -> JSON:
    """Name an assistant thread (what its History entry shows)."""
    channel = ws.channel(args.get("channel_id"))
    thread = ws.assistant_thread(channel.id, required(args, "thread_ts"))
    thread.title = required(args, "title")
    ws.thread_changed(thread)
    ws.emit("message_updated", ws.message(channel.id, thread.thread_ts))
    return {"ok": True}


METHODS: dict[str, Handler] = {
    "assistant.threads.setStatus": set_status,
    "assistant.threads.setSuggestedPrompts": set_suggested_prompts,
    "assistant.threads.setTitle": set_title,
}

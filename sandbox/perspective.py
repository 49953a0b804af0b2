"""What one person sees of the workspace. Pure.

Everyone sees the channels; only you see your DM with Baton, the ephemeral messages meant
for you, your open modals and your Home tab.
"""

from __future__ import annotations

import json

from sandbox.web_api import Call
from sandbox.workspace import JSON, Change, Workspace


def sees_channel(ws: Workspace, channel_id: str, user: str) -> bool:
    channel = ws.channels.get(channel_id)
    return channel is not None and (not channel.is_im or channel.user == user)


def sees_message(ws: Workspace, message: JSON, user: str) -> bool:
    return message.get("ephemeral_for") in (None, user) and sees_channel(
        ws, str(message.get("channel")), user
    )


def sees_change(ws: Workspace, change: Change, user: str) -> bool:
    """Whether `change` belongs on `user`'s screen."""
    if "message" in change:
        return sees_message(ws, change["message"], user)
    if "user" in change:
        return change["user"] == user
    if "channel" in change:
        return sees_channel(ws, change["channel"], user)
    return True


# Characters of a call's arguments or answer the log keeps (a long answer is cut, and says so).
BODY_LIMIT = 4_000


def _shown(body: JSON) -> str:
    text = json.dumps(body, indent=2, ensure_ascii=False)
    if len(text) <= BODY_LIMIT:
        return text
    return text[:BODY_LIMIT] + f"\n… ({len(text) - BODY_LIMIT} more characters)"


def call_summary(call: Call) -> JSON:
    """A recorded Web API call for the page's log: what was sent and Slack's reply body."""
    summary: JSON = {
        "method": call.method,
        "status": call.status,
        "ok": bool(call.response.get("ok")),
        "error": call.response.get("error"),
        "at": call.at,
        "args": _shown(call.args),
        "response": _shown(call.response),
    }
    for key in ("channel", "ts", "thread_ts", "user"):
        if isinstance(call.args.get(key), str):
            summary[key] = call.args[key]
    return summary


def state_for(
    ws: Workspace, snapshot: JSON, user: str, *, seq: int, calls: list[Call], info: JSON
) -> JSON:
    """The page's whole state for `user`, from the stand-in's `snapshot()`."""
    channels = [c for c in snapshot["channels"] if sees_channel(ws, str(c["id"]), user)]
    visible = {str(c["id"]) for c in channels}
    return {
        "seq": seq,
        "me": user,
        "team": snapshot["team"],
        "bot": snapshot["bot"],
        "users": snapshot["users"],
        "channels": channels,
        "messages": {
            channel: [m for m in messages if sees_message(ws, m, user)]
            for channel, messages in snapshot["messages"].items()
            if channel in visible
        },
        "views": snapshot["views"].get(user, []),
        "home": ws.home_views.get(user),
        "statuses": [s for s in snapshot["statuses"] if s["channel"] in visible],
        "assistant_threads": [t for t in snapshot["assistant_threads"] if t["user"] == user],
        "calls": [call_summary(c) for c in calls[-200:]],
        "info": info,
    }

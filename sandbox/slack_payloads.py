"""The events and interaction payloads Slack sends an app, built from the workspace. Pure.

Field for field what Slack's Events API and interactivity send (compare the samples in
Slack's docs and Bolt's tests): a message event for a mention or a DM, `app_home_opened`,
`assistant_thread_started` and `assistant_thread_context_changed` for the assistant
container, `block_actions` for a click (a button, or one of a pair of `feedback_buttons`),
`view_submission` and `view_closed` for a modal.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from sandbox.workspace import JSON, AssistantThread, Message, View, Workspace

Feedback = Literal["positive", "negative"]

TOKEN = "verification-token"


def person(ws: Workspace, user_id: str) -> JSON:
    """The `user` object of an interaction payload."""
    user = ws.user(user_id)
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": ws.team_id}


def team(ws: Workspace) -> JSON:
    return {"id": ws.team_id, "domain": ws.team_name.lower().replace(" ", "-")}


def message_event(ws: Workspace, message: Message, *, kind: str) -> JSON:
    """The `event` of an `app_mention` (kind `app_mention`) or `message.im` (kind `message`)."""
    channel = ws.channel(message.channel)
    event: JSON = {
        "type": kind,
        "user": message.user,
        "text": message.text,
        "ts": message.ts,
        "team": ws.team_id,
        "channel": channel.id,
        "event_ts": message.ts,
    }
    if message.blocks:
        event["blocks"] = message.blocks
    if message.is_reply:
        event["thread_ts"] = message.thread_ts
        parent = next((m for m in ws.all_messages(channel.id) if m.ts == message.thread_ts), None)
        if parent is not None:
            event["parent_user_id"] = parent.user
    if kind == "message":
        event["channel_type"] = (
            "im" if channel.is_im else "group" if channel.is_private else "channel"
        )
    return event


def home_opened_event(ws: Workspace, user_id: str) -> JSON:
    """`app_home_opened`: a person opened Baton's Home tab."""
    return {
        "type": "app_home_opened",
        "user": user_id,
        "channel": ws.channel(user_id).id,
        "tab": "home",
        "event_ts": ws.next_ts(),
    }


def assistant_thread_event(
    ws: Workspace,
    thread: AssistantThread,
    *,
    kind: Literal["assistant_thread_started", "assistant_thread_context_changed"],
) -> JSON:
    """A person opened the assistant container, or moved to another channel while it is open."""
    context: JSON = {"team_id": ws.team_id}
    if thread.context_channel:
        context["channel_id"] = thread.context_channel
    return {
        "type": kind,
        "assistant_thread": {
            "user_id": thread.user,
            "context": context,
            "channel_id": thread.channel,
            "thread_ts": thread.thread_ts,
        },
        "event_ts": ws.next_ts(),
    }


def block_id(block: JSON, index: int) -> str:
    """A block's id; Slack gives blocks sent without one a short id of its own (the page agrees)."""
    given = block.get("block_id")
    return str(given) if given else f"b{index}"


def find_element(blocks: list[JSON], action_id: str, index: int | None) -> tuple[str, JSON]:
    """The interactive element `action_id` (in the block at `index`, if given) and its block's id."""
    for i, block in enumerate(blocks):
        if index is not None and i != index:
            continue
        bid = block_id(block, i)
        candidates = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return bid, element
    raise LookupError(f"no element with action_id {action_id!r}")


def action(element: JSON, bid: str, *, feedback: Feedback | None = None) -> JSON:
    """One entry of a payload's `actions`, as Slack reports a button press.

    For `feedback_buttons` it is the pressed one of the pair (`feedback`) whose text and value
    are sent.
    """
    kind = element.get("type", "button")
    out: JSON = {
        "action_id": element.get("action_id"),
        "block_id": bid,
        "text": element.get("text"),
        "type": kind,
        "action_ts": f"{time.time():.6f}",
    }
    if kind == "feedback_buttons":
        if feedback is None:
            raise LookupError("say which feedback button was pressed: positive or negative")
        pressed = element.get(f"{feedback}_button") or {}
        out.update(text=pressed.get("text"), value=pressed.get("value"))
        return out
    for key in ("value", "style", "url"):
        if key in element:
            out[key] = element[key]
    return out


def message_click(
    ws: Workspace,
    message: Message,
    *,
    user_id: str,
    action_id: str,
    block_index: int | None,
    trigger_id: str,
    response_url: str,
    feedback: Feedback | None = None,
) -> JSON:
    """`block_actions` for a button in a message (an ephemeral one carries no `message`)."""
    bid, element = find_element(message.blocks, action_id, block_index)
    channel = ws.channel(message.channel)
    container: JSON = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": channel.id,
        "is_ephemeral": message.ephemeral_for is not None,
    }
    if message.is_reply:
        container["thread_ts"] = message.thread_ts
    payload: JSON = {
        "type": "block_actions",
        "user": person(ws, user_id),
        "api_app_id": ws.app_id,
        "token": TOKEN,
        "container": container,
        "trigger_id": trigger_id,
        "team": team(ws),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel.id, "name": "directmessage" if channel.is_im else channel.name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action(element, bid, feedback=feedback)],
    }
    if message.ephemeral_for is None:
        payload["message"] = ws.render(message)
    return payload


def home_click(
    ws: Workspace, *, user_id: str, action_id: str, block_index: int | None, trigger_id: str
) -> JSON:
    """`block_actions` for a button on the person's App Home tab (as Baton last published it)."""
    view = ws.home_views.get(user_id)
    if view is None:
        raise LookupError(f"no Home tab published for {user_id}")
    bid, element = find_element(list(view.get("blocks") or []), action_id, block_index)
    view_id = f"VHOME{user_id}"
    return {
        "type": "block_actions",
        "user": person(ws, user_id),
        "api_app_id": ws.app_id,
        "token": TOKEN,
        "container": {"type": "view", "view_id": view_id},
        "trigger_id": trigger_id,
        "team": team(ws),
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {**view, "id": view_id, "state": {"values": {}}},
        "actions": [action(element, bid)],
    }


def view_with_state(ws: Workspace, view: View, values: dict[str, Any]) -> JSON:
    """The view as an interaction payload carries it: what is typed so far in `state`."""
    return {**ws.render_view(view), "state": {"values": values}}


def view_click(
    ws: Workspace,
    view: View,
    *,
    user_id: str,
    action_id: str,
    block_index: int | None,
    values: dict[str, Any],
    trigger_id: str,
) -> JSON:
    """`block_actions` for a button inside a modal."""
    bid, element = find_element(list(view.body.get("blocks") or []), action_id, block_index)
    return {
        "type": "block_actions",
        "user": person(ws, user_id),
        "api_app_id": ws.app_id,
        "token": TOKEN,
        "container": {"type": "view", "view_id": view.id},
        "trigger_id": trigger_id,
        "team": team(ws),
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view_with_state(ws, view, values),
        "actions": [action(element, bid)],
    }


def view_submission(
    ws: Workspace, view: View, *, user_id: str, values: dict[str, Any], trigger_id: str
) -> JSON:
    """`view_submission`: the person pressed the modal's submit button."""
    return {
        "type": "view_submission",
        "team": team(ws),
        "user": person(ws, user_id),
        "api_app_id": ws.app_id,
        "token": TOKEN,
        "trigger_id": trigger_id,
        "view": view_with_state(ws, view, values),
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_closed(ws: Workspace, view: View, *, user_id: str, values: dict[str, Any]) -> JSON:
    """`view_closed`: the person cancelled a modal that asked to be told (`notify_on_close`)."""
    return {
        "type": "view_closed",
        "team": team(ws),
        "user": person(ws, user_id),
        "api_app_id": ws.app_id,
        "token": TOKEN,
        "view": view_with_state(ws, view, values),
        "is_cleared": False,
        "is_enterprise_install": False,
        "enterprise": None,
    }

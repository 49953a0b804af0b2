"""Modals (`views.open` / `push` / `update`), kept per person like Slack keeps them."""

from __future__ import annotations

import secrets
import time

from sandbox.methods._args import Handler, optional
from sandbox.slack_limits import view_problems
from sandbox.workspace import JSON, SlackError, View, Workspace

MAX_VIEW_STACK = 3


def _checked_view(args: JSON) -> JSON:
    view = args.get("view")
    if problems := view_problems(view):
        raise SlackError("invalid_arguments", problems)
    assert isinstance(view, dict)  # view_problems rejects anything else
    return view


def _trigger_user(ws: Workspace, args: JSON) -> str:
    trigger = optional(args, "trigger_id") or optional(args, "interactivity_pointer")
    if trigger is None:
        raise SlackError("invalid_arguments", ["missing required field: trigger_id"])
    return ws.trigger_user(trigger)


def _new_hash() -> str:
    return f"{int(time.time())}.{secrets.token_hex(4)}"


def _new_view(
    ws: Workspace, user: str, body: JSON, *, root: str | None, previous: str | None
) -> View:
    view_id = ws.next_id("V")
    view = View(
        id=view_id,
        user=user,
        body=body,
        hash=_new_hash(),
        root_view_id=root or view_id,
        previous_view_id=previous,
    )
    ws.views[view_id] = view
    return view


def open_view(ws: Workspace, args: JSON) -> JSON:
    """Open a modal for the person whose click made the trigger id, replacing any open ones."""
    body = _checked_view(args)
    user = _trigger_user(ws, args)
    for old in ws.view_stacks.pop(user, []):
        ws.views.pop(old, None)
    view = _new_view(ws, user, body, root=None, previous=None)
    ws.view_stacks[user] = [view.id]
    rendered = ws.render_view(view)
    ws.emit_change({"type": "view_opened", "user": user, "view": rendered})
    return {"ok": True, "view": rendered}


def push_view(ws: Workspace, args: JSON) -> JSON:
    """Stack a modal on top of the one already open."""
    body = _checked_view(args)
    user = _trigger_user(ws, args)
    stack = ws.view_stacks.setdefault(user, [])
    if len(stack) >= MAX_VIEW_STACK:
        raise SlackError("push_limit_reached")
    root, previous = (stack[0], stack[-1]) if stack else (None, None)
    view = _new_view(ws, user, body, root=root, previous=previous)
    stack.append(view.id)
    rendered = ws.render_view(view)
    ws.emit_change({"type": "view_pushed", "user": user, "view": rendered})
    return {"ok": True, "view": rendered}


def update_view(ws: Workspace, args: JSON) -> JSON:
    """Replace an open modal's contents, by `view_id` or `external_id`."""
    body = _checked_view(args)
    view_id, external_id = optional(args, "view_id"), optional(args, "external_id")
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
    # Slack's guard against two updates racing: a stale hash is refused.
    if optional(args, "hash") not in (None, view.hash):
        raise SlackError("hash_conflict")
    view.body = body
    view.hash = _new_hash()
    rendered = ws.render_view(view)
    ws.emit_change({"type": "view_updated", "user": view.user, "view": rendered})
    return {"ok": True, "view": rendered}


def publish_view(ws: Workspace, args: JSON) -> JSON:
    """Set a person's App Home tab."""
    user = ws.user(optional(args, "user_id")).id
    view = args.get("view")
    if not isinstance(view, dict) or view.get("type") != "home":
        raise SlackError("invalid_arguments", ["view must be a home view"])
    ws.home_views[user] = view
    ws.emit_change({"type": "home_published", "user": user, "view": view})
    return {"ok": True, "view": {"id": ws.next_id("V"), **view}}


METHODS: dict[str, Handler] = {
    "views.publish": publish_view,
    "views.open": open_view,
    "views.push": push_view,
    "views.update": update_view,
}

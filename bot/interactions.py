"""What a click or form submission says: pure readers of Slack's interaction payloads."""

from __future__ import annotations

from typing import Any

from bot import approval_blocks as ui


def where(body: dict[str, Any]) -> tuple[str, str]:
    """The channel a click came from, and who clicked."""
    channel = str(
        (body.get("channel") or {}).get("id")
        or (body.get("container") or {}).get("channel_id")
        or ""
    )
    return channel, str((body.get("user") or {}).get("id") or "")


def team_of(body: dict[str, Any]) -> str | None:
    """The workspace a request came from (events and commands say it at the top, clicks
    and forms under `team` or the person)."""
    team = (
        body.get("team_id")
        or (body.get("team") or {}).get("id")
        or (body.get("user") or {}).get("team_id")
    )
    return str(team) if team else None


def clicked_thread(body: dict[str, Any]) -> str | None:
    """The thread the clicked message is in, as the click says (None at a channel's root)."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    return str(container.get("thread_ts") or message.get("thread_ts") or "") or None


def first_action(body: dict[str, Any]) -> dict[str, Any]:
    """The clicked element (empty when the payload has none)."""
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return actions[0]
    return {}


def reason_of(view: dict[str, Any]) -> str:
    """What the person typed in the reject-with-reason form."""
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(ui.REASON_BLOCK) or {}).get(ui.REASON_INPUT) or {}
    return str(field.get("value") or "").strip()

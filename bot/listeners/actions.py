"""Button clicks and modal submissions: approval decisions, the reason form, Stop.

Each is stored (bot/clicks.py) and acked before anything else; the reason form is the one
exception that talks to Slack right after the ack — Slack accepts `views.open` only within
3 s of the click.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import approval_blocks as ui
from bot.approvals import tell
from bot.blocks import STOP
from bot.clicks import Click, first_action, reason_of, take, team_of, where
from bot.slack_ops import slack_error

if TYPE_CHECKING:
    from bot.app import Baton

log = logging.getLogger(__name__)


def register(baton: Baton) -> None:
    app = baton.app

    @app.action(ui.APPROVE)
    async def on_approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.APPROVE, body)

    @app.action(ui.REJECT)
    async def on_reject(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.REJECT, body)

    @app.action(STOP)
    async def on_stop(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.STOP, body)

    @app.action(ui.REJECT_WITH_REASON)
    async def on_reject_with_reason(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        baton.background.spawn(_open_reason_form(baton, body), name="reason-form")

    @app.view(ui.REASON_CALLBACK)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        if not reason_of(view):
            await ack(
                response_action="errors",
                errors={ui.REASON_BLOCK: "Say why, so the requester knows what to change."},
            )
            return
        await take(baton, ack, Click.REASON, body)


async def _open_reason_form(baton: Baton, body: dict[str, Any]) -> None:
    value = str(first_action(body).get("value") or "")
    try:
        await baton.client_for(team_of(body)).views_open(
            trigger_id=str(body.get("trigger_id")), view=ui.reason_modal(value)
        )
    except SlackApiError as e:
        channel, user = where(body)
        if channel and user:
            await tell(
                baton,
                channel=channel,
                user=user,
                text=f"I couldn't open the reason form ({slack_error(e)}); use Reject instead.",
                team_id=team_of(body),
            )

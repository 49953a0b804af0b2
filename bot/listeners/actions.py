"""Button clicks and modal submissions: approval decisions, the reason form, Stop.

Each is stored (bot/clicks.py) and acked before anything else; the reason and edit forms are
the exception that talks to Slack right after the ack — Slack accepts `views.open` only within
3 s of the click — and they open only for someone who may decide.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError

from bot import approval_blocks as ui
from bot.approval_clicks import check_clicker, tell, thread_of
from bot.approval_edits import fields, problems
from bot.blocks import FEEDBACK, STOP
from bot.clicks import Click, take
from bot.home_blocks import HOME_PREFIX
from bot.interactions import clicked_thread, first_action, reason_of, team_of, where
from bot.slack_ops import slack_error
from storage import approvals
from storage.models import ApprovalStatus

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)


def register(baton: Baton) -> None:
    app = baton.app

    @app.action(ui.APPROVE)
    async def on_approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.APPROVE, body)

    @app.action(ui.APPROVE_FOR_RUN)
    async def on_approve_for_run(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.APPROVE_RUN, body)

    @app.action(ui.EDIT)
    async def on_edit(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        baton.background.spawn(_open_form(baton, body, edit=True), name="edit-form")

    @app.view(ui.EDIT_CALLBACK)
    async def on_edit_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        errors = problems(baton, view)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await take(baton, ack, Click.EDIT, body)

    @app.action(ui.REJECT)
    async def on_reject(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.REJECT, body)

    @app.action(STOP)
    async def on_stop(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.STOP, body)

    @app.action(FEEDBACK)
    async def on_feedback(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.FEEDBACK, body)

    @app.action(re.compile(f"^{HOME_PREFIX}"))
    async def on_home_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.HOME, body)

    @app.action(ui.REJECT_WITH_REASON)
    async def on_reject_with_reason(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        baton.background.spawn(_open_form(baton, body, edit=False), name="reason-form")

    @app.view(ui.REASON_CALLBACK)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        if not reason_of(view):
            await ack(
                response_action="errors",
                errors={ui.REASON_BLOCK: "Say why, so the requester knows what to change."},
            )
            return
        await take(baton, ack, Click.REASON, body)


async def _open_form(baton: Baton, body: dict[str, Any], *, edit: bool) -> None:
    """Open the reason form or the edit form — only for someone who may decide. Anyone else
    gets a note in the thread where they clicked, and no form."""
    approval_id = str(first_action(body).get("value") or "")
    channel, user = where(body)
    refusal = await check_clicker(
        baton,
        approval_id=approval_id,
        user_id=user,
        message_ts=(body.get("container") or {}).get("message_ts"),
        channel_id=channel or None,
        approve=edit,
    )
    approval = await approvals.get(baton.db, approval_id) if refusal is None else None
    if approval is not None and approval.status != ApprovalStatus.PENDING:
        refusal = ui.decided_text(approval)
    elif approval is not None and edit and not fields(baton, approval):
        refusal = "This call can't be edited before approving it; use Approve or Reject."
    if refusal is not None or approval is None:
        if channel and user:
            await tell(
                baton,
                channel=channel,
                user=user,
                text=refusal or "I don't know that approval, so nothing was changed.",
                team_id=team_of(body),
                thread_ts=clicked_thread(body) or await thread_of(baton, approval_id, channel),
            )
        return
    if edit:
        view = ui.edit_modal(approval, fields(baton, approval))
    else:
        view = ui.reason_modal(approval_id)
    try:
        await baton.client_for(team_of(body)).views_open(
            trigger_id=str(body.get("trigger_id")), view=view
        )
    except SlackApiError as e:
        if channel and user:
            instead = "use Approve instead" if edit else "use Reject instead"
            await tell(
                baton,
                channel=channel,
                user=user,
                text=f"I couldn't open the form ({slack_error(e)}); {instead}.",
                team_id=team_of(body),
                thread_ts=clicked_thread(body) or await thread_of(baton, approval_id, channel),
            )

"""Button clicks and form submissions: stored before the ack, handled after it.

The listener stores the click in the inbox (one bounded write), acks, and hands it to
`handle`. A click whose process died after the ack is handled by the next sweep; a replayed
click (same trigger id) is dropped.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.approval_clicks import decide, tell, thread_of
from bot.approval_edits import edited_args, form_of
from bot.digest_posts import on_button
from bot.feedback_buttons import on_feedback
from bot.home_tab import on_home_button
from bot.intake import IntakeFailed, record_click, stored
from bot.interactions import clicked_thread, first_action, reason_of, team_of, where
from bot.stop import stop_from_button
from storage import approvals, inbox
from storage.models import Approval, InboxItem

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

NOT_RECORDED = (
    "I couldn't record that click (my database is not answering), so nothing changed. "
    "Please click again in a minute."
)


class Click(StrEnum):
    APPROVE = "approve"
    APPROVE_RUN = "approve_run"  # approved for the rest of the run
    EDIT = "edit"  # the edit & approve form, submitted
    REJECT = "reject"
    REASON = "reason"  # the reject-with-reason form, submitted
    STOP = "stop"
    DIGEST = "digest"  # a digest's Acknowledge / Snooze / Investigate
    FEEDBACK = "feedback"  # 👍 / 👎 under an answer
    HOME = "home"  # a button on the App Home tab


async def take(baton: Baton, ack: AsyncAck, kind: Click, body: dict[str, Any]) -> None:
    """Store the click, ack it, and handle it in the background."""
    try:
        pending = await record_click(baton, key=_key(kind, body), kind=kind.value, body=body)
    except IntakeFailed as e:
        log.warning("a %s click was not recorded: %s", kind.value, e)
        await ack()
        channel, user = where(body)
        if channel and user:
            baton.background.spawn(
                tell(baton, channel=channel, user=user, text=NOT_RECORDED, team_id=team_of(body))
            )
        return
    await ack()

    async def when_stored() -> None:
        item = await stored(pending, f"a {kind.value} click")
        if item is not None:  # None: a replay, or it could not be stored after all
            await handle(baton, item)

    baton.background.spawn(when_stored(), name=f"click-{kind.value}")


def _key(kind: Click, body: dict[str, Any]) -> str:
    trigger = str(body.get("trigger_id") or "")
    if trigger:
        return f"{kind.value}:{trigger}"
    action = (body.get("actions") or [{}])[0] if isinstance(body.get("actions"), list) else {}
    user = where(body)[1]
    return f"{kind.value}:{user}:{action.get('action_ts') or (body.get('view') or {}).get('id')}"


async def handle(baton: Baton, item: InboxItem) -> None:
    """Handle a stored click once (whichever process gets to it first)."""
    assert item.id is not None
    # Held like a run's lease: if this process dies, another takes the click over as soon.
    if not await inbox.claim(baton.db, item.id, seconds=baton.orchestrator.limits.lease_seconds):
        return
    try:
        await _handle(baton, Click(item.kind), item.body or {})
    except Exception:
        log.exception("click %s (%s) failed", item.id, item.kind)
    await inbox.done(baton.db, item.id)


async def handle_left_over(baton: Baton) -> datetime | None:
    """The sweep: clicks acked by a process that stopped before handling them. Returns when
    a click being handled elsewhere would be free to take over."""
    for item in await inbox.left_over(baton.db):
        await handle(baton, item)
    return await inbox.next_claim_end(baton.db)


async def _handle(baton: Baton, kind: Click, body: dict[str, Any]) -> None:
    channel, user = where(body)
    match kind:
        case Click.APPROVE | Click.APPROVE_RUN | Click.REJECT:
            approval_id = str(first_action(body).get("value") or "")
            refusal = await decide(
                baton,
                approval_id=approval_id,
                user_id=user,
                approve=kind != Click.REJECT,
                for_run=kind == Click.APPROVE_RUN,
                message_ts=(body.get("container") or {}).get("message_ts"),
                channel_id=channel or None,
            )
            if refusal is not None and channel:
                await tell(
                    baton,
                    channel=channel,
                    user=user,
                    text=refusal,
                    team_id=team_of(body),
                    thread_ts=clicked_thread(body) or await thread_of(baton, approval_id, channel),
                )
        case Click.EDIT:
            view = body.get("view") or {}
            approval_id, _ = form_of(view)
            approval = await approvals.get(baton.db, approval_id)
            args = (
                edited_args(baton, approval.tool_name or "", view) if approval is not None else None
            )
            refusal = await decide(
                baton,
                approval_id=approval_id,
                user_id=user,
                approve=True,
                edited_args=args if args != (approval.tool_args if approval else None) else None,
                from_form=True,
            )
            await _tell_form_refusal(baton, body, user, approval, refusal)
        case Click.REASON:
            view = body.get("view") or {}
            approval_id = str(view.get("private_metadata") or "")
            refusal = await decide(
                baton,
                approval_id=approval_id,
                user_id=user,
                approve=False,
                reason=reason_of(view),
                from_form=True,
            )
            approval = await approvals.get(baton.db, approval_id) if refusal else None
            await _tell_form_refusal(baton, body, user, approval, refusal)
        case Click.STOP:
            await stop_from_button(baton, body)
        case Click.DIGEST:
            reply = await on_button(baton, str(first_action(body).get("action_id") or ""), body)
            if reply is not None and channel and user:
                await tell(baton, channel=channel, user=user, text=reply, team_id=team_of(body))
        case Click.FEEDBACK:
            await on_feedback(baton, body)
        case Click.HOME:
            await on_home_button(baton, body)


async def _tell_form_refusal(
    baton: Baton, body: dict[str, Any], user: str, approval: Approval | None, refusal: str | None
) -> None:
    """Why a decision sent from an approval's form did not count, to the one who sent it."""
    if refusal is None or approval is None or not approval.channel_id:
        return
    await tell(
        baton,
        channel=approval.channel_id,
        user=user,
        text=refusal,
        team_id=team_of(body),
        thread_ts=await thread_of(baton, approval.id, approval.channel_id),
    )

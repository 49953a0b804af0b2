"""Approval gates in Slack: check who clicks, record one decision, show it, resume the run.

The decision itself is one conditional UPDATE in `storage.approvals`, written with its
message edit in the outbox; everything here runs after Slack's ack. A click may reach any
process — the run resumes from the database.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot import approval_blocks as ui
from bot.approval_dms import people, send_copies
from bot.permissions import may_decide
from bot.slack_ops import slack_error
from bot.work import hand_over_later
from storage import approvals, runs
from storage.models import Approval, ApprovalStatus

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

APPROVAL_ID = re.compile(r"^ap_[A-Za-z0-9_-]{16}$")


async def check_clicker(
    baton: Baton,
    *,
    approval_id: str,
    user_id: str,
    message_ts: str | None,
    channel_id: str | None = None,
    approve: bool = True,
) -> str | None:
    """Why this click cannot decide this approval, or None when it may."""
    if not APPROVAL_ID.match(approval_id):
        return "That button's value is not valid, so nothing was changed."
    approval = await approvals.get(baton.db, approval_id)
    if approval is None:
        return (
            "I don't know that approval (it may belong to another Baton), so nothing was changed."
        )
    if not _on_its_message(approval, message_ts, channel_id):
        return "That button does not belong to this approval message, so nothing was changed."
    if not await may_decide(baton, approval, user_id):
        return f"You cannot approve or reject this: {ui.who(approval.approvers)} can. Nothing was changed."
    if approve and not approval.self_approval and user_id == approval.requested_by:
        others = [a for a in approval.approvers if a != user_id]
        return (
            "You asked for this, so someone else must approve it: "
            f"{ui.who(others)} can. Nothing was changed."
        )
    return None


def _on_its_message(approval: Approval, message_ts: str | None, channel_id: str | None) -> bool:
    """A click carries the message it came from: the request in the thread, or one of its
    direct-message copies. A button copied elsewhere does not match."""
    if message_ts is None:
        return False
    for channel, ts in approval.copies or []:
        if ts == message_ts and channel_id in (None, channel):
            return True
    if approval.message_ts is not None and message_ts != approval.message_ts:
        return False
    return channel_id is None or approval.channel_id in (None, channel_id)


async def decide(
    baton: Baton,
    *,
    approval_id: str,
    user_id: str,
    approve: bool,
    reason: str | None = None,
    message_ts: str | None = None,
    channel_id: str | None = None,
    from_form: bool = False,
    for_run: bool = False,
    edited_args: dict[str, Any] | None = None,
) -> str | None:
    """Record a click. Returns a sentence for the clicker when nothing changed (or their
    approval counted towards a quorum not yet reached), else None.

    A form submission (`from_form`) has no message of its own: the form was opened from the
    approval's own button, which was checked then.
    """
    if from_form:
        approval = await approvals.get(baton.db, approval_id)
        message_ts = approval.message_ts if approval is not None else None
        channel_id = None
    refusal = await check_clicker(
        baton,
        approval_id=approval_id,
        user_id=user_id,
        message_ts=message_ts,
        channel_id=channel_id,
        approve=approve,
    )
    if refusal is not None:
        return refusal
    result = await approvals.decide(
        baton.db,
        approval_id,
        approve=approve,
        by=user_id,
        reason=reason,
        for_run=for_run,
        edited_args=edited_args,
    )
    if result is None:
        return "I don't know that approval, so nothing was changed."
    if result.repeated:
        return "Your approval was already counted; it needs someone else's too."
    if result.counted:
        await baton.deliverer.deliver_edits(result.approval.run_id)
        votes = await approvals.votes(baton.db, approval_id)
        return (
            f"Your approval is counted ({len(votes)} of {result.approval.quorum}); "
            "it needs more people before anything happens."
        )
    if not result.won:
        if (
            result.approval.status == ApprovalStatus.PENDING
            and result.approval.expires_at <= baton.db.clock()
        ):
            await expire_and_resume(baton)
            fresh = await approvals.get(baton.db, approval_id)
            return ui.decided_text(fresh or result.approval)
        return ui.decided_text(result.approval)
    run_id = result.approval.run_id
    await baton.deliverer.deliver_run(run_id)
    await baton.deliverer.deliver_edits(run_id)
    hand_over_later(baton, run_id, name=f"resume-{run_id}")
    return None


async def tell(
    baton: Baton,
    *,
    channel: str,
    user: str,
    text: str,
    thread_ts: str | None = None,
    team_id: str | None = None,
) -> None:
    """An ephemeral note to the one person who clicked (in the thread they clicked in, in
    `team_id`'s workspace)."""
    try:
        await baton.client_for(team_id).chat_postEphemeral(
            channel=channel, user=user, text=text, thread_ts=thread_ts
        )
    except SlackApiError as e:
        log.warning("could not tell %s: %s", user, slack_error(e))


async def thread_of(baton: Baton, approval_id: str, channel: str) -> str | None:
    """The thread an approval's message is in, when it is in `channel` (not a DM copy)."""
    if not APPROVAL_ID.match(approval_id):
        return None
    approval = await approvals.get(baton.db, approval_id)
    if approval is None or approval.channel_id != channel:
        return None
    run = await runs.get_run(baton.db, approval.run_id)
    return run.thread_ts if run is not None else None


async def escalate_and_tell(baton: Baton) -> int:
    """Escalate approvals whose time has come (by the process's clock): the thread says so
    from the outbox, and the second group gets the request by direct message."""
    escalated = await approvals.escalate_due(baton.db)
    for a in escalated:
        await baton.deliverer.deliver_run(a.run_id)
        await baton.deliverer.deliver_edits(a.run_id)
        fresh = await approvals.get(baton.db, a.id)
        if fresh is not None:
            await send_copies(
                baton, fresh, await people(baton, a.escalate_to, team_id=fresh.team_id)
            )
    return len(escalated)


async def expire_and_resume(baton: Baton) -> int:
    """Expire approvals past their time (the thread is told, from the outbox) and resume
    their runs."""
    expired = await approvals.expire_due(baton.db)
    for run_id in dict.fromkeys(a.run_id for a in expired):
        await baton.deliverer.deliver_run(run_id)
        hand_over_later(baton, run_id, name=f"expire-{run_id}")
    return len(expired)

"""Approval gates in Slack: post the request, check who clicks, record one decision, resume.

The decision itself is one conditional UPDATE in `storage.approvals`; everything here is
about showing it. A click may reach any process — the run resumes from the database.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot import approval_blocks as ui
from bot.slack_ops import post_text, slack_error
from storage import approvals, runs
from storage.db import utcnow
from storage.models import Approval, ApprovalStatus

if TYPE_CHECKING:
    from bot.app import Baton

log = logging.getLogger(__name__)

APPROVAL_ID = re.compile(r"^ap_[A-Za-z0-9_-]{16}$")


async def post_approval_request(baton: Baton, approval_id: str) -> None:
    """Post the approval message with its buttons in the run's thread."""
    approval = await approvals.get(baton.db, approval_id)
    if approval is None:
        return
    run = await runs.get_run(baton.db, approval.run_id)
    if run is None or not run.channel_id:
        return
    task = await runs.get_task(baton.db, run.id, approval.task_id)
    blocks = ui.request_blocks(approval, run, task)
    ts = await post_text(
        baton.client,
        channel=run.channel_id,
        thread_ts=run.thread_ts,
        text=f"Approval needed: {ui.KIND_TITLE.get(approval.kind, approval.kind)} (run {run.id})",
        blocks=blocks,
    )
    if ts is not None:
        await approvals.set_message(baton.db, approval.id, channel_id=run.channel_id, message_ts=ts)


async def may_decide(baton: Baton, approval: Approval, user_id: str) -> bool:
    """Listed approvers, members of listed user groups; with none listed, nobody."""
    if user_id in approval.approvers:
        return True
    for group in (g for g in approval.approvers if g.startswith("S")):
        try:
            resp = await baton.client.usergroups_users_list(usergroup=group)
        except SlackApiError as e:
            log.warning("could not read user group %s: %s", group, slack_error(e))
            continue
        if user_id in (resp.get("users") or []):
            return True
    return False


async def check_clicker(
    baton: Baton, *, approval_id: str, user_id: str, message_ts: str | None
) -> str | None:
    """Why this click cannot decide this approval, or None when it may."""
    if not APPROVAL_ID.match(approval_id):
        return "That button's value is not valid, so nothing was changed."
    approval = await approvals.get(baton.db, approval_id)
    if approval is None:
        return (
            "I don't know that approval (it may belong to another Baton), so nothing was changed."
        )
    if (
        message_ts is not None
        and approval.message_ts is not None
        and message_ts != approval.message_ts
    ):
        return "That button does not belong to this approval message, so nothing was changed."
    if not await may_decide(baton, approval, user_id):
        return f"You cannot approve or reject this: {ui.who(approval.approvers)} can. Nothing was changed."
    return None


async def decide(
    baton: Baton,
    *,
    approval_id: str,
    user_id: str,
    approve: bool,
    reason: str | None = None,
    message_ts: str | None = None,
) -> str | None:
    """Record a click. Returns a sentence for the clicker when nothing changed, else None."""
    refusal = await check_clicker(
        baton, approval_id=approval_id, user_id=user_id, message_ts=message_ts
    )
    if refusal is not None:
        return refusal
    result = await approvals.decide(
        baton.db, approval_id, approve=approve, by=user_id, reason=reason
    )
    if result is None:
        return "I don't know that approval, so nothing was changed."
    if not result.won:
        if (
            result.approval.status == ApprovalStatus.PENDING
            and result.approval.expires_at <= utcnow()
        ):
            await expire_and_resume(baton)
            fresh = await approvals.get(baton.db, approval_id)
            return ui.decided_text(fresh or result.approval)
        return ui.decided_text(result.approval)
    await show_decision(baton, result.approval)
    baton.background.spawn(
        baton.orchestrator.execute(result.approval.run_id), name=f"resume-{result.approval.run_id}"
    )
    return None


async def show_decision(baton: Baton, approval: Approval) -> None:
    """Replace the approval message: who decided and when, no buttons."""
    if not (approval.channel_id and approval.message_ts):
        return
    run = await runs.get_run(baton.db, approval.run_id)
    if run is None:
        return
    task = await runs.get_task(baton.db, run.id, approval.task_id)
    try:
        await baton.client.chat_update(
            channel=approval.channel_id,
            ts=approval.message_ts,
            text=ui.decided_text(approval),
            blocks=ui.decided_blocks(approval, run, task),
        )
    except SlackApiError as e:
        log.warning("could not update approval message %s: %s", approval.id, slack_error(e))


async def tell(baton: Baton, *, channel: str, user: str, text: str) -> None:
    """An ephemeral note to the one person who clicked."""
    try:
        await baton.client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as e:
        log.warning("could not tell %s: %s", user, slack_error(e))


async def expire_and_resume(baton: Baton) -> int:
    """Expire approvals past their time, say so in their threads, and resume their runs."""
    expired = await approvals.expire_due(baton.db)
    for stale in expired:
        approval = await approvals.get(baton.db, stale.id)
        if approval is None:
            continue
        await show_decision(baton, approval)
        run = await runs.get_run(baton.db, approval.run_id)
        if run is not None and run.channel_id:
            await post_text(
                baton.client,
                channel=run.channel_id,
                thread_ts=run.thread_ts,
                text=f"⌛ The approval for task `{approval.task_id}` expired without a decision, so it counts as rejected.",
            )
        baton.background.spawn(
            baton.orchestrator.execute(approval.run_id), name=f"expire-{approval.run_id}"
        )
    return len(expired)

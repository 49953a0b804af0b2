"""Approval requests by direct message: to approvers who are not in the run's channel, and
to the group a waiting approval is escalated to.

Each copy is an outbox row (`conversations.open` gives its channel first), so it is posted
once; its buttons decide the same approval, and decisions update it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.approval_blocks import not_posted_text
from bot.slack_ops import post_text, slack_error
from storage import approvals, outbox, run_states, runs
from storage.models import Approval, ApprovalStatus, DeliveryPurpose, EventKind

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)


async def people(baton: Baton, ids: Iterable[str], *, team_id: str | None = None) -> list[str]:
    """User ids, with user groups (S…) replaced by their members (in `team_id`'s workspace)."""
    found: list[str] = []
    for i in ids:
        if not i.startswith("S"):
            found.append(i)
            continue
        try:
            resp = await baton.client_for(team_id).usergroups_users_list(usergroup=i)
        except SlackApiError as e:
            log.warning("could not read user group %s: %s", i, slack_error(e))
            continue
        found += [str(u) for u in resp.get("users") or []]
    return list(dict.fromkeys(found))


async def channel_members(
    baton: Baton, channel: str, *, team_id: str | None = None
) -> set[str] | None:
    """Who is in `channel` of `team_id`'s workspace (None when Slack would not say)."""
    members: set[str] = set()
    cursor: str | None = None
    try:
        while True:
            resp = await baton.client_for(team_id).conversations_members(
                channel=channel, limit=1000, cursor=cursor
            )
            members.update(str(m) for m in resp.get("members") or [])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return members
    except SlackApiError as e:
        log.warning("could not list the members of %s: %s", channel, slack_error(e))
        return None


async def send_copies(baton: Baton, approval: Approval, users: Iterable[str]) -> list[str]:
    """Queue a direct-message copy of the request for each of `users`; those newly queued."""
    queued: list[str] = []
    for user in users:
        try:
            resp = await baton.client_for(approval.team_id).conversations_open(users=user)
        except SlackApiError as e:
            log.warning("could not open a DM with %s: %s", user, slack_error(e))
            continue
        channel = str((resp.get("channel") or {}).get("id") or "")
        if not channel:
            continue
        ref = f"{approval.id}:dm:{user}"
        row = outbox.new(
            approval.run_id, DeliveryPurpose.APPROVAL, ref=ref, data={"channel": channel}
        )
        if await outbox.add_once(baton.db, row):
            queued.append(user)
    if queued:
        refs = [f"{approval.id}:dm:{user}" for user in queued]
        await baton.deliverer.deliver_copies(approval.run_id, refs)
    return queued


async def send_to_absent_approvers(baton: Baton, approval_id: str) -> None:
    """Approvers who are not in the run's channel get the request and its buttons by DM."""
    approval = await approvals.get(baton.db, approval_id)
    if approval is None or approval.status != ApprovalStatus.PENDING or not approval.channel_id:
        return
    wanted = await people(baton, approval.approvers, team_id=approval.team_id)
    if not wanted:
        return
    members = await channel_members(baton, approval.channel_id, team_id=approval.team_id)
    if members is None:
        return
    await send_copies(baton, approval, [u for u in wanted if u not in members])


async def request_not_posted(baton: Baton, approval_id: str, error: str) -> None:
    """Slack refused the request in the run's thread for good (`error`): everyone who may
    decide gets it by direct message, and the requester is told in one, so the run never
    waits at a gate nobody can see."""
    approval = await approvals.get(baton.db, approval_id)
    if approval is None or approval.status != ApprovalStatus.PENDING:
        return
    deciders = await people(baton, approval.approvers, team_id=approval.team_id)
    sent_to = await send_copies(baton, approval, deciders)
    await run_states.note(
        baton.db,
        approval.run_id,
        EventKind.APPROVAL_NOT_POSTED,
        task_id=approval.task_id,
        data={"approval_id": approval.id, "error": error, "sent_to": sent_to},
    )
    requester = approval.requested_by
    if not requester:
        run = await runs.get_run(baton.db, approval.run_id)
        requester = run.user_id if run is not None else None
    if not requester:
        log.warning(
            "approval %s: not posted (%s), and the run has no requester", approval.id, error
        )
        return
    try:
        resp = await baton.client_for(approval.team_id).conversations_open(users=requester)
    except SlackApiError as e:
        log.warning("approval %s: could not tell %s: %s", approval.id, requester, slack_error(e))
        return
    channel = str((resp.get("channel") or {}).get("id") or "")
    if channel:
        await post_text(
            baton.client_for(approval.team_id),
            channel=channel,
            thread_ts=None,
            text=not_posted_text(approval, error, sent_to=sent_to),
        )

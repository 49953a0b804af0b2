"""Who may see and do what: runs follow their Slack channel, schedules their owners.

Every check here that asks Slack (user groups, channel members) runs after the ack.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.slack_ops import slack_error
from storage import approvals
from storage.models import Approval, Run, Schedule

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

# For a run someone may not see here, and for one that does not exist: the same words.
CANT_SHOW = (
    "I can't show that run here. Ask in the channel where it was started "
    "(run ids are in each answer's footer)."
)


async def is_one_of(
    baton: Baton, user_id: str, ids: Iterable[str], *, team_id: str | None = None
) -> bool:
    """The user is listed by id, or is a member of a listed user group (S…)."""
    wanted = [i for i in ids if i]
    if not user_id:
        return False
    if user_id in wanted:
        return True
    for group in (g for g in wanted if g.startswith("S")):
        if await in_group(baton, user_id, group, team_id=team_id):
            return True
    return False


async def in_group(baton: Baton, user_id: str, group: str, *, team_id: str | None = None) -> bool:
    """The user is a member of the user group (False, with a warning, when Slack won't say)."""
    try:
        resp = await baton.client_for(team_id).usergroups_users_list(usergroup=group)
    except SlackApiError as e:
        log.warning("could not read user group %s: %s", group, slack_error(e))
        return False
    return user_id in (resp.get("users") or [])


async def may_decide(baton: Baton, approval: Approval, user_id: str) -> bool:
    """Listed approvers, members of listed user groups; with none listed, nobody."""
    return await is_one_of(baton, user_id, approval.approvers, team_id=approval.team_id)


async def is_admin(baton: Baton, user_id: str, *, team_id: str | None = None) -> bool:
    """A Baton admin: listed in `BATON_ADMINS`, by id or through a user group (of `team_id`'s
    workspace)."""
    return await is_one_of(baton, user_id, baton.settings.baton_admins, team_id=team_id)


async def may_see(baton: Baton, run: Run, *, user_id: str, channel_id: str) -> bool:
    """A run is shown in its own channel (or DM), and anywhere to its requester, its
    approvers and Baton admins."""
    if run.channel_id and run.channel_id == channel_id:
        return True
    if user_id and user_id == run.user_id:
        return True
    allowed = {*baton.settings.baton_admins}
    for a in await approvals.for_run(baton.db, run.id):
        allowed.update(a.approvers)
    return await is_one_of(baton, user_id, sorted(allowed), team_id=run.team_id)


async def may_stop(baton: Baton, run: Run, user_id: str) -> bool:
    """The requester, an approver of the run, or a Baton admin (`BATON_ADMINS`)."""
    if user_id and user_id == run.user_id:
        return True
    settings = baton.catalog.approvals
    allowed = {*baton.settings.baton_admins, *settings.everyone_named()}
    for a in await approvals.for_run(baton.db, run.id):
        allowed.update(a.approvers)
    return await is_one_of(baton, user_id, sorted(allowed), team_id=run.team_id)


async def may_manage(baton: Baton, schedule: Schedule, user_id: str) -> bool:
    """Pause, resume, delete or run a schedule: its creator, members of the channel it
    posts in, and Baton admins."""
    if not user_id:
        return False
    if user_id == schedule.created_by:
        return True
    if await baton.members_for(schedule.team_id).has(schedule.channel_id, user_id):
        return True
    return await is_admin(baton, user_id, team_id=schedule.team_id)

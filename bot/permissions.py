"""Who may do what to a run. One small place, so a fuller permission model can grow here."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.slack_ops import slack_error
from storage import approvals
from storage.models import Approval, Run

if TYPE_CHECKING:
    from bot.app import Baton

log = logging.getLogger(__name__)


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
        try:
            resp = await baton.client_for(team_id).usergroups_users_list(usergroup=group)
        except SlackApiError as e:
            log.warning("could not read user group %s: %s", group, slack_error(e))
            continue
        if user_id in (resp.get("users") or []):
            return True
    return False


async def may_decide(baton: Baton, approval: Approval, user_id: str) -> bool:
    """Listed approvers, members of listed user groups; with none listed, nobody."""
    return await is_one_of(baton, user_id, approval.approvers, team_id=approval.team_id)


async def may_stop(baton: Baton, run: Run, user_id: str) -> bool:
    """The requester, an approver of the run, or a Baton admin (`BATON_ADMINS`)."""
    if user_id and user_id == run.user_id:
        return True
    settings = baton.catalog.approvals
    allowed = {*baton.settings.baton_admins, *settings.approvers}
    for approvers in settings.tools.values():
        allowed.update(approvers)
    for a in await approvals.for_run(baton.db, run.id):
        allowed.update(a.approvers)
    return await is_one_of(baton, user_id, sorted(allowed), team_id=run.team_id)

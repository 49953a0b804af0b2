"""The App Home tab: gathered after the ack, drawn by `bot/home_blocks.py`, published.

Its buttons (approve/reject what waits for the person, pause/resume their schedules) are
stored and acked like every click (`bot/clicks.py`); the tab is then published again, so
the person sees what their click did.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot import home_blocks as ui
from bot.approval_clicks import decide
from bot.interactions import first_action, team_of, where
from bot.permissions import in_group, may_manage
from bot.slack_ops import slack_error
from orchestration.when import describe, upcoming, when_of, zone
from storage import approvals, feedback, home, schedules
from storage.models import Approval, Schedule

if TYPE_CHECKING:
    from datetime import datetime

    from bot.parts import Baton

log = logging.getLogger(__name__)

WEEK = timedelta(days=7)


async def dashboard(
    baton: Baton, user_id: str, *, notice: str = "", team_id: str | None = None
) -> ui.Dashboard:
    """Everything the person's Home tab shows (database reads, then a few cached Slack asks),
    of `team_id`'s workspace when Baton is installed in many."""
    now = baton.db.clock()
    data = _of_workspace(baton, await home.for_user(baton.db, user_id, since=now - WEEK), team_id)
    mine = await waiting_for(baton, user_id, data.waiting, team_id=team_id)
    names = baton.names_for(team_id)
    links: dict[str, str] = {}
    for run in [
        *data.recent,
        *(data.waiting_runs[a.run_id] for a in mine if a.run_id in data.waiting_runs),
    ]:
        if run.channel_id and run.thread_ts and run.id not in links:
            link = await names.permalink(run.channel_id, run.thread_ts)
            if link:
                links[run.id] = link
    return ui.Dashboard(
        recent=data.recent,
        tasks=data.tasks,
        mine=mine,
        waiting_runs=data.waiting_runs,
        schedules=[_schedule_line(s, now) for s in data.schedules],
        usage=data.usage,
        votes=feedback.tally(data.feedback),
        links=links,
        notice=notice,
    )


def _of_workspace(baton: Baton, data: home.HomeData, team_id: str | None) -> home.HomeData:
    """With many workspaces, only what belongs to `team_id`'s (one workspace keeps it all)."""
    if baton.workspaces is None:
        return data
    recent = [r for r in data.recent if baton.own(r, team_id) is not None]
    kept = {r.id for r in recent}
    waiting_runs = {k: r for k, r in data.waiting_runs.items() if baton.own(r, team_id) is not None}
    return replace(
        data,
        recent=recent,
        tasks=[t for t in data.tasks if t.run_id in kept],
        waiting=[a for a in data.waiting if baton.own(a, team_id) is not None],
        waiting_runs=waiting_runs,
        schedules=[s for s in data.schedules if baton.own(s, team_id) is not None],
    )


async def waiting_for(
    baton: Baton, user_id: str, waiting: list[Approval], *, team_id: str | None = None
) -> list[Approval]:
    """The approvals this person may decide: named, or in a named user group (asked once)."""
    groups = {g for a in waiting for g in a.approvers if g.startswith("S")}
    member_of = {g for g in sorted(groups) if await in_group(baton, user_id, g, team_id=team_id)}
    return [a for a in waiting if user_id in a.approvers or member_of & set(a.approvers)]


def _schedule_line(s: Schedule, now: datetime) -> ui.ScheduleLine:
    when = when_of(s)
    nxt = (
        [] if s.paused else upcoming(when, zone(s.timezone), anchor=s.created_at, now=now, count=1)
    )
    return ui.ScheduleLine(s, describe(when, s.timezone), nxt[0] if nxt else None)


async def publish(
    baton: Baton, user_id: str, *, notice: str = "", team_id: str | None = None
) -> None:
    """Publish the person's Home tab in `team_id`'s workspace."""
    try:
        view = ui.home_view(await dashboard(baton, user_id, notice=notice, team_id=team_id))
        await baton.client_for(team_id).views_publish(user_id=user_id, view=view)
    except SlackApiError as e:
        log.warning("could not publish the App Home for %s: %s", user_id, slack_error(e))


async def on_home_button(baton: Baton, body: dict[str, Any]) -> None:
    """A click on the Home tab; the tab is published again with what it did."""
    _, user = where(body)
    team = team_of(body)
    action = first_action(body)
    action_id, value = str(action.get("action_id") or ""), str(action.get("value") or "")
    if not user:
        return
    match action_id:
        case ui.APPROVE | ui.REJECT:
            notice = await _decide(baton, user, value, approve=action_id == ui.APPROVE, team=team)
        case ui.PAUSE | ui.RESUME:
            notice = await _pause(baton, user, value, pause=action_id == ui.PAUSE, team=team)
        case _:
            notice = "That button is not Baton's any more; here is the tab as it is now."
    await publish(baton, user, notice=notice, team_id=team)


async def _decide(
    baton: Baton, user: str, approval_id: str, *, approve: bool, team: str | None = None
) -> str:
    approval = baton.own(await approvals.get(baton.db, approval_id), team)
    if approval is None:
        return (
            "I don't know that approval (it may belong to another Baton), so nothing was changed."
        )
    # The Home tab stands for the approval's own message, as its buttons do.
    refusal = await decide(
        baton,
        approval_id=approval_id,
        user_id=user,
        approve=approve,
        message_ts=approval.message_ts,
        channel_id=None,
    )
    if refusal is not None:
        return refusal
    verb = "Approved" if approve else "Rejected"
    return f"{verb} run `{approval.run_id}`'s step `{approval.task_id}`; the run's thread shows what happens next."


async def _pause(
    baton: Baton, user: str, schedule_id: str, *, pause: bool, team: str | None = None
) -> str:
    schedule = baton.own(await schedules.get(baton.db, schedule_id), team)
    if schedule is None or schedule.deleted:
        return "That schedule no longer exists, so nothing was changed."
    if not await may_manage(baton, schedule, user):
        return (
            f"Only <@{schedule.created_by}>, members of <#{schedule.channel_id}> and Baton admins "
            f"can pause or resume schedule `{schedule.id}`. Nothing was changed."
        )
    changed = await schedules.change(
        baton.db, schedule.id, action="paused" if pause else "resumed", by=user, paused=pause
    )
    if pause:
        baton.scheduler.forget(schedule.id)
        return f"⏸️ Paused schedule `{schedule.id}`."
    if changed is not None:
        baton.scheduler.watch(changed)
    return f"▶️ Resumed schedule `{schedule.id}`."

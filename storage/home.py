"""What the App Home tab shows one person, read in one session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from storage.db import Database
from storage.models import (
    Approval,
    ApprovalStatus,
    Feedback,
    ModelUsage,
    Run,
    RunSource,
    Schedule,
    TaskRow,
)

RECENT = 10


@dataclass(frozen=True)
class HomeData:
    recent: list[Run]
    tasks: list[TaskRow]  # of the recent runs
    waiting: list[Approval]  # every pending approval; the caller keeps the person's own
    waiting_runs: dict[str, Run]
    schedules: list[Schedule]  # the person's own, not deleted
    usage: list[ModelUsage]  # the person's runs' model calls since `since`
    feedback: list[Feedback]  # every vote since `since`


async def for_user(db: Database, user_id: str, *, since: datetime) -> HomeData:
    async with db.session() as s:
        recent = list(
            (
                await s.exec(
                    select(Run)
                    .where(Run.user_id == user_id, Run.source != RunSource.SCHEDULE)
                    .order_by(col(Run.created_at).desc())
                    .limit(RECENT)
                )
            ).all()
        )
        tasks = list(
            (
                await s.exec(select(TaskRow).where(col(TaskRow.run_id).in_([r.id for r in recent])))
            ).all()
        )
        waiting = list(
            (
                await s.exec(
                    select(Approval)
                    .where(Approval.status == ApprovalStatus.PENDING)
                    .order_by(col(Approval.requested_at))
                )
            ).all()
        )
        waiting_runs = {
            r.id: r
            for r in (
                await s.exec(select(Run).where(col(Run.id).in_({a.run_id for a in waiting})))
            ).all()
        }
        schedules = list(
            (
                await s.exec(
                    select(Schedule)
                    .where(Schedule.created_by == user_id, col(Schedule.deleted).is_(False))
                    .order_by(col(Schedule.created_at))
                )
            ).all()
        )
        usage = list(
            (
                await s.exec(
                    select(ModelUsage)
                    .join(Run, col(Run.id) == col(ModelUsage.run_id))
                    .where(Run.user_id == user_id, col(ModelUsage.at) >= since)
                )
            ).all()
        )
        votes = list((await s.exec(select(Feedback).where(col(Feedback.at) >= since))).all())
    return HomeData(recent, tasks, waiting, waiting_runs, schedules, usage, votes)

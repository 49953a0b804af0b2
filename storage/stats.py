"""Counts of what is stored, for `/metrics`: the same answer from every replica (the
`baton worker` processes too, with their heartbeats)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, text
from sqlmodel import col, select

from storage import workers
from storage.db import Database
from storage.models import (
    Approval,
    ApprovalStatus,
    FireOutcome,
    Run,
    RunStatus,
    ScheduleFire,
    TaskRow,
    TaskStatus,
)


@dataclass(frozen=True)
class StoredCounts:
    runs: dict[RunStatus, int]
    tasks: dict[tuple[str, TaskStatus], int]  # (agent, status)
    approvals_waiting: int
    schedule_fires: dict[FireOutcome, int]
    workers: workers.Workers


async def stored_counts(db: Database) -> StoredCounts:
    """Runs and tasks by status, approvals still open, schedule fires by outcome."""
    async with db.session() as s:
        run_rows = await s.exec(select(Run.status, func.count()).group_by(col(Run.status)))
        task_rows = await s.exec(
            select(TaskRow.agent, TaskRow.status, func.count()).group_by(
                col(TaskRow.agent), col(TaskRow.status)
            )
        )
        waiting = await s.exec(
            select(func.count())
            .select_from(Approval)
            .where(
                col(Approval.status) == ApprovalStatus.PENDING,
                col(Approval.expires_at) > db.clock(),
            )
        )
        fire_rows = await s.exec(
            select(ScheduleFire.outcome, func.count()).group_by(col(ScheduleFire.outcome))
        )
        recorded = await workers.recorded(db)
        return StoredCounts(
            runs={RunStatus(status): n for status, n in run_rows.all()},
            tasks={(agent, TaskStatus(status)): n for agent, status, n in task_rows.all()},
            approvals_waiting=int(waiting.one()),
            schedule_fires={FireOutcome(outcome): n for outcome, n in fire_rows.all()},
            workers=recorded,
        )


async def reachable(db: Database) -> None:
    """Raise if the database does not answer a trivial query."""
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def table_names(db: Database) -> set[str]:
    """The tables that exist in the database (without creating any)."""
    from sqlalchemy import inspect

    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


def baton_tables() -> set[str]:
    """The tables Baton's code expects."""
    from sqlmodel import SQLModel

    from storage import models  # noqa: F401  (registers the tables)

    return set(SQLModel.metadata.tables)

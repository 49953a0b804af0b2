"""Runs, their tasks and their audit trail.

Every state change goes through `record`, which updates the row(s) and appends the event in
one transaction: what Slack later shows has always been written first.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import col, select

from storage.db import Database, utcnow
from storage.models import Event, ModelUsage, Run, RunStatus, TaskRow


def new_id() -> str:
    """A short id a person can type (`/baton status 3fa9c2d1`)."""
    return secrets.token_hex(4)


async def create_run(db: Database, run: Run) -> Run:
    async with db.session() as s:
        s.add(run)
        s.add(
            Event(
                run_id=run.id,
                kind="run_created",
                data={"source": run.source, "request": run.request},
            )
        )
    return run


async def get_run(db: Database, run_id: str) -> Run | None:
    async with db.session() as s:
        return await s.get(Run, run_id)


async def latest_run(db: Database, *, channel_id: str | None) -> Run | None:
    async with db.session() as s:
        q = select(Run).order_by(col(Run.created_at).desc()).limit(1)
        if channel_id:
            q = q.where(Run.channel_id == channel_id)
        return (await s.exec(q)).first()


async def thread_runs(db: Database, *, channel_id: str, thread_ts: str, before: str) -> list[Run]:
    """Earlier finished runs in the same Slack thread, oldest first (the conversation so far)."""
    async with db.session() as s:
        q = (
            select(Run)
            .where(Run.channel_id == channel_id, Run.thread_ts == thread_ts, Run.id != before)
            .order_by(col(Run.created_at))
        )
        return [r for r in (await s.exec(q)).all() if r.status.is_final]


async def list_tasks(db: Database, run_id: str) -> list[TaskRow]:
    async with db.session() as s:
        q = select(TaskRow).where(TaskRow.run_id == run_id).order_by(col(TaskRow.position))
        return list((await s.exec(q)).all())


async def get_task(db: Database, run_id: str, task_id: str) -> TaskRow | None:
    async with db.session() as s:
        return await s.get(TaskRow, (run_id, task_id))


async def events(db: Database, run_id: str) -> list[Event]:
    async with db.session() as s:
        q = select(Event).where(Event.run_id == run_id).order_by(col(Event.id))
        return list((await s.exec(q)).all())


async def save_plan(
    db: Database, run_id: str, plan: dict[str, Any], tasks: Sequence[TaskRow]
) -> None:
    """Store the plan and its tasks; from here on the run is driven from these rows."""
    async with db.session() as s:
        run = await s.get(Run, run_id)
        if run is None:
            raise LookupError(run_id)
        run.plan = plan
        run.status = RunStatus.RUNNING
        run.updated_at = utcnow()
        s.add(run)
        for t in tasks:
            s.add(t)
        s.add(Event(run_id=run_id, kind="plan_ready", data=plan))


async def record(
    db: Database,
    run_id: str,
    kind: str,
    *,
    task_id: str | None = None,
    data: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
) -> None:
    """Apply a state change to the run and/or one task and append its event, atomically."""
    now = utcnow()
    async with db.session() as s:
        if run:
            await s.exec(update(Run).where(col(Run.id) == run_id).values(updated_at=now, **run))
        if task:
            if task_id is None:
                raise ValueError("task fields need a task_id")
            await s.exec(
                update(TaskRow)
                .where(col(TaskRow.run_id) == run_id, col(TaskRow.task_id) == task_id)
                .values(**task)
            )
        s.add(Event(run_id=run_id, at=now, kind=kind, task_id=task_id, data=data))


async def add_usage(
    db: Database,
    run_id: str,
    task_id: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    model: str | None = None,
    agent: str | None = None,
    priced: bool = True,
) -> None:
    """Add one model call's usage to its task (if any) and to the run, and, given the model,
    to the ledger that rolls cost up per agent and model."""
    async with db.session() as s:
        if model is not None:
            s.add(
                ModelUsage(
                    run_id=run_id,
                    task_id=task_id,
                    agent=agent or "supervisor",
                    model=model,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cost_usd=cost_usd,
                    priced=priced,
                )
            )
        if task_id is not None:
            await s.exec(
                update(TaskRow)
                .where(col(TaskRow.run_id) == run_id, col(TaskRow.task_id) == task_id)
                .values(
                    input_tokens=TaskRow.input_tokens + input_tokens,
                    output_tokens=TaskRow.output_tokens + output_tokens,
                    cost_usd=TaskRow.cost_usd + cost_usd,
                )
            )
        await s.exec(
            update(Run)
            .where(col(Run.id) == run_id)
            .values(
                input_tokens=Run.input_tokens + input_tokens,
                output_tokens=Run.output_tokens + output_tokens,
                cost_usd=Run.cost_usd + cost_usd,
            )
        )


async def acquire_lease(db: Database, run_id: str, owner: str, *, seconds: float) -> bool:
    """Claim the right to drive a run; only one process drives a run at a time."""
    now = utcnow()
    async with db.session() as s:
        result = await s.exec(
            update(Run)
            .where(
                col(Run.id) == run_id,
                or_(
                    col(Run.lease_owner).is_(None),
                    col(Run.lease_owner) == owner,
                    col(Run.lease_until) < now,
                ),
            )
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
        )
        return bool(result.rowcount)


async def release_lease(db: Database, run_id: str, owner: str) -> None:
    async with db.session() as s:
        await s.exec(
            update(Run)
            .where(col(Run.id) == run_id, col(Run.lease_owner) == owner)
            .values(lease_owner=None, lease_until=None)
        )


async def count_runs(db: Database) -> int:
    async with db.session() as s:
        return int((await s.exec(select(func.count()).select_from(Run))).one())


async def runs_by_status(
    db: Database, statuses: Sequence[RunStatus], *, older_than: datetime | None = None
) -> list[Run]:
    async with db.session() as s:
        q = select(Run).where(col(Run.status).in_(list(statuses)))
        if older_than is not None:
            q = q.where(col(Run.updated_at) < older_than)
        return list((await s.exec(q)).all())


async def set_status_message(db: Database, run_id: str, ts: str | None) -> None:
    """Remember where the run's progress is shown (not a state change: no event)."""
    async with db.session() as s:
        await s.exec(update(Run).where(col(Run.id) == run_id).values(status_message_ts=ts))


async def set_traceparent(db: Database, run_id: str, traceparent: str) -> None:
    """Remember the run's trace so that every later stretch joins it (not a state change)."""
    async with db.session() as s:
        await s.exec(update(Run).where(col(Run.id) == run_id).values(traceparent=traceparent))

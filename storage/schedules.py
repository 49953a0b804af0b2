"""Schedules and their fires.

A fire is claimed by inserting its row: the table's unique key (schedule id, fire time)
lets exactly one process win, however many replicas woke up for it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage import runs
from storage.db import Database, utcnow
from storage.models import Delivery, Event, EventKind, FireOutcome, Run, Schedule, ScheduleFire


def new_schedule_id() -> str:
    """Short enough to type: `/baton schedule pause 3fa9c2`."""
    return secrets.token_hex(3)


def trail(schedule_id: str) -> str:
    """The key of a schedule's audit events in the append-only `events` table (runs use
    their run ids; a schedule's trail never collides with one)."""
    return f"schedule:{schedule_id}"


def _audit(schedule_id: str, action: str, by: str | None) -> Event:
    return Event(
        run_id=trail(schedule_id),
        kind=f"schedule_{action}",
        data={"schedule_id": schedule_id, "by": by},
    )


async def create(db: Database, schedule: Schedule) -> Schedule:
    """Store a new schedule and its `schedule_created` event, together."""
    async with db.session() as s:
        s.add(schedule)
        s.add(_audit(schedule.id, "created", schedule.created_by))
    return schedule


async def audit(db: Database, schedule_id: str, action: str, *, by: str | None) -> None:
    """Append `schedule_<action>` (who did it) to the schedule's audit trail."""
    async with db.session() as s:
        s.add(_audit(schedule_id, action, by))


async def audit_trail(db: Database, schedule_id: str) -> list[Event]:
    async with db.session() as s:
        q = select(Event).where(Event.run_id == trail(schedule_id)).order_by(col(Event.id))
        return list((await s.exec(q)).all())


async def get(db: Database, schedule_id: str) -> Schedule | None:
    """The schedule, unless it was deleted."""
    async with db.session() as s:
        found = await s.get(Schedule, schedule_id)
    return None if found is None or found.deleted else found


async def in_channel(db: Database, channel_id: str) -> list[Schedule]:
    async with db.session() as s:
        q = (
            select(Schedule)
            .where(Schedule.channel_id == channel_id, col(Schedule.deleted).is_(False))
            .order_by(col(Schedule.created_at))
        )
        return list((await s.exec(q)).all())


async def active(db: Database) -> list[Schedule]:
    """Every schedule that should fire: not paused, not deleted."""
    async with db.session() as s:
        q = select(Schedule).where(
            col(Schedule.deleted).is_(False), col(Schedule.paused).is_(False)
        )
        return list((await s.exec(q)).all())


async def change(
    db: Database,
    schedule_id: str,
    *,
    action: str,
    by: str | None,
    **values: Any,
) -> Schedule | None:
    """Update a schedule that still exists, with its audit event (`schedule_<action>`, who
    did it) in the same transaction; None when it does not exist (or was deleted)."""
    async with db.session() as s:
        result = await s.exec(
            update(Schedule)
            .where(col(Schedule.id) == schedule_id, col(Schedule.deleted).is_(False))
            .values(updated_at=utcnow(), **values)
        )
        if result.rowcount != 1:
            return None
        s.add(_audit(schedule_id, action, by))
        return await s.get(Schedule, schedule_id, populate_existing=True)


async def claim(db: Database, fire: ScheduleFire) -> ScheduleFire | None:
    """Insert the fire; None when another process (or an earlier tick) claimed it first."""
    try:
        async with db.session() as s:
            s.add(fire)
    except IntegrityError:
        return None
    return fire


async def start_run(db: Database, fire_id: int, run: Run) -> Run:
    """Store the fire's run and link the two, in one transaction. A run id taken already
    (`runs.id_taken`) is replaced with a new one, and the transaction made again."""
    for _ in range(runs.ID_TRIES - 1):
        try:
            return await _start_run(db, fire_id, run)
        except IntegrityError as e:
            if not runs.id_taken(e):
                raise
        run.id = runs.new_id()
    return await _start_run(db, fire_id, run)


async def _start_run(db: Database, fire_id: int, run: Run) -> Run:
    async with db.session() as s:
        s.add(run)
        await s.flush()
        await s.exec(
            update(ScheduleFire).where(col(ScheduleFire.id) == fire_id).values(run_id=run.id)
        )
        s.add(
            Event(
                run_id=run.id,
                kind=EventKind.RUN_CREATED,
                data={"source": run.source, "request": run.request, "fire_id": fire_id},
            )
        )
    return run


async def update_fire(db: Database, fire_id: int, **values: Any) -> None:
    async with db.session() as s:
        await s.exec(update(ScheduleFire).where(col(ScheduleFire.id) == fire_id).values(**values))


async def settle_fire(
    db: Database, fire_id: int, *, checks: dict[str, Any], deliver: Delivery | None = None
) -> bool:
    """Keep what the fire's run found, and queue what to show for it, in one transaction;
    False when it was kept before (the digest is done)."""
    async with db.session() as s:
        result = await s.exec(
            update(ScheduleFire)
            .where(col(ScheduleFire.id) == fire_id, col(ScheduleFire.settled).is_(False))
            .values(checks=checks, settled=True)
        )
        if result.rowcount != 1:
            return False
        if deliver is not None:
            s.add(deliver)
        return True


async def get_fire(db: Database, fire_id: int) -> ScheduleFire | None:
    async with db.session() as s:
        return await s.get(ScheduleFire, fire_id)


async def fire_of_run(db: Database, run_id: str) -> ScheduleFire | None:
    async with db.session() as s:
        q = select(ScheduleFire).where(ScheduleFire.run_id == run_id)
        return (await s.exec(q)).first()


async def last_fire_time(db: Database, schedule_id: str) -> datetime | None:
    """The latest scheduled (not run-now) fire time claimed, whatever its outcome."""
    async with db.session() as s:
        q = (
            select(ScheduleFire.fire_time)
            .where(ScheduleFire.schedule_id == schedule_id, col(ScheduleFire.manual).is_(False))
            .order_by(col(ScheduleFire.fire_time).desc())
            .limit(1)
        )
        return (await s.exec(q)).first()


async def recent_fires(db: Database, schedule_id: str, *, limit: int = 50) -> list[ScheduleFire]:
    """Newest first."""
    async with db.session() as s:
        q = (
            select(ScheduleFire)
            .where(ScheduleFire.schedule_id == schedule_id)
            .order_by(col(ScheduleFire.id).desc())
            .limit(limit)
        )
        return list((await s.exec(q)).all())


async def acknowledge(db: Database, fire_id: int, user_id: str) -> ScheduleFire | None:
    """Mark a digest seen. Returns the fire; `acknowledged_by` tells whose mark stands."""
    async with db.session() as s:
        await s.exec(
            update(ScheduleFire)
            .where(col(ScheduleFire.id) == fire_id, col(ScheduleFire.acknowledged_by).is_(None))
            .values(acknowledged_by=user_id, acknowledged_at=utcnow())
        )
        return await s.get(ScheduleFire, fire_id, populate_existing=True)


def started(fire: ScheduleFire) -> bool:
    return fire.outcome == FireOutcome.STARTED and fire.run_id is not None


async def pause_team(db: Database, team_id: str) -> list[str]:
    """Pause every schedule of a workspace (Baton was uninstalled there); their ids."""
    async with db.session() as s:
        q = select(Schedule).where(
            col(Schedule.team_id) == team_id,
            col(Schedule.deleted).is_(False),
            col(Schedule.paused).is_(False),
        )
        found = list((await s.exec(q)).all())
        for schedule in found:
            schedule.paused = True
            schedule.updated_at = utcnow()
            s.add(schedule)
        return [schedule.id for schedule in found]

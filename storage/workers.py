"""The `workers` table: each `baton worker` records itself, beats while it runs, and leaves.

Every process that reads it (`baton doctor`, `/healthz`, `/metrics`) sees the same workers;
one whose last beat is older than `stale_after` seconds stopped beating without leaving
(killed, its machine gone, cut off from the database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col, select

from storage.db import Database, utcnow
from storage.models import WorkerRow

# A worker beats this often; one that missed three beats is stale.
BEAT_SECONDS = 5.0
STALE_SECONDS = 3 * BEAT_SECONDS


@dataclass(frozen=True)
class Workers:
    """The recorded workers as of `now`: those beating, and those whose beat is stale."""

    live: list[WorkerRow]
    stale: list[WorkerRow]


async def join(db: Database, worker: WorkerRow) -> None:
    """Record a worker that has started (again, if its id was left behind)."""
    async with db.session() as s:
        await s.merge(worker)


async def beat(db: Database, worker_id: str, *, runs_driving: int) -> bool:
    """Renew a worker's beat; False when its row is gone (then `join` again)."""
    return await db.changed(
        update(WorkerRow)
        .where(col(WorkerRow.id) == worker_id)
        .values(last_beat_at=utcnow(), runs_driving=runs_driving)
    )


async def leave(db: Database, worker_id: str) -> None:
    """A worker that stops cleanly takes its row with it."""
    async with db.session() as s:
        await s.exec(delete(WorkerRow).where(col(WorkerRow.id) == worker_id))


def is_stale(worker: WorkerRow, *, now: datetime, stale_after: float = STALE_SECONDS) -> bool:
    """Whether the worker has not beaten for longer than `stale_after` seconds as of `now`."""
    return now - worker.last_beat_at > timedelta(seconds=stale_after)


async def recorded(
    db: Database, *, now: datetime | None = None, stale_after: float = STALE_SECONDS
) -> Workers:
    """Every recorded worker, oldest first, sorted into live and stale as of `now`."""
    async with db.session() as s:
        rows = list(await s.exec(select(WorkerRow).order_by(col(WorkerRow.started_at))))
    at = now if now is not None else utcnow()
    stale = [w for w in rows if is_stale(w, now=at, stale_after=stale_after)]
    return Workers(live=[w for w in rows if w not in stale], stale=stale)

"""The run queue workers take from: claims under `FOR UPDATE SKIP LOCKED`, and a wake-up.

A run is work for a worker when it is queued, planning or running and nobody holds its lease
(never taken, or its driver stopped renewing it), or when it waits for a person whose
decision has not been applied yet. A claim takes the lease of up to `limit` such runs in one
statement; on PostgreSQL rows another worker is claiming are skipped, not waited for, so two
workers never take the same run. Whoever adds work calls `notify`; a worker `listen`s
(PostgreSQL's LISTEN/NOTIFY) and claims when woken. SQLite has no notifications: its workers
look again after a short pause.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, and_, exists, literal, or_, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from storage.approvals import decided_gates
from storage.db import Database, utcnow
from storage.models import Run, RunStatus
from storage.runs import ACTIVE, FINAL, Claimed, Lease, run_of
from storage.writes import Write

log = logging.getLogger(__name__)
_RUNS: Table = Run.__table__  # type: ignore[attr-defined]

CHANNEL = "baton_work"


class Claims:
    """Claims runs for one worker; every claim's leases carry tokens no other drive has."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._count = itertools.count(1)

    async def claim(self, db: Database, *, limit: int, seconds: float) -> list[Claimed]:
        """Take the lease of up to `limit` runs nobody drives, oldest first; each with its
        row, read by the same statement."""
        now = utcnow()
        before = aliased(Run)
        predecessor_going = exists(
            select(before.id).where(
                col(before.id) == col(Run.follows_run_id), col(before.status).not_in(list(FINAL))
            )
        )
        candidates = (
            select(Run.id)
            .where(
                or_(
                    col(Run.status).in_(list(ACTIVE)),
                    and_(
                        col(Run.status) == RunStatus.WAITING,
                        col(Run.id).in_(decided_gates().scalar_subquery()),
                    ),
                ),
                or_(col(Run.lease_owner).is_(None), col(Run.lease_until) < now),
                ~predecessor_going,
            )
            .order_by(col(Run.created_at))
            .limit(limit)
            .with_for_update(of=Run, skip_locked=True)
        )
        prefix = f"{self.owner}:c{next(self._count)}:"
        stmt = (
            update(Run)
            .where(col(Run.id).in_(candidates.scalar_subquery()))
            .values(
                lease_owner=literal(prefix) + col(Run.id),
                lease_until=now + timedelta(seconds=seconds),
            )
            .returning(*_RUNS.c)
        )
        async with db.session() as s:
            conn = await s.connection()
            rows = (await conn.execute(stmt)).all()
        return [
            Claimed(Lease(run_id=r.id, token=r.lease_owner, wakeups=int(r.wakeups)), run_of(r))
            for r in rows
        ]


async def notify(db: Database) -> None:
    """Wake the workers: there is work (on SQLite they find it on their next look)."""
    if not db.is_sqlite:
        await db.write(Write(text(f"NOTIFY {CHANNEL}")))


class Listener:
    """A connection of its own that LISTENs for `notify`, setting `wake` on each one;
    `heard_at` is when the last one came (the event loop's clock)."""

    def __init__(self, db: Database, wake: asyncio.Event) -> None:
        self._url = make_url(db.url).set(drivername="postgresql")
        self._wake = wake
        self._conn: Any = None
        self.heard_at = float("-inf")

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Listen (again); a failure is logged, and the caller tries later."""
        import asyncpg  # type: ignore[import-untyped]

        await self.close()
        try:
            self._conn = await asyncpg.connect(self._url.render_as_string(hide_password=False))
            await self._conn.add_listener(CHANNEL, self._heard)
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("worker: cannot listen for work (%s); looking from time to time", e)
            self._conn = None

    def _heard(self, *_: object) -> None:
        self.heard_at = asyncio.get_running_loop().time()
        self._wake.set()

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()

"""Slack event ids already handled, so a retried delivery makes no second run."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, Insert, delete
from sqlmodel import col

from storage.db import Database, utcnow
from storage.models import SeenSlackEvent
from storage.writes import Write, insert_into

# Slack retries for about five minutes; keep ids far longer than that.
KEEP_FOR = timedelta(hours=24)


async def first_sighting(db: Database, event_id: str) -> bool:
    """Record `event_id`; True the first time it is seen, False for every retry after."""
    return await db.write(sighting(db, event_id))


def sighting(db: Database, event_id: str) -> Write:
    """The write that records `event_id` and changes nothing when it was recorded before: it
    guards a batch (`Database.write`) so that a retried request stores nothing twice."""
    statement = insert_into(_SEEN, unless_there=True, sqlite=db.is_sqlite)
    return Write(statement, {"event_id": event_id, "seen_at": utcnow()}, must_change=True)


def record(conn: Connection, is_sqlite: bool, event_ids: Sequence[str]) -> set[str]:
    """Record these ids in the caller's transaction; returns those seen for the first time."""
    if not event_ids:
        return set()
    statement = _recording(is_sqlite)
    now = utcnow()
    # In one order: two transactions adding the same two ids cannot wait on each other.
    rows = [{"event_id": i, "seen_at": now} for i in sorted(set(event_ids))]
    return set(conn.execute(statement, rows).scalars())


_SEEN = SeenSlackEvent.__table__  # type: ignore[attr-defined]


@functools.cache
def _recording(sqlite: bool) -> Insert:
    """`sighting`'s INSERT answering the ids it added, built once per dialect."""
    return insert_into(_SEEN, unless_there=True, sqlite=sqlite).returning(_SEEN.c.event_id)


async def forget_old(db: Database) -> int:
    """Drop ids older than KEEP_FOR; returns how many went."""
    async with db.session() as s:
        result = await s.exec(
            delete(SeenSlackEvent).where(col(SeenSlackEvent.seen_at) < utcnow() - KEEP_FOR)
        )
        return int(result.rowcount)

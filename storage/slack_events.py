"""Slack event ids already handled, so a retried delivery makes no second run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col

from storage.db import Database, utcnow
from storage.models import SeenSlackEvent
from storage.writes import Write

# Slack retries for about five minutes; keep ids far longer than that.
KEEP_FOR = timedelta(hours=24)


async def first_sighting(db: Database, event_id: str) -> bool:
    """Record `event_id`; True the first time it is seen, False for every retry after."""
    return await db.write(sighting(db, event_id))


def sighting(db: Database, event_id: str) -> Write:
    """The write that records `event_id` and changes nothing when it was recorded before: it
    guards a batch (`Database.write`) so that a retried request stores nothing twice."""
    statement = _SEEN_SQLITE if db.is_sqlite else _SEEN_PG
    return Write(statement, {"event_id": event_id, "seen_at": utcnow()}, must_change=True)


def record(conn: Connection, is_sqlite: bool, event_ids: Sequence[str]) -> set[str]:
    """Record these ids in the caller's transaction; returns those seen for the first time."""
    if not event_ids:
        return set()
    statement = (_SEEN_SQLITE if is_sqlite else _SEEN_PG).returning(_SEEN.c.event_id)
    now = utcnow()
    rows = [{"event_id": i, "seen_at": now} for i in dict.fromkeys(event_ids)]
    return set(conn.execute(statement, rows).scalars())


_SEEN = SeenSlackEvent.__table__  # type: ignore[attr-defined]
# Built once: a batch's one-statement form is cached per statement (`storage.writes`), so a
# statement made anew for each request would be compiled anew for each request too.
_SEEN_SQLITE = sqlite_insert(_SEEN).on_conflict_do_nothing()
_SEEN_PG = pg_insert(_SEEN).on_conflict_do_nothing()


async def forget_old(db: Database) -> int:
    """Drop ids older than KEEP_FOR; returns how many went."""
    async with db.session() as s:
        result = await s.exec(
            delete(SeenSlackEvent).where(col(SeenSlackEvent.seen_at) < utcnow() - KEEP_FOR)
        )
        return int(result.rowcount)

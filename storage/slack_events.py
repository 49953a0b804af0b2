"""Slack event ids already handled, so a retried delivery makes no second run."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from storage.db import Database, utcnow
from storage.models import SeenSlackEvent

# Slack retries for about five minutes; keep ids far longer than that.
KEEP_FOR = timedelta(hours=24)


async def first_sighting(db: Database, event_id: str) -> bool:
    """Record `event_id`; True the first time it is seen, False for every retry after."""
    try:
        async with db.session() as s:
            s.add(SeenSlackEvent(event_id=event_id))
    except IntegrityError:
        return False
    return True


async def forget_old(db: Database) -> int:
    """Drop ids older than KEEP_FOR; returns how many went."""
    async with db.session() as s:
        result = await s.exec(
            delete(SeenSlackEvent).where(col(SeenSlackEvent.seen_at) < utcnow() - KEEP_FOR)
        )
        return int(result.rowcount)

"""Clicks and form submissions, stored before Slack's ack and handled after it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.db import Database, utcnow
from storage.models import InboxItem

# A handled item is kept this long, so a replay of it is still recognised.
KEEP_FOR = timedelta(hours=24)


async def record(db: Database, *, key: str, kind: str, body: dict[str, Any]) -> InboxItem | None:
    """Store one request; None when it was stored before (a replay)."""
    item = InboxItem(key=key, kind=kind, body=body)
    try:
        async with db.session() as s:
            s.add(item)
    except IntegrityError:
        return None
    return item


async def claim(db: Database, item_id: int, *, seconds: float) -> bool:
    """Take an item to handle it; False when it is done or someone else has it."""
    now = utcnow()
    return await db.changed(
        update(InboxItem)
        .where(
            col(InboxItem.id) == item_id,
            col(InboxItem.done_at).is_(None),
            or_(col(InboxItem.claimed_until).is_(None), col(InboxItem.claimed_until) < now),
        )
        .values(claimed_until=now + timedelta(seconds=seconds), attempts=InboxItem.attempts + 1)
    )


async def done(db: Database, item_id: int) -> None:
    """Handled: never handled again."""
    async with db.session() as s:
        await s.exec(
            update(InboxItem)
            .where(col(InboxItem.id) == item_id)
            .values(done_at=utcnow(), claimed_until=None)
        )


async def left_over(db: Database, *, limit: int = 100) -> list[InboxItem]:
    """Items not handled and not being handled: their process stopped after the ack."""
    now = utcnow()
    async with db.session() as s:
        q = (
            select(InboxItem)
            .where(
                col(InboxItem.done_at).is_(None),
                or_(col(InboxItem.claimed_until).is_(None), col(InboxItem.claimed_until) < now),
            )
            .order_by(col(InboxItem.id))
            .limit(limit)
        )
        return list((await s.exec(q)).all())


async def next_claim_end(db: Database) -> datetime | None:
    """When the soonest claim on an unhandled item lapses (None when none is claimed)."""
    async with db.session() as s:
        q = select(func.min(InboxItem.claimed_until)).where(
            col(InboxItem.done_at).is_(None), col(InboxItem.claimed_until).is_not(None)
        )
        found: datetime | None = (await s.exec(q)).one()
        return found


async def forget_old(db: Database) -> int:
    """Drop handled items older than KEEP_FOR; returns how many went."""
    async with db.session() as s:
        result = await s.exec(
            delete(InboxItem).where(
                col(InboxItem.done_at).is_not(None),
                col(InboxItem.received_at) < utcnow() - KEEP_FOR,
            )
        )
        return int(result.rowcount)

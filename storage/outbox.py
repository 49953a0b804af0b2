"""The outbox: what Baton must show people, kept until it has been shown.

A row is added in the same transaction as the state it shows (a finished run and its answer,
an approval and its request message), so a crash can never leave one without the other.
The holder of the run's lease posts its rows piece by piece, oldest first, and marks each
delivered; on a failure it sets the next attempt's time, so any process (this one later, or
another, once the lease is free) carries on.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import writes
from storage.db import Database, utcnow
from storage.models import Delivery, DeliveryPurpose, DeliveryState, Event, Run, RunStatus


def new(
    run_id: str, purpose: DeliveryPurpose, *, ref: str = "", data: dict[str, Any] | None = None
) -> Delivery:
    """A row to add inside the transaction that makes it true."""
    return Delivery(run_id=run_id, purpose=purpose, ref=ref, data=data or {})


def new_row(
    run_id: str, purpose: DeliveryPurpose, *, ref: str = "", data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`new`'s row as INSERT values (`writes.new_row`), for a write before a Slack ack."""
    return writes.new_row(Delivery, run_id=run_id, purpose=purpose, ref=ref, data=data or {})


async def add_in(session: AsyncSession, delivery: Delivery) -> None:
    """Add `delivery` in `session`'s transaction unless an equal one (run, purpose, ref) exists."""
    found = (
        await session.exec(
            select(Delivery.id).where(
                Delivery.run_id == delivery.run_id,
                Delivery.purpose == delivery.purpose,
                Delivery.ref == delivery.ref,
            )
        )
    ).first()
    if found is None:
        session.add(delivery)


async def add_once(db: Database, delivery: Delivery) -> bool:
    """Add `delivery` unless an equal one (run, purpose, ref) exists; True when added. Two
    adding at once: one adds it, the other finds it there (the table's unique key)."""
    try:
        async with db.session() as s:
            before = len(s.new)
            await add_in(s, delivery)
            return len(s.new) > before
    except IntegrityError:
        mine = (delivery.run_id, delivery.purpose, delivery.ref)
        if any((d.run_id, d.purpose, d.ref) == mine for d in await for_run(db, delivery.run_id)):
            return False
        raise


async def for_run(db: Database, run_id: str) -> list[Delivery]:
    """A run's rows, oldest first."""
    q = select(Delivery).where(Delivery.run_id == run_id).order_by(col(Delivery.id))
    return await db.read_all(q)


async def next_due(db: Database, run_id: str) -> Delivery | None:
    """The run's oldest undelivered row, if it is due: rows of a run go out in order, so
    while the oldest waits for its next attempt, none after it goes either."""
    q = (
        select(Delivery)
        .where(Delivery.run_id == run_id, Delivery.state == DeliveryState.PENDING)
        .order_by(col(Delivery.id))
        .limit(1)
    )
    first = await db.read_first(q)
    if first is None or first.next_attempt_at > db.clock():
        return None
    return first


async def attempt_started(db: Database, delivery_id: int, pieces: list[dict[str, Any]]) -> None:
    """Fix the pieces (at the first attempt) and note that Slack may see this attempt."""
    await db.write(_set(delivery_id, pieces=pieces, in_doubt=True, attempts=_OUTBOX.c.attempts + 1))


async def piece_posted(db: Database, delivery_id: int, posted: list[str]) -> None:
    """One more piece is in Slack: never post it again."""
    await db.write(_set(delivery_id, posted=posted))


async def replace_pieces(db: Database, delivery_id: int, pieces: list[dict[str, Any]]) -> None:
    """Slack said a piece was too long: the rest goes out in smaller pieces."""
    await db.write(_set(delivery_id, pieces=pieces))


async def delivered(
    db: Database, delivery: Delivery, posted: list[str], *, event: str | None = None
) -> None:
    """Done: the row is never posted again (and, if given, the run's trail says so)."""
    now = utcnow()
    done = _set(
        delivery.id,
        state=DeliveryState.DELIVERED,
        posted=posted,
        delivered_at=now,
        in_doubt=False,
        last_error=None,
    )
    if event is None:
        await db.write(done)
    else:
        # The trail only while the row is there (the update must change it).
        guarded = replace(done, must_change=True)
        await db.write(guarded, writes.insert_row(_trail(delivery, now, event)))


async def retry_later(
    db: Database, delivery_id: int, *, at: datetime, error: str, in_doubt: bool
) -> None:
    """A failure that may pass: let go, and try again from `at`."""
    await db.write(_set(delivery_id, next_attempt_at=at, last_error=error, in_doubt=in_doubt))


async def give_up(db: Database, delivery: Delivery, *, error: str) -> None:
    """Slack refused for good (the channel is gone, Baton was removed): stop trying."""
    now = utcnow()
    failed = _set(delivery.id, state=DeliveryState.FAILED, last_error=error, in_doubt=False)
    trail = writes.insert_row(_trail(delivery, now, "delivery_failed", error=error))
    await db.write(replace(failed, must_change=True), trail)


_OUTBOX = Delivery.__table__  # type: ignore[attr-defined]


def _set(delivery_id: int | None, **values: Any) -> writes.Write:
    """A change of one outbox row, as a write that stands alone (one round trip)."""
    return writes.Write(update(_OUTBOX).where(_OUTBOX.c.id == delivery_id).values(**values), {})


def _trail(delivery: Delivery, at: datetime, kind: str, **extra: Any) -> Event:
    """The run's event for what became of a delivery."""
    return Event(
        run_id=delivery.run_id,
        at=at,
        kind=kind,
        data={"purpose": delivery.purpose.value, "ref": delivery.ref, **extra},
    )


# A queued run's request (a slash command's, which makes its thread) is posted first by
# whoever starts driving the run: the sweep leaves it to them until an attempt has failed.
# Taking it up here would hold the run's lease while posting, one run after another, and
# keep the workers from starting the runs meanwhile.
_LEFT_TO_DRIVER = (
    (col(Delivery.purpose) == DeliveryPurpose.REQUEST)
    & (col(Delivery.attempts) == 0)
    & (col(Run.status) == RunStatus.QUEUED)
)


async def runs_with_due(db: Database, *, limit: int = 200) -> list[str]:
    """Runs with something due to deliver now (one query, oldest first)."""
    now = db.clock()
    async with db.session() as s:
        q = (
            select(Delivery.run_id, func.min(Delivery.id))
            .join(Run, col(Run.id) == col(Delivery.run_id))
            .where(
                Delivery.state == DeliveryState.PENDING,
                col(Delivery.next_attempt_at) <= now,
                ~_LEFT_TO_DRIVER,
            )
            .group_by(col(Delivery.run_id))
            .order_by(func.min(Delivery.id))
            .limit(limit)
        )
        return [run_id for run_id, _ in (await s.exec(q)).all()]


async def next_due_at(db: Database) -> datetime | None:
    """When the next undelivered row can go out: its next attempt, or — while someone holds
    its run's lease — when that lease lapses (None when nothing waits)."""
    ready = case(
        (col(Run.lease_until) > col(Delivery.next_attempt_at), col(Run.lease_until)),
        else_=col(Delivery.next_attempt_at),
    )
    async with db.session() as s:
        q = (
            select(func.min(ready))
            .select_from(Delivery)
            .join(Run, col(Run.id) == col(Delivery.run_id))
            .where(Delivery.state == DeliveryState.PENDING, ~_LEFT_TO_DRIVER)
        )
        found: datetime | None = (await s.exec(q)).one()
        return found

"""Requests stored in groups before their acks, on SQLite and PostgreSQL: a group keeps every
rule a request stored alone follows (retries dropped, one run at a time in a thread,
follow-ups only where Baton has a run), a burst is stored in one transaction, and on
PostgreSQL a group that waits does not hold up the next."""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import asyncpg
from sqlalchemy import event

from storage import new_runs, outbox, runs
from storage.db import Database
from storage.models import DeliveryPurpose, Run, RunSource, RunStatus
from storage.new_runs import IntakeQueue, NewRun
from storage.writes import new_row
from testkit.databases import fresh_pg_database


def command(trigger: str) -> NewRun:
    run = new_row(
        Run, id=runs.new_id(), source=RunSource.COMMAND, request="run quick", channel_id="C1"
    )
    text = {"text": "<@U1> asked: run quick"}
    request = outbox.new_row(run["id"], DeliveryPurpose.REQUEST, data=text)
    return NewRun(run, seen=f"command:{trigger}", deliver=request)


def message(event_id: str, thread_ts: str, *, follow_up_only: bool = False) -> NewRun:
    run = new_row(
        Run,
        id=runs.new_id(),
        source=RunSource.MENTION,
        request=f"message {event_id}",
        channel_id="C1",
        thread_ts=thread_ts,
    )
    return NewRun(run, seen=event_id, in_thread=True, notice="wait", follow_up_only=follow_up_only)


async def notices(db: Database, run: Run) -> list[dict[str, Any]]:
    return [d.data for d in await outbox.for_run(db, run.id) if d.purpose == DeliveryPurpose.NOTICE]


async def test_a_group_of_commands_drops_retries_within_it_and_from_before(
    any_db: Database,
) -> None:
    (before,) = await new_runs.store(any_db, [command("t0")])
    assert before.run is not None

    taken = await new_runs.store(
        any_db, [command("t1"), command("t0"), command("t2"), command("t1")]
    )

    stored = [t.run is not None for t in taken]
    assert stored == [True, False, True, False]
    # Each stored command has its run and its request message, once.
    for t in taken:
        if t.run is not None:
            assert await runs.get_run(any_db, t.run.id) is not None
            requests = [
                d
                for d in await outbox.for_run(any_db, t.run.id)
                if d.purpose == DeliveryPurpose.REQUEST
            ]
            assert len(requests) == 1
    assert len(await runs.runs_by_status(any_db, [RunStatus.QUEUED])) == 3


async def test_messages_in_one_thread_queue_in_arrival_order_within_a_group(
    any_db: Database,
) -> None:
    taken = await new_runs.store(
        any_db,
        [
            message("Ev1", "1.0"),
            message("Ev2", "1.0"),
            message("Ev3", "2.0"),
            message("Ev4", "1.0", follow_up_only=True),
        ],
    )

    first, second, other, follow = (t.run for t in taken)
    assert first and second and other and follow
    assert [t.queued for t in taken] == [False, True, False, True]
    assert (second.follows_run_id, follow.follows_run_id) == (first.id, second.id)
    assert other.follows_run_id is None
    # The thread is told that each later message waits its turn; the first is not.
    assert await notices(any_db, first) == []
    assert await notices(any_db, second) == [{"text": "wait"}]
    stored = await runs.get_run(any_db, follow.id)
    assert stored is not None and stored.follows_run_id == second.id


async def test_a_follow_up_in_a_thread_without_a_run_leaves_nothing_even_in_a_group(
    any_db: Database,
) -> None:
    taken = await new_runs.store(
        any_db, [message("Ev1", "1.0", follow_up_only=True), message("Ev2", "2.0")]
    )

    assert taken[0].run is None and taken[1].run is not None
    assert await runs.thread_runs(any_db, channel_id="C1", thread_ts="1.0", before="-") == []
    # Its id was not recorded: the same event, sent as a mention later, is taken.
    (again,) = await new_runs.store(any_db, [message("Ev1", "1.0")])
    assert again.run is not None


async def test_a_burst_is_stored_in_one_transaction(any_db: Database) -> None:
    queue = IntakeQueue(any_db)
    commits = 0

    def count(*_: Any) -> None:
        nonlocal commits
        commits += 1

    for engine in any_db.engines:
        event.listen(engine, "commit", count)
    taken = await asyncio.gather(*(queue.store(message(f"Ev{i}", f"{i}.0")) for i in range(30)))
    for engine in any_db.engines:
        event.remove(engine, "commit", count)

    assert all(t.run is not None for t in taken)
    assert len(await runs.runs_by_status(any_db, [RunStatus.QUEUED])) == 30
    assert commits == 1


async def test_a_request_the_database_refuses_does_not_fail_the_others_in_its_group(
    any_db: Database,
) -> None:
    queue = IntakeQueue(any_db)
    (existing,) = await new_runs.store(any_db, [command("t0")])
    assert existing.run is not None
    clash = command("t1")
    clash.row["id"] = existing.run.id  # the same run id twice: the database refuses it

    results = await asyncio.gather(
        queue.store(command("t2")),
        queue.store(clash),
        queue.store(command("t3")),
        return_exceptions=True,
    )

    assert isinstance(results[1], Exception)
    assert [r.run is not None for r in results if isinstance(r, new_runs.Taken)] == [True, True]
    assert len(await runs.runs_by_status(any_db, [RunStatus.QUEUED])) == 3


async def test_a_group_held_up_on_postgresql_does_not_hold_up_the_next() -> None:
    """Groups are written side by side: one that waits (here for its thread, which another
    process holds) does not keep requests for other threads from being stored and acked."""
    async with fresh_pg_database() as url:
        db = Database(url)
        await db.create_all()
        queue = IntakeQueue(db)
        holder = await asyncpg.connect(url.replace("postgresql://", "postgres://"))
        key = zlib.crc32(b"C1:1.0")
        await holder.execute("SELECT pg_advisory_lock($1)", key)
        try:
            first = asyncio.create_task(queue.store(message("Ev1", "1.0")))
            deadline = time.monotonic() + 30
            while not await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
                "AND NOT granted",
                key,
            ):
                assert time.monotonic() < deadline, "the first group never waited for its thread"
                await asyncio.sleep(0.05)

            second = await asyncio.wait_for(queue.store(message("Ev2", "2.0")), 30)

            assert second.run is not None
            assert await runs.get_run(db, second.run.id) is not None
            assert not first.done()
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", key)
            await holder.close()
        taken = await asyncio.wait_for(first, 30)
        assert taken.run is not None and not taken.queued
        await db.dispose()

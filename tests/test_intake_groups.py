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

from storage import new_runs, outbox, queue, runs
from storage.db import Database
from storage.models import DeliveryPurpose, Run, RunSource, RunStatus
from storage.new_runs import IntakeQueue, NewRun
from storage.writes import new_row
from testkit.databases import fresh_pg_database


def command(trigger: str) -> NewRun:
    run = new_row(
        Run,
        id=runs.new_id(),
        source=RunSource.COMMAND,
        request="run quick",
        channel_id="C1",
        response_url=f"https://hooks.slack.test/commands/{trigger}",
    )
    return NewRun(run, seen=f"command:{trigger}")


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


async def someone_waits(holder: asyncpg.Connection, key: int, otherwise: str) -> None:
    """Returns once another connection waits for the advisory lock `key` that `holder` holds;
    fails with `otherwise` when none does within 30 s."""
    deadline = time.monotonic() + 30
    while not await holder.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted",
        key,
    ):
        assert time.monotonic() < deadline, otherwise
        await asyncio.sleep(0.05)


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
    # Each stored command has its run, with where to answer its requester; its request
    # message is added by whoever drives the run, after the ack.
    for t in taken:
        if t.run is not None:
            stored_run = await runs.get_run(any_db, t.run.id)
            assert stored_run is not None and stored_run.response_url == t.run.response_url
            assert await outbox.for_run(any_db, t.run.id) == []
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
    refused = command("t1")
    refused.row["source"] = None  # a run must say where it came from: the database refuses it

    results = await asyncio.gather(
        queue.store(command("t2")),
        queue.store(refused),
        queue.store(command("t3")),
        return_exceptions=True,
    )

    assert isinstance(results[1], Exception)
    assert [r.run is not None for r in results if isinstance(r, new_runs.Taken)] == [True, True]
    assert len(await runs.runs_by_status(any_db, [RunStatus.QUEUED])) == 2


async def test_a_new_run_whose_id_is_taken_already_is_stored_under_a_new_one(
    any_db: Database,
) -> None:
    # Run ids are short, for people to type: now and then a new one is one taken already.
    (existing,) = await new_runs.store(any_db, [command("t0")])
    assert existing.run is not None
    clash, other = command("t1"), message("Ev1", "1.0")
    clash.row["id"] = existing.run.id

    taken = await new_runs.store(any_db, [clash, other])

    assert [t.run is not None for t in taken] == [True, True]
    assert taken[0].run is not None and taken[0].run.id != existing.run.id
    stored = await runs.get_run(any_db, taken[0].run.id)
    assert stored is not None and stored.request == "run quick"
    assert stored.response_url == "https://hooks.slack.test/commands/t1"
    # The run that had the id is as it was, and the group's other run is stored too.
    before = await runs.get_run(any_db, existing.run.id)
    assert before is not None and before.response_url == "https://hooks.slack.test/commands/t0"
    assert taken[1].run is not None and await runs.get_run(any_db, taken[1].run.id) is not None
    assert len(await runs.runs_by_status(any_db, [RunStatus.QUEUED])) == 3
    # Each first event belongs to its own run.
    assert [e.kind for e in await runs.events(any_db, taken[0].run.id)] == ["run_created"]
    assert [e.kind for e in await runs.events(any_db, existing.run.id)] == ["run_created"]


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
            await someone_waits(holder, key, "the first group never waited for its thread")

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


def new_thread(event_id: str, ts: str) -> NewRun:
    """A mention outside any thread: its own message starts the thread."""
    request = message(event_id, ts)
    request.new_thread = True
    return request


async def test_on_postgresql_a_group_of_new_runs_is_one_statement_that_wakes_the_workers(
    pg_url: str,
) -> None:
    db = Database(pg_url)
    (before,) = await new_runs.store(db, [command("t0")])
    listener = await asyncpg.connect(pg_url.replace("postgresql://", "postgres://"))
    heard: list[str] = []
    woken = asyncio.Event()

    def hear(_conn: Any, _pid: int, channel: str, payload: str) -> None:
        heard.append(f"{channel}:{payload}" if payload else channel)
        woken.set()

    await listener.add_listener(queue.CHANNEL, hear)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    taken = await new_runs.store(
        db,
        [command("t1"), new_thread("Ev1", "1.0"), command("t0"), new_thread("Ev1", "1.0")],
        wake=True,
    )
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)

    assert len(statements) == 1
    assert [t.run is not None for t in taken] == [True, True, False, False]
    assert all(t.woken and not t.queued for t in taken if t.run is not None)
    for t in taken[:2]:
        assert t.run is not None
        stored = await runs.get_run(db, t.run.id)
        # Every value reads back as it was given: times, statuses, sources, ids.
        assert stored == t.run
        kinds = [e.kind for e in await runs.events(db, t.run.id)]
        assert kinds == ["run_created"]
    assert await outbox.for_run(db, taken[0].run_id or "") == []
    assert await outbox.for_run(db, taken[1].run_id or "") == []
    await asyncio.wait_for(woken.wait(), 10)
    assert heard == [queue.CHANNEL]
    # A group with nothing new (every request a retry) stores nothing and wakes no one.
    again = await new_runs.store(db, [command("t1"), new_thread("Ev1", "1.0")], wake=True)
    assert [t.run for t in again] == [None, None]
    # Notifications arrive in commit order: once one sent after it has come, any it sent
    # would have come too.
    woken.clear()
    await listener.execute(f"NOTIFY {queue.CHANNEL}, 'mark'")
    await asyncio.wait_for(woken.wait(), 10)
    assert heard == [queue.CHANNEL, f"{queue.CHANNEL}:mark"]
    assert before.run is not None and await runs.get_run(db, before.run.id) == before.run
    await listener.close()
    await db.dispose()


async def test_on_postgresql_a_new_thread_is_locked_until_its_run_is_stored(pg_url: str) -> None:
    """A reply that comes while the thread's first request is being stored waits for it, and
    then finds that run going: the one statement holds the thread's lock as the slower way
    does."""
    db = Database(pg_url)
    holder = await asyncpg.connect(pg_url.replace("postgresql://", "postgres://"))
    key = zlib.crc32(b"C1:7.0")
    await holder.execute("SELECT pg_advisory_lock($1)", key)
    try:
        first = asyncio.create_task(new_runs.store(db, [new_thread("Ev7", "7.0")]))
        await someone_waits(holder, key, "the new thread's run was stored without its lock")
        assert not first.done()
    finally:
        await holder.execute("SELECT pg_advisory_unlock($1)", key)
        await holder.close()
    (opened,) = await asyncio.wait_for(first, 30)
    (reply,) = await new_runs.store(db, [message("Ev8", "7.0")])

    assert opened.run is not None and reply.run is not None
    assert reply.queued and reply.run.follows_run_id == opened.run.id
    await db.dispose()

"""Storage behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from storage import (
    Database,
    approvals,
    new_runs,
    run_states,
    runs,
    schedules,
    slack_events,
    tool_calls,
)
from storage.db import CHECKPOINT_EVERY, normalize_url, utcnow
from storage.models import (
    Approval,
    ApprovalKind,
    ApprovalStatus,
    Event,
    EventKind,
    Run,
    RunSource,
    RunStatus,
    Schedule,
    ScheduleFire,
    ScheduleKind,
    TaskRow,
    TaskStatus,
)
from storage.writes import Write, row_values


def test_plain_urls_get_their_async_driver() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


async def _run_with_task(db: Database) -> Run:
    run = await runs.create_run(
        db, Run(id=runs.new_id(), request="check", channel_id="C1", thread_ts="1.0")
    )
    await run_states.run_started(db, run.id, driver="test", deadline_at=utcnow(), budget_usd=None)
    await run_states.plan_ready(
        db,
        run.id,
        {"title": "t", "tasks": []},
        [TaskRow(run_id=run.id, task_id="a", agent="web-checker", instruction="go")],
    )
    return run


async def test_every_state_change_is_an_event_in_order(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    await run_states.task_started(any_db, run.id, "a", attempt=1)
    await run_states.task_finished(
        any_db, run.id, "a", TaskStatus.SUCCEEDED, output="fine", error=None, model="m"
    )
    await run_states.run_ended(
        any_db, run.id, EventKind.RUN_FINISHED, RunStatus.SUCCEEDED, answer="fine"
    )

    kinds = [e.kind for e in await runs.events(any_db, run.id)]
    assert kinds == [
        "run_created",
        "run_started",
        "plan_ready",
        "task_started",
        "task_succeeded",
        "run_finished",
    ]
    task = await runs.get_task(any_db, run.id, "a")
    assert task is not None and task.status == TaskStatus.SUCCEEDED and task.output == "fine"
    stored = await runs.get_run(any_db, run.id)
    assert stored is not None and stored.status == RunStatus.SUCCEEDED


async def test_usage_adds_up_per_task_and_run_under_concurrency(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    await asyncio.gather(
        *[runs.add_usage(any_db, run.id, "a", runs.Spend(10, 5, 0.01)) for _ in range(20)]
    )
    task = await runs.get_task(any_db, run.id, "a")
    stored = await runs.get_run(any_db, run.id)
    assert task is not None and stored is not None
    assert (task.input_tokens, task.output_tokens) == (200, 100)
    assert (stored.input_tokens, stored.output_tokens) == (200, 100)
    assert abs(stored.cost_usd - 0.2) < 1e-9


async def test_a_sqlite_move_that_finds_the_file_locked_waits_for_the_lock_and_is_made_once(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path}/baton.db")
    await db.create_all()
    run = await _run_with_task(db)
    # Another process holds SQLite's write lock.
    other = sqlite3.connect(tmp_path / "baton.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = asyncio.create_task(run_states.task_started(db, run.id, "a", attempt=1))
    for _ in range(20):
        await asyncio.sleep(0)
    # The move waits for the lock, and the event loop goes on meanwhile (reads too).
    assert not started.done()
    task = await runs.get_task(db, run.id, "a")
    assert task is not None and task.status == TaskStatus.PENDING
    other.execute("COMMIT")
    other.close()
    await started
    task = await runs.get_task(db, run.id, "a")
    assert task is not None and task.status == TaskStatus.RUNNING
    kinds = [e.kind for e in await runs.events(db, run.id)]
    assert kinds.count(EventKind.TASK_STARTED) == 1
    await db.dispose()


async def test_sqlite_changes_reach_the_database_file_and_its_log_stays_small(
    tmp_path: Path,
) -> None:
    """Moves commit on the event loop's thread without checkpointing there; every
    CHECKPOINT_EVERY transactions a checkpoint off the loop moves the log into the file."""
    db = Database(f"sqlite:///{tmp_path}/baton.db")
    await db.create_all()
    log = tmp_path / "baton.db-wal"
    run = await _run_with_task(db)
    notes = 5 * CHECKPOINT_EVERY
    grown, per_note = 0, 0.0
    for i in range(notes):
        await run_states.note(db, run.id, EventKind.TASK_PROGRESS, task_id="a", data={"n": i})
        await asyncio.sleep(0)  # the loop goes on to other work, as it does between moves
        grown = max(grown, log.stat().st_size)
        if i == CHECKPOINT_EVERY // 2:
            per_note = grown / i  # what a note adds to the log
    await db.dispose()  # waits for a checkpoint under way

    # Two checkpoints' worth of notes at most, where without them the log holds all five.
    assert grown < 2 * CHECKPOINT_EVERY * per_note
    db = Database(f"sqlite:///{tmp_path}/baton.db")
    progress = [e for e in await runs.events(db, run.id) if e.kind == EventKind.TASK_PROGRESS]
    assert [e.data for e in progress] == [{"n": i} for i in range(notes)]
    await db.dispose()


async def test_a_request_that_finds_the_sqlite_file_locked_is_stored_once_the_lock_is_free(
    tmp_path: Path,
) -> None:
    """The write before an ack tries again from the event loop (which goes on meanwhile)
    rather than waiting in SQLite's busy handler, and is made once when the lock frees."""
    db = Database(f"sqlite:///{tmp_path}/baton.db")
    await db.create_all()
    run = Run(id=runs.new_id(), request="x", channel_id="C1", thread_ts="1.0")
    other = sqlite3.connect(tmp_path / "baton.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    storing = asyncio.create_task(
        new_runs.store(
            db, [new_runs.NewRun(row_values(run), seen="Ev1", in_thread=True, notice="wait")]
        )
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert not storing.done()
    assert await runs.get_run(db, run.id) is None  # reads go on meanwhile
    other.execute("COMMIT")
    other.close()
    (taken,) = await storing
    assert taken.run is not None and not taken.queued
    assert await runs.get_run(db, run.id) is not None
    kinds = [e.kind for e in await runs.events(db, run.id)]
    assert kinds == [EventKind.RUN_CREATED]
    await db.dispose()


async def test_a_guarded_batch_writes_everything_or_nothing(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    tasks, runs_ = TaskRow.__table__, Run.__table__  # type: ignore[attr-defined]
    guard = (
        update(tasks)
        .where(tasks.c.run_id == run.id, tasks.c.task_id == "a", tasks.c.status == "pending")
        .values(attempts=tasks.c.attempts + 1)
    )

    def batch(note: str) -> list[Write]:
        # Two changes of one row in a batch: PostgreSQL could not make both in one statement.
        return [
            Write(guard, must_change=True),
            Write(update(runs_).where(runs_.c.id == run.id).values(wakeups=runs_.c.wakeups + 1)),
            Write(update(runs_).where(runs_.c.id == run.id).values(context=note)),
            *[
                Write(Event.__table__.insert(), rows)  # type: ignore[attr-defined]
                for rows in (
                    [{"run_id": run.id, "kind": "note", "data": {"n": i}} for i in (1, 2)],
                )
            ],
        ]

    assert await any_db.write(*batch("first"))
    await run_states.task_started(any_db, run.id, "a", attempt=2)  # the guard no longer holds
    assert not await any_db.write(*batch("second"))
    task = await runs.get_task(any_db, run.id, "a")
    stored = await runs.get_run(any_db, run.id)
    assert task is not None and stored is not None
    assert task.attempts == 2 and stored.wakeups == 1 and stored.context == "first"
    notes = [e.data for e in await runs.events(any_db, run.id) if e.kind == "note"]
    assert notes == [{"n": 1}, {"n": 2}]


async def test_a_batch_the_database_refuses_fails_as_sqlalchemy_says_and_writes_nothing(
    any_db: Database,
) -> None:
    """Batches go to the driver directly (`storage.driver`): SQLAlchemy executes nothing of
    them. What the database refuses is raised as SQLAlchemy raises it, and the batch is
    undone."""
    run = await _run_with_task(any_db)
    tasks, events = TaskRow.__table__, Event.__table__  # type: ignore[attr-defined]
    guard = (
        update(tasks)
        .where(tasks.c.run_id == run.id, tasks.c.task_id == "a")
        .values(attempts=tasks.c.attempts + bindparam("v_more"))
    )
    note = {"run_id": run.id, "at": utcnow(), "kind": "note", "task_id": None, "data": {"n": 1}}
    again = [
        row_values(TaskRow(run_id=run.id, task_id="b", agent="x", instruction="new")),
        row_values(TaskRow(run_id=run.id, task_id="a", agent="x", instruction="twice")),
    ]
    batch = [
        Write(guard, {"v_more": 1}, must_change=True),
        Write(events.insert(), note),
        Write(tasks.insert(), again),
    ]
    with statements(any_db) as sent_by_sqlalchemy:
        with pytest.raises(IntegrityError):
            await any_db.write(*batch)
        # A value the column's type refuses: SQLAlchemy's own error, before anything is sent.
        with pytest.raises(StatementError, match="'slack' is not a valid RunSource"):
            await any_db.write(
                Write(
                    update(Run.__table__).where(Run.__table__.c.id == run.id).values(source="slack")
                )  # type: ignore[attr-defined]
            )
    assert sent_by_sqlalchemy == []
    task = await runs.get_task(any_db, run.id, "a")
    assert task is not None and task.attempts == 0 and task.instruction != "twice"
    assert await runs.get_task(any_db, run.id, "b") is None
    assert [e for e in await runs.events(any_db, run.id) if e.kind == "note"] == []


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement SQLAlchemy executes on the database's engines meanwhile."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    for engine in db.engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in db.engines:
            event.remove(engine, "before_cursor_execute", record)


async def _drop_connections(pg_url: str) -> None:
    """PostgreSQL ends every connection to the test's database, as a restart would."""
    import asyncpg

    base, name = pg_url.rsplit("/", 1)
    admin = await asyncpg.connect(f"{base.replace('postgresql://', 'postgres://')}/postgres")
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
    finally:
        await admin.close()


async def test_a_move_on_a_cut_connection_fails_as_an_outage_and_is_made_once_after(
    pg_url: str,
) -> None:
    """A move sent to asyncpg directly, on a connection PostgreSQL dropped, fails as an
    outage (the drive lets go and the run is resumed); the next move gets a new
    connection and is made once."""
    from storage.db import is_unavailable

    db = Database(pg_url)
    try:
        run = await _run_with_task(db)
        await run_states.note(db, run.id, EventKind.TASK_PROGRESS, task_id="a")  # in use
        await _drop_connections(pg_url)

        with pytest.raises(Exception) as cut:
            await run_states.task_started(db, run.id, "a", attempt=1)
        assert is_unavailable(cut.value)
        task = await runs.get_task(db, run.id, "a")
        assert task is not None and task.status == TaskStatus.PENDING
        await run_states.task_started(db, run.id, "a", attempt=1)
        task = await runs.get_task(db, run.id, "a")
        assert task is not None and task.status == TaskStatus.RUNNING
        kinds = [e.kind for e in await runs.events(db, run.id)]
        assert kinds.count(EventKind.TASK_STARTED) == 1
    finally:
        await db.dispose()


async def test_a_slack_event_id_is_accepted_once(any_db: Database) -> None:
    results = await asyncio.gather(
        *[slack_events.first_sighting(any_db, "Ev123") for _ in range(5)]
    )
    assert sorted(results) == [False, False, False, False, True]


async def test_only_one_drive_holds_a_run_lease(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    first = await runs.acquire_lease(any_db, run.id, "p1:1", seconds=30)
    assert first is not None
    assert await runs.acquire_lease(any_db, run.id, "p2:1", seconds=30) is None
    # The same process gets no second lease either: every drive has its own token.
    assert await runs.acquire_lease(any_db, run.id, "p1:2", seconds=30) is None
    assert not (await runs.release_lease(any_db, first)).nudged
    assert await runs.acquire_lease(any_db, run.id, "p2:1", seconds=30) is not None


async def test_concurrent_drives_of_one_run_get_one_lease(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    leases = await asyncio.gather(
        *[runs.acquire_lease(any_db, run.id, f"p:{i}", seconds=30) for i in range(10)]
    )
    assert len([lease for lease in leases if lease is not None]) == 1


async def test_a_nudge_during_a_drive_is_seen_when_it_lets_go(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    lease = await runs.acquire_lease(any_db, run.id, "p:1", seconds=30)
    assert lease is not None
    await runs.nudge(any_db, run.id)
    assert (await runs.release_lease(any_db, lease)).nudged
    quiet = await runs.acquire_lease(any_db, run.id, "p:2", seconds=30)
    assert quiet is not None and not (await runs.release_lease(any_db, quiet)).nudged


async def test_taking_a_runs_lease_gives_the_run_as_it_is_under_it(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    claimed = await runs.nudge_and_acquire(any_db, run.id, "p:1", seconds=30)
    assert claimed is not None
    lease, row = claimed
    assert lease.token == "p:1" and lease.wakeups == 1  # the nudge is counted
    assert row.id == run.id and row.request == "check" and row.thread_ts == "1.0"
    assert row.lease_owner == "p:1" and row.wakeups == 1
    assert row.status == RunStatus.RUNNING and row.plan == {"title": "t", "tasks": []}
    # Held: a second caller nudges it and gets neither the lease nor the row.
    assert await runs.nudge_and_acquire(any_db, run.id, "p:2", seconds=30) is None
    assert (await runs.release_lease(any_db, lease)).nudged


async def test_letting_go_of_an_ended_run_names_the_message_that_waited_for_it(
    any_db: Database,
) -> None:
    run = await _run_with_task(any_db)
    follower = await runs.create_run(
        any_db,
        Run(
            id=runs.new_id(),
            request="next",
            channel_id="C1",
            thread_ts="1.0",
            follows_run_id=run.id,
        ),
    )
    assert follower is not None
    lease = await runs.acquire_lease(any_db, run.id, "p:1", seconds=30)
    assert lease is not None
    # Still going: its follower waits, and letting go does not name it.
    assert await runs.release_lease(any_db, lease) == runs.Released(nudged=False, follower=None)
    lease = await runs.acquire_lease(any_db, run.id, "p:2", seconds=30)
    assert lease is not None
    await run_states.run_ended(
        any_db, run.id, EventKind.RUN_FINISHED, RunStatus.SUCCEEDED, answer="done"
    )
    assert await runs.release_lease(any_db, lease) == runs.Released(
        nudged=False, follower=follower.id
    )
    # A lease that lapsed and was taken by another driver: the run is read as it is.
    lapsed = runs.Lease(run_id=run.id, token="p:gone", wakeups=lease.wakeups)
    assert await runs.release_lease(any_db, lapsed) == runs.Released(
        nudged=False, follower=follower.id
    )


async def test_a_lost_lease_is_not_renewed_and_a_stop_request_is_reported(
    any_db: Database,
) -> None:
    run = await _run_with_task(any_db)
    lease = await runs.acquire_lease(any_db, run.id, "p:1", seconds=30)
    assert lease is not None
    assert await runs.request_cancel(any_db, run.id, "U1")
    assert not await runs.request_cancel(any_db, run.id, "U2")  # the first Stop stands
    check = await runs.renew_lease(any_db, lease, seconds=30)
    assert check.held and check.cancel_requested_by == "U1"
    await runs.release_lease(any_db, lease)
    assert await runs.acquire_lease(any_db, run.id, "p:2", seconds=30) is not None
    assert not (await runs.renew_lease(any_db, lease, seconds=30)).held


async def test_leases_renewed_together_say_which_are_held_and_which_runs_were_stopped(
    any_db: Database,
) -> None:
    held, lost, stopped = [await _run_with_task(any_db) for _ in range(3)]
    leases = [
        await runs.acquire_lease(any_db, r.id, f"p:{r.id}", seconds=1)
        for r in (held, lost, stopped)
    ]
    assert all(leases)
    keep, gone, asked = [lease for lease in leases if lease is not None]
    await runs.release_lease(any_db, gone)
    assert await runs.acquire_lease(any_db, lost.id, "elsewhere:1", seconds=30)
    assert await runs.request_cancel(any_db, stopped.id, "U1")
    checks = await runs.renew_leases(any_db, [keep, gone, asked], seconds=60)
    assert checks == {
        keep.token: runs.LeaseCheck(held=True),
        asked.token: runs.LeaseCheck(held=True, cancel_requested_by="U1"),
    }
    # Renewed: nobody else can take them now; the lost one stays with its new owner.
    assert await runs.acquire_lease(any_db, held.id, "late:1", seconds=30) is None
    other = await runs.get_run(any_db, lost.id)
    assert other is not None and other.lease_owner == "elsewhere:1"


async def test_an_expired_lease_can_be_taken_over(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    assert await runs.acquire_lease(any_db, run.id, "dead:1", seconds=-1)
    assert await runs.acquire_lease(any_db, run.id, "alive:1", seconds=30)


async def _approval(
    db: Database, run: Run, *, expires_in: timedelta = timedelta(hours=1)
) -> Approval:
    return await approvals.create(
        db,
        Approval(
            id=approvals.new_approval_id(),
            run_id=run.id,
            task_id="a",
            kind="task",
            expires_at=utcnow() + expires_in,
            approvers=["U1"],
        ),
        task_fields={"status": TaskStatus.WAITING},
    )


async def test_concurrent_decisions_record_exactly_one(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    approval = await _approval(any_db, run)
    results = await asyncio.gather(
        approvals.decide(any_db, approval.id, approve=True, by="U1"),
        approvals.decide(any_db, approval.id, approve=False, by="U2"),
        approvals.decide(any_db, approval.id, approve=True, by="U3"),
    )
    winners = [r for r in results if r is not None and r.won]
    assert len(winners) == 1
    stored = await approvals.get(any_db, approval.id)
    assert stored is not None and stored.decided_by == winners[0].approval.decided_by
    decided_events = [
        e
        for e in await runs.events(any_db, run.id)
        if e.kind.startswith("approval_") and e.kind != "approval_requested"
    ]
    assert len(decided_events) == 1


async def test_an_expired_approval_cannot_be_decided_and_is_swept(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    approval = await _approval(any_db, run, expires_in=timedelta(seconds=-1))
    result = await approvals.decide(any_db, approval.id, approve=True, by="U1")
    assert result is not None and not result.won
    swept = await approvals.expire_due(any_db)
    assert [a.id for a in swept] == [approval.id]
    stored = await approvals.get(any_db, approval.id)
    assert stored is not None and stored.status == ApprovalStatus.EXPIRED
    assert await approvals.expire_due(any_db) == []


async def test_kinds_are_stored_as_their_plain_values_and_read_back_as_members(
    any_db: Database,
) -> None:
    run = await runs.create_run(
        any_db, Run(id=runs.new_id(), source=RunSource.FOLLOW_UP, request="and now?")
    )
    assert run is not None
    await run_states.run_started(
        any_db, run.id, driver="test", deadline_at=utcnow(), budget_usd=None
    )
    await run_states.plan_ready(
        any_db,
        run.id,
        {"title": "t", "tasks": []},
        [TaskRow(run_id=run.id, task_id="a", agent="web-checker", instruction="go")],
    )
    approval = await _approval(any_db, run)

    stored = await runs.get_run(any_db, run.id)
    assert stored is not None and stored.source is RunSource.FOLLOW_UP
    gate = await approvals.get(any_db, approval.id)
    assert gate is not None and gate.kind is ApprovalKind.TASK
    async with any_db.session() as s:
        source = await s.scalar(text("SELECT source FROM runs WHERE id = :id"), {"id": run.id})
        kind = await s.scalar(text("SELECT kind FROM approvals WHERE id = :id"), {"id": gate.id})
    # The columns hold what they always held, so older rows and other readers stay valid.
    assert (source, kind) == ("follow-up", "task")


async def test_a_source_outside_the_known_set_is_not_stored(any_db: Database) -> None:
    with pytest.raises(StatementError, match="'slack' is not a valid RunSource"):
        await runs.create_run(any_db, Run(id=runs.new_id(), source="slack", request="x"))


async def test_a_side_effect_is_claimed_once(any_db: Database) -> None:
    run = await _run_with_task(any_db)
    claims = await asyncio.gather(
        *[
            tool_calls.claim(any_db, "k1", run_id=run.id, task_id="a", tool="post_message", args={})
            for _ in range(4)
        ]
    )
    assert sum(1 for c in claims if c is None) == 1
    await tool_calls.complete(any_db, "k1", result="posted")
    again = await tool_calls.claim(
        any_db, "k1", run_id=run.id, task_id="a", tool="post_message", args={}
    )
    assert again is not None and again.result == "posted"


async def test_a_statement_on_a_cut_connection_fails_as_an_outage_and_the_next_reconnects(
    pg_url: str,
) -> None:
    """Single statements go through connections the process keeps open: one that PostgreSQL
    dropped fails its statement as an outage (the caller lets go and resumes later), and the
    next statement gets a new connection."""
    from storage.db import is_unavailable

    db = Database(pg_url)
    try:
        run = await runs.create_run(db, Run(id=runs.new_id(), request="x"))
        assert run is not None
        outcome = await runs.outcome_of(db, run.id)
        assert outcome is not None and outcome.status == RunStatus.QUEUED
        await _drop_connections(pg_url)

        with pytest.raises(Exception) as cut:
            await runs.outcome_of(db, run.id)
        assert is_unavailable(cut.value)
        outcome = await runs.outcome_of(db, run.id)
        assert outcome is not None and outcome.status == RunStatus.QUEUED
        lease = await runs.acquire_lease(db, run.id, "t", seconds=5)
        assert lease is not None and not (await runs.release_lease(db, lease)).nudged
    finally:
        await db.dispose()


async def test_a_schedule_fires_run_whose_id_is_taken_already_is_stored_under_a_new_one(
    any_db: Database,
) -> None:
    taken = await runs.create_run(any_db, Run(id=runs.new_id(), request="stored before"))
    assert taken is not None
    schedule = await schedules.create(
        any_db,
        Schedule(
            id=schedules.new_schedule_id(),
            channel_id="C1",
            when_text="every 5 minutes",
            kind=ScheduleKind.INTERVAL,
            interval_seconds=300,
            request="check the site",
        ),
    )
    fire = await schedules.claim(any_db, ScheduleFire(schedule_id=schedule.id, fire_time=utcnow()))
    assert fire is not None and fire.id is not None
    run = Run(id=taken.id, request=schedule.request, schedule_id=schedule.id, channel_id="C1")

    stored = await schedules.start_run(any_db, fire.id, run)

    assert stored.id != taken.id
    again = await runs.get_run(any_db, stored.id)
    assert again is not None and again.request == "check the site"
    linked = await schedules.get_fire(any_db, fire.id)
    assert linked is not None and linked.run_id == stored.id
    before = await runs.get_run(any_db, taken.id)
    assert before is not None and before.request == "stored before"

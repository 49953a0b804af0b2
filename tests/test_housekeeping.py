"""The sweep scales with the database, not with the number of runs, and forgets what it may."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, update

from bot.transports import sweep
from orchestration.engine import runs_to_drive
from sandbox.web_api import SlackStandIn
from storage import Database, approvals, run_states, runs, slack_events
from storage.db import utcnow
from storage.models import (
    Approval,
    Run,
    RunStatus,
    SeenSlackEvent,
    TaskRow,
)
from testkit.harness import running_bot


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the database is sent meanwhile."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def waiting_run(db: Database, *, decided: bool) -> str:
    run = await runs.create_run(db, Run(id=runs.new_id(), request="x"))
    assert run is not None
    await run_states.run_started(db, run.id, driver="test", deadline_at=utcnow(), budget_usd=None)
    await run_states.plan_ready(
        db,
        run.id,
        {"title": "t"},
        [TaskRow(run_id=run.id, task_id="a", agent="x", instruction="x")],
    )
    await run_states.run_waiting(db, run.id)
    approval = await approvals.create(
        db,
        Approval(
            id=approvals.new_approval_id(),
            run_id=run.id,
            task_id="a",
            kind="task",
            expires_at=utcnow() + timedelta(hours=1),
            approvers=["U1"],
        ),
        task_fields={},
    )
    if decided:
        await approvals.decide(db, approval.id, approve=True, by="U1")
    return run.id


async def test_finding_what_to_resume_takes_two_queries_however_many_runs_wait(
    any_db: Database,
) -> None:
    decided = [await waiting_run(any_db, decided=True) for _ in range(5)]
    undecided = [await waiting_run(any_db, decided=False) for _ in range(15)]
    abandoned = await runs.create_run(
        any_db, Run(id=runs.new_id(), request="y", status=RunStatus.RUNNING)
    )
    assert abandoned is not None

    with statements(any_db) as sent:
        due = await runs_to_drive(any_db)

    assert [s.split()[0] for s in sent if s.split()[0] == "SELECT"] == ["SELECT", "SELECT"]
    assert set(due.run_ids) == {*decided, abandoned.id}
    assert not set(due.run_ids) & set(undecided)


async def test_a_run_driven_elsewhere_is_left_to_its_driver_until_its_lease_lapses(
    any_db: Database,
) -> None:
    run = await runs.create_run(
        any_db, Run(id=runs.new_id(), request="y", status=RunStatus.RUNNING)
    )
    assert run is not None
    lease = await runs.acquire_lease(any_db, run.id, "elsewhere:1", seconds=30)
    assert lease is not None
    due = await runs_to_drive(any_db)
    assert run.id not in due.run_ids and due.next_check is not None
    assert lease and due.next_check > utcnow() + timedelta(seconds=25)


async def test_the_sweep_forgets_slack_ids_seen_more_than_a_day_ago(sqlite_url: str) -> None:
    async with SlackStandIn() as slack, running_bot(slack, sqlite_url) as bot:
        db = bot.baton.db
        assert await slack_events.first_sighting(db, "Ev0OLD")
        assert await slack_events.first_sighting(db, "Ev0NEW")
        async with db.session() as s:
            await s.exec(
                update(SeenSlackEvent)
                .where(SeenSlackEvent.event_id == "Ev0OLD")  # type: ignore[arg-type]
                .values(seen_at=utcnow() - timedelta(hours=25))
            )
        await sweep(bot.baton)
        assert await slack_events.first_sighting(db, "Ev0OLD")  # forgotten, so new again
        assert not await slack_events.first_sighting(db, "Ev0NEW")  # still remembered

"""The run state machine: every move is legal only from its states, and an illegal one writes
nothing (no row change, no event)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from storage import Database, outbox, run_states, runs
from storage.db import utcnow
from storage.models import DeliveryPurpose, EventKind, Run, RunStatus, TaskRow, TaskStatus
from storage.run_states import RUN_MOVES, TASK_MOVES, IllegalTransition


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/states.db")
    await database.create_all()
    yield database
    await database.dispose()


async def a_run(db: Database, status: RunStatus, tasks: dict[str, TaskStatus]) -> str:
    """A run and its tasks, put straight into the given states (the set-up, not a move)."""
    run = await runs.create_run(db, Run(id=runs.new_id(), request="x"))
    assert run is not None
    async with db.session() as s:
        for i, (task_id, task_status) in enumerate(tasks.items()):
            s.add(
                TaskRow(
                    run_id=run.id,
                    task_id=task_id,
                    position=i,
                    agent="a",
                    instruction="i",
                    status=task_status,
                )
            )
        await s.exec(update(Run).where(Run.id == run.id).values(status=status))  # type: ignore[arg-type]
    return run.id


async def task_move(db: Database, run_id: str, task_id: str, kind: EventKind) -> None:
    """Make the named move `kind` through its own function."""
    calls: dict[EventKind, Any] = {
        EventKind.TASK_STARTED: lambda: run_states.task_started(db, run_id, task_id, attempt=1),
        EventKind.TASK_SUCCEEDED: lambda: run_states.task_finished(
            db, run_id, task_id, TaskStatus.SUCCEEDED, output="o", error=None, model="m"
        ),
        EventKind.TASK_UNVERIFIED: lambda: run_states.task_finished(
            db, run_id, task_id, TaskStatus.UNVERIFIED, output="o", error="e", model="m"
        ),
        EventKind.TASK_FAILED: lambda: run_states.task_failed(db, run_id, task_id, "e"),
        EventKind.TASK_REJECTED: lambda: run_states.task_rejected(db, run_id, task_id, "no"),
        EventKind.TASK_SKIPPED: lambda: run_states.task_skipped(db, run_id, task_id, "e"),
        EventKind.TASK_STOPPED: lambda: run_states.task_stopped(
            db, run_id, task_id, TaskStatus.SKIPPED, "deadline"
        ),
        EventKind.TASK_CANCELLED: lambda: run_states.task_cancelled(db, run_id, task_id, "stop"),
        EventKind.TASK_REQUEUED: lambda: run_states.task_requeued(db, run_id, task_id),
        EventKind.APPROVAL_REQUESTED: lambda: run_states.move_task(
            db, run_id, task_id, EventKind.APPROVAL_REQUESTED, TaskStatus.WAITING
        ),
        EventKind.APPROVAL_APPLIED: lambda: run_states.approval_applied(
            db, run_id, task_id, TaskStatus.PENDING, data={}
        ),
    }
    assert set(calls) == set(TASK_MOVES), "every task move is tried"
    await calls[kind]()


async def run_move(db: Database, run_id: str, kind: EventKind) -> None:
    calls: dict[EventKind, Any] = {
        EventKind.RUN_STARTED: lambda: run_states.run_started(
            db, run_id, driver="d", deadline_at=utcnow(), budget_usd=None
        ),
        EventKind.PLAN_READY: lambda: run_states.plan_ready(db, run_id, {"title": "t"}, []),
        EventKind.RUN_RESUMED: lambda: run_states.run_resumed(
            db, run_id, driver="d", deadline_at=utcnow()
        ),
        EventKind.RUN_WAITING: lambda: run_states.run_waiting(db, run_id),
        EventKind.RUN_FINISHED: lambda: run_states.run_ended(
            db, run_id, EventKind.RUN_FINISHED, RunStatus.SUCCEEDED, answer="a"
        ),
        EventKind.RUN_FAILED: lambda: run_states.run_ended(
            db, run_id, EventKind.RUN_FAILED, RunStatus.FAILED, answer="a", error="e"
        ),
        EventKind.RUN_CANCELLED: lambda: run_states.run_ended(
            db, run_id, EventKind.RUN_CANCELLED, RunStatus.CANCELLED, answer="a"
        ),
    }
    assert set(calls) == set(RUN_MOVES), "every run move is tried"
    await calls[kind]()


async def kinds(db: Database, run_id: str) -> list[str]:
    return [e.kind for e in await runs.events(db, run_id)]


@pytest.mark.parametrize("kind", list(TASK_MOVES), ids=str)
async def test_a_task_move_from_a_state_it_does_not_allow_changes_nothing(
    db: Database, kind: EventKind
) -> None:
    move = TASK_MOVES[kind]
    illegal = [s for s in TaskStatus if s not in move.sources]
    assert illegal, "every move is illegal from somewhere (the final states at least)"
    run_id = await a_run(db, RunStatus.RUNNING, {s.value: s for s in illegal})
    before = await kinds(db, run_id)
    for status in illegal:
        with pytest.raises(IllegalTransition, match=f"{kind}: task {status.value} .* is {status}"):
            await task_move(db, run_id, status.value, kind)
        task = await runs.get_task(db, run_id, status.value)
        assert task is not None and task.status == status
    assert await kinds(db, run_id) == before  # no event for a move that was not made


@pytest.mark.parametrize("kind", list(TASK_MOVES), ids=str)
async def test_a_task_move_from_each_allowed_state_is_stored_with_its_event(
    db: Database, kind: EventKind
) -> None:
    move = TASK_MOVES[kind]
    run_id = await a_run(db, RunStatus.RUNNING, {s.value: s for s in move.sources})
    for status in move.sources:
        await task_move(db, run_id, status.value, kind)
        task = await runs.get_task(db, run_id, status.value)
        assert task is not None and task.status in move.targets
        assert task.status.is_final == (task.finished_at is not None)
    events = [e for e in await runs.events(db, run_id) if e.task_id]
    assert sorted((e.task_id or "", e.kind) for e in events) == sorted(
        (s.value, kind.value) for s in move.sources
    )


@pytest.mark.parametrize("kind", list(RUN_MOVES), ids=str)
async def test_a_run_move_from_a_state_it_does_not_allow_changes_nothing(
    db: Database, kind: EventKind
) -> None:
    move = RUN_MOVES[kind]
    for status in [s for s in RunStatus if s not in move.sources]:
        run_id = await a_run(db, status, {})
        with pytest.raises(IllegalTransition, match=f"{kind}: run {run_id} is {status}"):
            await run_move(db, run_id, kind)
        stored = await runs.get_run(db, run_id)
        assert stored is not None and stored.status == status and stored.answer is None
        assert await kinds(db, run_id) == ["run_created"]


@pytest.mark.parametrize("kind", list(RUN_MOVES), ids=str)
async def test_a_run_move_from_each_allowed_state_is_stored_with_its_event(
    db: Database, kind: EventKind
) -> None:
    for status in RUN_MOVES[kind].sources:
        run_id = await a_run(db, status, {})
        await run_move(db, run_id, kind)
        stored = await runs.get_run(db, run_id)
        assert stored is not None and stored.status in RUN_MOVES[kind].targets
        assert await kinds(db, run_id) == ["run_created", kind.value]


async def test_a_move_to_a_state_it_does_not_lead_to_is_refused(db: Database) -> None:
    run_id = await a_run(db, RunStatus.RUNNING, {"a": TaskStatus.PENDING})
    with pytest.raises(IllegalTransition, match="this move needs it"):
        await run_states.move_task(db, run_id, "a", EventKind.TASK_STARTED, TaskStatus.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        await run_states.run_ended(
            db, run_id, EventKind.RUN_CANCELLED, RunStatus.SUCCEEDED, answer="a"
        )
    assert await kinds(db, run_id) == ["run_created"]


async def test_a_move_of_a_task_that_does_not_exist_says_so(db: Database) -> None:
    run_id = await a_run(db, RunStatus.RUNNING, {})
    with pytest.raises(IllegalTransition, match="does not exist"):
        await run_states.task_started(db, run_id, "ghost", attempt=1)


async def test_two_drivers_cannot_both_start_one_task(db: Database) -> None:
    run_id = await a_run(db, RunStatus.RUNNING, {"a": TaskStatus.PENDING})
    await run_states.task_started(db, run_id, "a", attempt=1)
    with pytest.raises(IllegalTransition, match="is running"):
        await run_states.task_started(db, run_id, "a", attempt=1)
    started = [e for e in await runs.events(db, run_id) if e.kind == EventKind.TASK_STARTED]
    assert len(started) == 1


async def test_a_note_cannot_stand_in_for_a_move(db: Database) -> None:
    run_id = await a_run(db, RunStatus.RUNNING, {})
    with pytest.raises(IllegalTransition, match="is a note"):
        await run_states.note(db, run_id, EventKind.TASK_SUCCEEDED, task_id="a")
    await run_states.note(db, run_id, EventKind.TOOL_RESULT, task_id="a", data={"ok": True})
    assert await kinds(db, run_id) == ["run_created", "tool_result"]


async def test_a_run_move_with_its_tasks_and_answer_is_all_or_nothing_on_both_databases(
    any_db: Database,
) -> None:
    """On PostgreSQL a run's move is one statement (its row, its event, the plan's tasks, the
    answer's outbox row), on SQLite a short transaction: either way, all of it or none."""
    run = await runs.create_run(any_db, Run(id=runs.new_id(), request="x"))
    assert run is not None
    await run_states.run_started(any_db, run.id, driver="d", deadline_at=utcnow(), budget_usd=None)
    tasks = [
        TaskRow(run_id=run.id, task_id=f"t{i}", position=i, agent="a", instruction="i")
        for i in range(3)
    ]
    await run_states.plan_ready(any_db, run.id, {"title": "Plan"}, tasks)
    answer = outbox.new(run.id, DeliveryPurpose.ANSWER)
    await run_states.run_ended(
        any_db, run.id, EventKind.RUN_FINISHED, RunStatus.SUCCEEDED, answer="done", deliver=answer
    )

    # Ended: it cannot end again, and nothing of the second end is written.
    again = outbox.new(run.id, DeliveryPurpose.ANSWER, data={"second": True})
    with pytest.raises(IllegalTransition) as refused:
        await run_states.run_ended(
            any_db, run.id, EventKind.RUN_FAILED, RunStatus.FAILED, answer=None, deliver=again
        )
    assert refused.value.current == RunStatus.SUCCEEDED

    stored = await runs.get_run(any_db, run.id)
    assert stored is not None and (stored.status, stored.answer) == (RunStatus.SUCCEEDED, "done")
    assert [t.task_id for t in await runs.list_tasks(any_db, run.id)] == ["t0", "t1", "t2"]
    kinds = [e.kind for e in await runs.events(any_db, run.id)]
    assert kinds.count(EventKind.RUN_FINISHED) == 1 and EventKind.RUN_FAILED not in kinds
    assert [d.data for d in await outbox.for_run(any_db, run.id)] == [{}]


async def test_two_adding_one_delivery_at_once_leave_one_row_and_neither_fails(
    any_db: Database,
) -> None:
    """Two drivers of a slash command's run add its request message at once (each read
    that none was there): one adds it, the other is told it was there, and nothing raises."""
    run = await runs.create_run(any_db, Run(id=runs.new_id(), request="x"))
    assert run is not None

    added = await asyncio.gather(
        *(
            outbox.add_once(any_db, outbox.new(run.id, DeliveryPurpose.REQUEST, data={"n": n}))
            for n in range(4)
        )
    )

    assert sorted(added) == [False, False, False, True]
    assert len(await outbox.for_run(any_db, run.id)) == 1


async def test_an_answer_already_queued_is_not_queued_twice(any_db: Database) -> None:
    """The answer's outbox row is added unless one for the same run, purpose and ref is there
    (a retried end after a crash): the end is still made, once."""
    run = await runs.create_run(any_db, Run(id=runs.new_id(), request="x"))
    assert run is not None
    await outbox.add_once(any_db, outbox.new(run.id, DeliveryPurpose.ANSWER, data={"n": 1}))

    await run_states.run_ended(
        any_db,
        run.id,
        EventKind.RUN_FAILED,
        RunStatus.FAILED,
        answer=None,
        error="e",
        deliver=outbox.new(run.id, DeliveryPurpose.ANSWER, data={"n": 2}),
    )

    stored = await runs.get_run(any_db, run.id)
    assert stored is not None and stored.status == RunStatus.FAILED
    assert [d.data for d in await outbox.for_run(any_db, run.id)] == [{"n": 1}]

"""The run state machine: every change of a run's or a task's status is one of these moves.

Each move is named after what happened (`task_started`, `task_succeeded`, `run_cancelled`,
…). It is legal only from the states listed for it, and that is checked in the UPDATE itself
(`… WHERE status IN (<from>)`), so two drivers, a replica or a replayed request can never both
make it. The row, its audit event and, where there is one, what to show people about it (an
outbox row) are written in one transaction (one statement on PostgreSQL: `storage.writes`);
the move returns what it changed. An illegal move raises `IllegalTransition` and writes
nothing.

Tasks::

    pending ──started──▶ running ──succeeded | unverified | failed | rejected──▶ (final)
       │  ▲                │  │
       │  └───requeued─────┘  └──approval_requested──▶ waiting
       │                                                │
       ├──approval_requested──▶ waiting ──approval_applied──▶ pending | succeeded
       └──skipped | rejected         └──rejected | skipped | cancelled | stopped──▶ (final)

Runs::

    queued ──started──▶ planning ──plan_ready──▶ running ◀──resumed── waiting
                                                  │   └────waiting────▶
                                                  └──finished──▶ succeeded | partial | failed
    (any unfinished) ──failed | cancelled──▶ (final)

Notes that change no state (a tool's result, a model that took over) are `note`s.
Statements here are Core, not ORM: they run several times per task.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Update, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, utcnow
from storage.errors import StorageError
from storage.models import Delivery, Event, EventKind, Run, RunStatus, TaskRow, TaskStatus
from storage.runs import Spend, adding, usage_params, usage_writes
from storage.writes import Write, insert_into, insert_row, new_row, row_values, write_in

_RUNS = Run.__table__  # type: ignore[attr-defined]
_TASKS = TaskRow.__table__  # type: ignore[attr-defined]
_EVENTS = Event.__table__  # type: ignore[attr-defined]

P, R, W = TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.WAITING
UNFINISHED_RUN = frozenset(s for s in RunStatus if not s.is_final)


class IllegalTransition(StorageError):
    """A move from a state it is not allowed from (the row is left as it was)."""

    def __init__(self, what: str, kind: EventKind, current: str | None, allowed: frozenset[Any]):
        self.kind = kind
        self.current = current
        where = "does not exist" if current is None else f"is {current}"
        expected = " or ".join(sorted(str(s) for s in allowed))
        super().__init__(f"{kind}: {what} {where}; this move needs it {expected}")


@dataclass(frozen=True)
class TaskMove:
    """One named move of a task: from which states, to which."""

    kind: EventKind
    sources: frozenset[TaskStatus]
    targets: frozenset[TaskStatus]


@dataclass(frozen=True)
class RunMove:
    kind: EventKind
    sources: frozenset[RunStatus]
    targets: frozenset[RunStatus]


def _task(kind: EventKind, sources: set[TaskStatus], *targets: TaskStatus) -> TaskMove:
    return TaskMove(kind, frozenset(sources), frozenset(targets))


def _run(
    kind: EventKind, sources: set[RunStatus] | frozenset[RunStatus], *targets: RunStatus
) -> RunMove:
    return RunMove(kind, frozenset(sources), frozenset(targets))


T = TaskStatus
TASK_MOVES: dict[EventKind, TaskMove] = {
    m.kind: m
    for m in (
        _task(EventKind.TASK_STARTED, {P}, R),
        _task(EventKind.TASK_SUCCEEDED, {R}, T.SUCCEEDED),
        _task(EventKind.TASK_UNVERIFIED, {R}, T.UNVERIFIED),
        _task(EventKind.TASK_FAILED, {R}, T.FAILED),
        # A verdict on what ran, a person's no, or a refused budget for what had not started.
        _task(EventKind.TASK_REJECTED, {R, W, P}, T.REJECTED),
        _task(EventKind.TASK_SKIPPED, {P, W}, T.SKIPPED),
        _task(EventKind.TASK_STOPPED, {P, R, W}, T.FAILED, T.SKIPPED),
        _task(EventKind.TASK_CANCELLED, {R, W}, T.CANCELLED),
        _task(EventKind.TASK_REQUEUED, {R}, P),
        _task(EventKind.APPROVAL_REQUESTED, {P, R}, W),
        _task(EventKind.APPROVAL_APPLIED, {W}, P, T.SUCCEEDED),
    )
}
RUN_MOVES: dict[EventKind, RunMove] = {
    m.kind: m
    for m in (
        _run(EventKind.RUN_STARTED, {RunStatus.QUEUED, RunStatus.PLANNING}, RunStatus.PLANNING),
        _run(EventKind.PLAN_READY, {RunStatus.PLANNING}, RunStatus.RUNNING),
        _run(EventKind.RUN_RESUMED, {RunStatus.RUNNING, RunStatus.WAITING}, RunStatus.RUNNING),
        _run(EventKind.RUN_WAITING, {RunStatus.RUNNING}, RunStatus.WAITING),
        _run(
            EventKind.RUN_FINISHED,
            {RunStatus.RUNNING},
            RunStatus.SUCCEEDED,
            RunStatus.PARTIAL,
            RunStatus.FAILED,
        ),
        _run(EventKind.RUN_FAILED, UNFINISHED_RUN, RunStatus.FAILED),
        _run(EventKind.RUN_CANCELLED, UNFINISHED_RUN, RunStatus.CANCELLED),
    )
}


@dataclass(frozen=True)
class TaskMoved:
    """A task's move as stored."""

    kind: EventKind
    run_id: str
    task_id: str
    status: TaskStatus
    at: datetime


@dataclass(frozen=True)
class RunMoved:
    kind: EventKind
    run_id: str
    status: RunStatus
    at: datetime


# ---- tasks -------------------------------------------------------------------------------


async def task_started(db: Database, run_id: str, task_id: str, *, attempt: int) -> TaskMoved:
    """The specialist starts on the task (its `attempt`-th time)."""
    return await move_task(
        db,
        run_id,
        task_id,
        EventKind.TASK_STARTED,
        TaskStatus.RUNNING,
        fields={"attempts": attempt},
        started=True,
        data={"attempt": attempt},
    )


async def task_finished(
    db: Database,
    run_id: str,
    task_id: str,
    status: TaskStatus,
    *,
    output: str,
    error: str | None,
    model: str | None,
    usage: Sequence[Spend] = (),
) -> TaskMoved:
    """The specialist answered; `status` is the verdict on it (succeeded, unverified, failed,
    rejected). The suspended conversation, if any, is no longer needed. `usage`: the task's
    model calls not stored yet, stored with the move."""
    kind = EventKind(f"task_{status.value}")
    data: dict[str, Any] = {"model": model}
    if error:
        data = {"error": error, "model": model}
    return await move_task(
        db,
        run_id,
        task_id,
        kind,
        status,
        fields={"output": output, "error": error or None, "model": model, "transcript": None},
        finished=True,
        data=data,
        usage=usage,
    )


async def task_failed(
    db: Database, run_id: str, task_id: str, reason: str, *, usage: Sequence[Spend] = ()
) -> TaskMoved:
    """The task could not be done (a timeout, a model or tool server that failed)."""
    kind, status, data = EventKind.TASK_FAILED, TaskStatus.FAILED, {"error": reason}
    return await _ended(db, run_id, task_id, kind, status, reason, data, usage=usage)


async def task_skipped(db: Database, run_id: str, task_id: str, reason: str) -> TaskMoved:
    """Not started: what it needs did not succeed, or the run was stopped first."""
    return await _ended(db, run_id, task_id, EventKind.TASK_SKIPPED, TaskStatus.SKIPPED, reason)


async def task_rejected(
    db: Database, run_id: str, task_id: str, reason: str, *, data: dict[str, Any] | None = None
) -> TaskMoved:
    """A person said no (or a refused budget stops what had not started)."""
    kind, status = EventKind.TASK_REJECTED, TaskStatus.REJECTED
    return await _ended(db, run_id, task_id, kind, status, reason, data)


async def task_stopped(
    db: Database, run_id: str, task_id: str, status: TaskStatus, reason: str
) -> TaskMoved:
    """The run's deadline stopped the task: failed if it ran, skipped if it had not."""
    return await _ended(db, run_id, task_id, EventKind.TASK_STOPPED, status, reason)


async def task_cancelled(db: Database, run_id: str, task_id: str, reason: str) -> TaskMoved:
    """A person stopped the run while the task ran or waited for a decision."""
    kind, status = EventKind.TASK_CANCELLED, TaskStatus.CANCELLED
    return await _ended(db, run_id, task_id, kind, status, reason)


async def _ended(
    db: Database,
    run_id: str,
    task_id: str,
    kind: EventKind,
    status: TaskStatus,
    reason: str,
    data: dict[str, Any] | None = None,
    *,
    usage: Sequence[Spend] = (),
) -> TaskMoved:
    """A move to a final state that did not come from the specialist's answer: why, kept."""
    fields = {"error": reason}
    return await move_task(
        db, run_id, task_id, kind, status, fields=fields, finished=True, data=data, usage=usage
    )


async def task_requeued(
    db: Database, run_id: str, task_id: str, *, why: str | None = None
) -> TaskMoved:
    """A task cut off mid-run (a shutdown, a process that died) goes back to pending."""
    return await move_task(
        db,
        run_id,
        task_id,
        EventKind.TASK_REQUEUED,
        TaskStatus.PENDING,
        data={"why": why} if why else None,
    )


async def approval_applied(
    db: Database,
    run_id: str,
    task_id: str,
    status: TaskStatus,
    *,
    data: dict[str, Any],
    approved: bool = False,
    run: dict[str, Any] | None = None,
) -> TaskMoved:
    """A yes reached the task: it continues (pending), or, for an agent's own question, is
    done. `approved`: the task itself was approved to start. `run`: a raised budget."""
    fields: dict[str, Any] = {"approved": True} if approved else {}
    return await move_task(
        db,
        run_id,
        task_id,
        EventKind.APPROVAL_APPLIED,
        status,
        fields=fields,
        finished=status.is_final,
        data=data,
        run=run,
    )


async def move_task(
    db: Database,
    run_id: str,
    task_id: str,
    kind: EventKind,
    status: TaskStatus,
    *,
    fields: dict[str, Any] | None = None,
    started: bool = False,
    finished: bool = False,
    data: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    usage: Sequence[Spend] = (),
) -> TaskMoved:
    """Make a task move (by its event kind) to `status`, with its event, in one transaction.
    The named moves above are what callers use; this is their one implementation. `usage`:
    model calls of the task to add to it (in the move's own UPDATE), the run and the ledger."""
    now = utcnow()
    writes = [
        *_task_move(run_id, task_id, kind, status, fields, started, finished, data, now, usage),
        *usage_writes(run_id, task_id, usage, task_row=False),
    ]
    if run:
        writes.append(
            Write(update(_RUNS).where(_RUNS.c.id == run_id).values(updated_at=now, **run))
        )
    if not await db.write(*writes):
        async with db.transaction() as conn:
            raise await _illegal(conn, run_id, task_id, kind)
    return TaskMoved(kind=kind, run_id=run_id, task_id=task_id, status=status, at=now)


async def move_task_in(
    conn: AsyncConnection,
    run_id: str,
    task_id: str,
    kind: EventKind,
    status: TaskStatus,
    *,
    fields: dict[str, Any] | None = None,
    started: bool = False,
    finished: bool = False,
    data: dict[str, Any] | None = None,
) -> None:
    """`move_task` inside the caller's transaction (an approval stored with its task's move)."""
    writes = _task_move(run_id, task_id, kind, status, fields, started, finished, data)
    if not await write_in(conn, writes):
        raise await _illegal(conn, run_id, task_id, kind)


def _task_move(
    run_id: str,
    task_id: str,
    kind: EventKind,
    status: TaskStatus,
    fields: dict[str, Any] | None,
    started: bool,
    finished: bool,
    data: dict[str, Any] | None,
    now: datetime | None = None,
    usage: Sequence[Spend] = (),
) -> list[Write]:
    """The move's statements: the task's row, only from a state the move may start from
    (with `usage` added to it), and its event."""
    move = TASK_MOVES[kind]
    if status not in move.targets:
        raise IllegalTransition(f"task {task_id} of run {run_id}", kind, status, move.targets)
    now = now or utcnow()
    fields = fields or {}
    params: dict[str, Any] = {
        "k_run": run_id,
        "k_task": task_id,
        "v_status": status,
        "v_now": now,
        **{f"v_{name}": value for name, value in fields.items()},
    }
    if usage:
        params.update(usage_params(usage))
    statement = _task_update(kind, tuple(fields), started, finished, bool(usage))
    event = {"run_id": run_id, "at": now, "kind": kind, "task_id": task_id, "data": data}
    return [Write(statement, params, must_change=True), Write(_INSERT_EVENT, event)]


async def _illegal(
    conn: AsyncConnection, run_id: str, task_id: str, kind: EventKind
) -> IllegalTransition:
    """Why a task's move touched nothing: the state it is in (or that it does not exist)."""
    where = (_TASKS.c.run_id == run_id, _TASKS.c.task_id == task_id)
    current = (await conn.execute(select(_TASKS.c.status).where(*where))).scalar()
    what = f"task {task_id} of run {run_id}"
    return IllegalTransition(what, kind, current, TASK_MOVES[kind].sources)


_INSERT_EVENT = insert(_EVENTS)


def _fixed(
    states: frozenset[Any], column: Any = _TASKS.c.status, prefix: str = "src"
) -> list[BindParameter[Any]]:
    """A move's source states as one parameter each: a plain list would be expanded into
    the statement's text at every execution."""
    return [bindparam(f"{prefix}_{s.value}", s, type_=column.type) for s in sorted(states)]


@functools.cache
def _run_update(kind: EventKind, fields: tuple[str, ...]) -> Update:
    """A run move's UPDATE, built once per shape, as `_task_update` is for tasks."""
    values: dict[str, Any] = {"status": bindparam("v_status"), "updated_at": bindparam("v_now")}
    values.update({name: bindparam(f"v_{name}", type_=_RUNS.c[name].type) for name in fields})
    sources = _fixed(RUN_MOVES[kind].sources, _RUNS.c.status, "run_src")
    return (
        update(_RUNS)
        .where(_RUNS.c.id == bindparam("k_run"), _RUNS.c.status.in_(sources))
        .values(**values)
    )


@functools.cache
def _task_update(
    kind: EventKind, fields: tuple[str, ...], started: bool, finished: bool, usage: bool
) -> Update:
    """A move's UPDATE, built once per shape (its parameters bound at each use): building
    and looking up a statement costs more than running it, several times per task."""
    values: dict[str, Any] = {"status": bindparam("v_status")}
    values.update({name: bindparam(f"v_{name}") for name in fields})
    if finished:
        values["finished_at"] = bindparam("v_now")
    if started:
        values["started_at"] = func.coalesce(_TASKS.c.started_at, bindparam("v_now"))
    if usage:
        values.update(adding(_TASKS))
    return (
        update(_TASKS)
        .where(
            _TASKS.c.run_id == bindparam("k_run"),
            _TASKS.c.task_id == bindparam("k_task"),
            _TASKS.c.status.in_(_fixed(TASK_MOVES[kind].sources)),
        )
        .values(**values)
    )


# ---- runs --------------------------------------------------------------------------------


async def run_started(
    db: Database, run_id: str, *, driver: str, deadline_at: datetime, budget_usd: float | None
) -> RunMoved:
    """A driver took the run up and plans it."""
    return await move_run(
        db,
        run_id,
        EventKind.RUN_STARTED,
        RunStatus.PLANNING,
        fields={"deadline_at": deadline_at, "budget_usd": budget_usd},
        data={"driver": driver},
    )


def new_task(
    run_id: str,
    task_id: str,
    *,
    position: int,
    agent: str,
    instruction: str,
    depends_on: Sequence[str] = (),
    requires_approval: bool = False,
) -> dict[str, Any]:
    """A planned task's new row, as `plan_ready` stores it: its values without building a
    `TaskRow` (which costs more than storing it, once per task of every plan)."""
    return new_row(
        TaskRow,
        run_id=run_id,
        task_id=task_id,
        position=position,
        agent=agent,
        instruction=instruction,
        depends_on=list(depends_on),
        requires_approval=requires_approval,
    )


async def plan_ready(
    db: Database,
    run_id: str,
    plan: dict[str, Any],
    tasks: Sequence[TaskRow | Mapping[str, Any]],
) -> RunMoved:
    """The plan and its tasks are stored; from here on the run is driven from these rows."""
    return await move_run(
        db,
        run_id,
        EventKind.PLAN_READY,
        RunStatus.RUNNING,
        fields={"plan": plan},
        data=plan,
        tasks=tasks,
    )


async def run_resumed(db: Database, run_id: str, *, driver: str, deadline_at: datetime) -> RunMoved:
    """A driver took up a run that had started before (after a decision, or a restart)."""
    return await move_run(
        db,
        run_id,
        EventKind.RUN_RESUMED,
        RunStatus.RUNNING,
        fields={"deadline_at": deadline_at},
        data={"driver": driver},
    )


async def run_waiting(db: Database, run_id: str) -> RunMoved:
    """Nothing can go on until a person decides."""
    return await move_run(db, run_id, EventKind.RUN_WAITING, RunStatus.WAITING)


async def run_ended(
    db: Database,
    run_id: str,
    kind: EventKind,
    status: RunStatus,
    *,
    answer: str | None,
    error: str | None = None,
    data: dict[str, Any] | None = None,
    deliver: Delivery | None = None,
) -> RunMoved:
    """The run finished (`RUN_FINISHED`), failed (`RUN_FAILED`) or was stopped
    (`RUN_CANCELLED`); its answer and the delivery that shows it are stored with it."""
    fields: dict[str, Any] = {"finished_at": utcnow()}
    if answer is not None:
        fields["answer"] = answer
    if error is not None:
        fields["error"] = error
    return await move_run(db, run_id, kind, status, fields=fields, data=data, deliver=deliver)


async def move_run(
    db: Database,
    run_id: str,
    kind: EventKind,
    status: RunStatus,
    *,
    fields: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    deliver: Delivery | None = None,
    tasks: Sequence[TaskRow | Mapping[str, Any]] = (),
) -> RunMoved:
    """Make a run move to `status`, with its event (and `deliver`, and new `tasks`: rows, or
    their values from `new_task`), in one transaction. The named moves above are what
    callers use."""
    move = RUN_MOVES[kind]
    if status not in move.targets:
        raise IllegalTransition(f"run {run_id}", kind, status, move.targets)
    now = utcnow()
    fields = fields or {}
    params: dict[str, Any] = {
        "k_run": run_id,
        "v_status": status,
        "v_now": now,
        **{f"v_{name}": value for name, value in fields.items()},
    }
    event = {"run_id": run_id, "at": now, "kind": kind, "task_id": None, "data": data}
    writes = [
        Write(_run_update(kind, tuple(fields)), params, must_change=True),
        Write(_INSERT_EVENT, event),
    ]
    if tasks:
        values = [t if isinstance(t, Mapping) else row_values(t) for t in tasks]
        writes.append(Write(insert_into(_TASKS), values))
    if deliver is not None:
        writes.append(insert_row(deliver, unless_there=True, sqlite=db.is_sqlite))
    if not await db.write(*writes):
        async with db.transaction() as conn:
            current = (
                await conn.execute(select(_RUNS.c.status).where(_RUNS.c.id == run_id))
            ).scalar()
        raise IllegalTransition(f"run {run_id}", kind, current, move.sources)
    return RunMoved(kind=kind, run_id=run_id, status=status, at=now)


# ---- notes -------------------------------------------------------------------------------


async def note(
    db: Database,
    run_id: str,
    kind: EventKind,
    *,
    task_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """An event that changes no state: something worth keeping in the run's audit trail."""
    if kind in TASK_MOVES or kind in RUN_MOVES:
        raise IllegalTransition(f"run {run_id}", kind, "a note", frozenset({"a move"}))
    event = {"run_id": run_id, "at": utcnow(), "kind": kind, "task_id": task_id, "data": data}
    await db.write(Write(_INSERT_EVENT, event))

"""Runs, their tasks and their audit trail: storing new runs, reading them, leases.

Status changes are the run state machine's (`storage.run_states`): each writes its row and
its event in one transaction, so what Slack later shows has always been written first.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    Float,
    Integer,
    Table,
    bindparam,
    case,
    func,
    or_,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select

from storage import slack_events
from storage.db import Database, utcnow
from storage.models import (
    Delivery,
    Event,
    EventKind,
    ModelUsage,
    Run,
    RunStatus,
    TaskRow,
)
from storage.writes import Write, insert_into, new_row, row_values

_RUNS = Run.__table__  # type: ignore[attr-defined]
_TASKS = TaskRow.__table__  # type: ignore[attr-defined]
_USAGE = ModelUsage.__table__  # type: ignore[attr-defined]
_EVENTS = Event.__table__  # type: ignore[attr-defined]
_OUTBOX = Delivery.__table__  # type: ignore[attr-defined]

ACTIVE = (RunStatus.QUEUED, RunStatus.PLANNING, RunStatus.RUNNING)
FINAL = tuple(s for s in RunStatus if s.is_final)


def new_id() -> str:
    """A short id a person can type (`/baton status 3fa9c2d1`)."""
    return secrets.token_hex(4)


# Short ids clash now and then with one taken already: a new run's write that fails on its
# id is made again with a new one, up to this many times in all (`id_taken`).
ID_TRIES = 3


def id_taken(error: IntegrityError) -> bool:
    """Whether a write failed on a run's id (PostgreSQL names the key, SQLite the column)."""
    said = str(error.orig)
    return "runs_pkey" in said or "runs.id" in said


async def create_run(
    db: Database,
    run: Run,
    *,
    seen: str | None = None,
    deliver: Delivery | None = None,
) -> Run | None:
    """Store a new run (and what to show for it) in one transaction.

    `seen` is the Slack request's own id (event id, trigger id): it is recorded in the same
    transaction, so a retry of a request whose run exists is dropped (None), and a request
    whose run could not be stored leaves no trace that would drop its retry.
    """
    shown = None if deliver is None else row_values(deliver)
    return run if await store_run(db, row_values(run), seen=seen, deliver=shown) else None


async def store_run(
    db: Database, row: dict[str, Any], *, seen: str | None, deliver: dict[str, Any] | None
) -> bool:
    """`create_run` for a run given as its row (`writes.new_row`); False for a retry."""
    guard = [] if seen is None else [slack_events.sighting(db, seen)]
    return await db.write(*guard, *new_run_writes(row, deliver))


def new_run_writes(run: dict[str, Any], deliver: dict[str, Any] | None) -> list[Write]:
    """A new run, its first event and what to show for it, given as rows: plain INSERTs (no
    unit of work to flush), since this runs before Slack's ack (`storage.new_runs` writes a
    group's together)."""
    data: dict[str, Any] = {"source": run["source"], "request": run["request"]}
    if run.get("follows_run_id"):
        data["after"] = run["follows_run_id"]
    created = new_row(Event, run_id=run["id"], kind=EventKind.RUN_CREATED, data=data)
    writes = [Write(insert_into(_RUNS), run), Write(insert_into(_EVENTS), created)]
    if deliver is not None:
        writes.append(Write(insert_into(_OUTBOX), deliver))
    return writes


async def get_run(db: Database, run_id: str) -> Run | None:
    return await db.read(lambda s: s.get(Run, run_id))


async def refresh(db: Database, run: Run) -> bool:
    """Read `run`'s row again into `run` itself; False when it is gone.

    For a driver that works from one row for the whole of a drive: what it handed to the
    drive's parts (its Slack surface, its tasks) sees the run as stored now, and no second
    copy of the row is held for as long as the run is in flight."""
    row = await db.one(_ROW, {"k_run": run.id})
    if row is None:
        return False
    for name, value in row._mapping.items():
        set_committed_value(run, name, value)
    return True


_ROW = select(*_RUNS.c).where(_RUNS.c.id == bindparam("k_run"))


async def latest_run(db: Database, *, channel_id: str | None) -> Run | None:
    q = select(Run).order_by(col(Run.created_at).desc()).limit(1)
    if channel_id:
        q = q.where(Run.channel_id == channel_id)
    return await db.read_first(q)


async def thread_runs(db: Database, *, channel_id: str, thread_ts: str, before: str) -> list[Run]:
    """Earlier finished runs in the same Slack thread, oldest first (the conversation so far)."""
    q = (
        select(Run)
        .where(Run.channel_id == channel_id, Run.thread_ts == thread_ts, Run.id != before)
        .order_by(col(Run.created_at))
    )
    return [r for r in await db.read_all(q) if r.status.is_final]


async def list_tasks(db: Database, run_id: str) -> list[TaskRow]:
    q = select(TaskRow).where(TaskRow.run_id == run_id).order_by(col(TaskRow.position))
    return await db.read_all(q)


async def tasks_named(db: Database, run_id: str, task_ids: Sequence[str]) -> list[TaskRow]:
    """Some of a run's tasks (a task's dependencies), in plan order."""
    q = (
        select(TaskRow)
        .where(TaskRow.run_id == run_id, col(TaskRow.task_id).in_(list(task_ids)))
        .order_by(col(TaskRow.position))
    )
    return await db.read_all(q)


async def get_task(db: Database, run_id: str, task_id: str) -> TaskRow | None:
    return await db.read(lambda s: s.get(TaskRow, (run_id, task_id)))


async def events(db: Database, run_id: str, *, kind: EventKind | None = None) -> list[Event]:
    """The run's audit trail in order (only events of `kind`, given one)."""
    q = select(Event).where(Event.run_id == run_id).order_by(col(Event.id))
    if kind is not None:
        q = q.where(Event.kind == kind)
    return await db.read_all(q)


async def save_revision(
    db: Database, run_id: str, revision: dict[str, Any], tasks: Sequence[TaskRow]
) -> bool:
    """Store the run's one plan revision (its new tasks, or none) with the plan; False when
    the run was revised before (nothing is stored then)."""
    async with db.session() as s:
        run = await s.get(Run, run_id)
        if run is None:
            raise LookupError(run_id)
        plan = dict(run.plan or {})
        if plan.get("revision"):
            return False
        plan["revision"] = revision
        run.plan = plan
        run.updated_at = utcnow()
        s.add(run)
        for t in tasks:
            s.add(t)
        s.add(Event(run_id=run_id, kind=EventKind.PLAN_REVISED, data=revision))
        return True


@dataclass(frozen=True)
class Spend:
    """One model call's usage, as the ledger keeps it."""

    input_tokens: int
    output_tokens: int
    cost_usd: float
    model: str | None = None  # None: added to the task and run only, not to the ledger
    agent: str | None = None
    priced: bool = True
    at: datetime = field(default_factory=utcnow)


async def add_usage(db: Database, run_id: str, task_id: str | None, *spends: Spend) -> None:
    """Add model calls' usage to their task (if any) and to the run, and, for those that name
    their model, to the ledger that rolls cost up per agent and model."""
    await db.write(*usage_writes(run_id, task_id, spends, task_row=True))


def usage_writes(
    run_id: str, task_id: str | None, spends: Sequence[Spend], *, task_row: bool
) -> list[Write]:
    """`add_usage`'s statements. `task_row` False: the caller adds the task's share itself
    (a task's move does, in its own UPDATE)."""
    if not spends:
        return []
    writes = []
    ledger = [
        {
            "run_id": run_id,
            "task_id": task_id,
            "agent": s.agent or "supervisor",
            "model": s.model,
            "at": s.at,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "cost_usd": s.cost_usd,
            "priced": s.priced,
        }
        for s in spends
        if s.model is not None
    ]
    if ledger:
        writes.append(Write(_INSERT_USAGE, ledger))
    added = usage_params(spends)
    if task_row and task_id is not None:
        writes.append(Write(_ADD_TO_TASK, {"k_run": run_id, "k_task": task_id, **added}))
    writes.append(Write(_ADD_TO_RUN, {"k_run": run_id, **added}))
    return writes


def adding(table: Table) -> dict[str, Any]:
    """The SET clause that adds `usage_params` to a row's tokens and cost."""
    return {
        "input_tokens": table.c.input_tokens + bindparam("add_input_tokens", type_=Integer),
        "output_tokens": table.c.output_tokens + bindparam("add_output_tokens", type_=Integer),
        "cost_usd": table.c.cost_usd + bindparam("add_cost_usd", type_=Float),
    }


def usage_params(spends: Sequence[Spend]) -> dict[str, Any]:
    """What `adding` adds: the calls' tokens and cost, summed."""
    return {
        "add_input_tokens": sum(s.input_tokens for s in spends),
        "add_output_tokens": sum(s.output_tokens for s in spends),
        "add_cost_usd": sum(s.cost_usd for s in spends),
    }


# Built once: these run for every model call.
_INSERT_USAGE = _USAGE.insert()
_ADD_TO_TASK = (
    update(_TASKS)
    .where(_TASKS.c.run_id == bindparam("k_run"), _TASKS.c.task_id == bindparam("k_task"))
    .values(**adding(_TASKS))
)
_ADD_TO_RUN = update(_RUNS).where(_RUNS.c.id == bindparam("k_run")).values(**adding(_RUNS))


@dataclass(frozen=True)
class Lease:
    """The right to drive one run, held under a token unique to one drive."""

    run_id: str
    token: str
    wakeups: int  # the run's nudge counter when the lease was taken


@dataclass(frozen=True)
class LeaseCheck:
    held: bool
    cancel_requested_by: str | None = None


async def nudge(db: Database, run_id: str) -> None:
    """Ask whoever drives the run to look at it again before letting go."""
    await db.write(Write(update(Run).where(col(Run.id) == run_id).values(wakeups=Run.wakeups + 1)))


async def acquire_lease(db: Database, run_id: str, token: str, *, seconds: float) -> Lease | None:
    """Claim the right to drive a run, unless a live lease is held (by anyone, this process too).

    Every drive has its own token, so two drives of one run can never both hold it.
    """
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    row = await db.one(
        _ACQUIRE, {"k_run": run_id, "v_now": now, "v_token": token, "v_until": until}
    )
    return None if row is None else Lease(run_id=run_id, token=token, wakeups=int(row[0]))


# The lease statements, built once (their values bound at each use): a run takes and lets go
# of its lease on every drive, and building a statement costs more than running it.
_FREE = or_(_RUNS.c.lease_owner.is_(None), _RUNS.c.lease_until < bindparam("v_now"))
_ACQUIRE = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("k_run"), _FREE)
    .values(lease_owner=bindparam("v_token"), lease_until=bindparam("v_until"))
    .returning(_RUNS.c.wakeups)
)
_NUDGE_AND_ACQUIRE = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("k_run"))
    .values(
        wakeups=_RUNS.c.wakeups + 1,
        lease_owner=case((_FREE, bindparam("v_token")), else_=_RUNS.c.lease_owner),
        lease_until=case((_FREE, bindparam("v_until")), else_=_RUNS.c.lease_until),
    )
    .returning(*_RUNS.c)
)
_FOLLOWERS = _RUNS.alias("followers")
# The oldest message that waits for the run in its thread (`Released.follower`).
_FOLLOWER = (
    select(_FOLLOWERS.c.id)
    .where(
        _FOLLOWERS.c.follows_run_id == bindparam("k_run"),
        _FOLLOWERS.c.status == RunStatus.QUEUED,
    )
    .order_by(_FOLLOWERS.c.created_at)
    .limit(1)
    .scalar_subquery()
)
_RELEASE = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("k_run"), _RUNS.c.lease_owner == bindparam("k_token"))
    .values(lease_owner=None, lease_until=None)
    .returning(_RUNS.c.wakeups, _RUNS.c.status, _FOLLOWER)
)
_AS_RELEASED = select(_RUNS.c.wakeups, _RUNS.c.status, _FOLLOWER).where(
    _RUNS.c.id == bindparam("k_run")
)


class Claimed(NamedTuple):
    """A run's lease just taken, and its row as the statement that took it found it."""

    lease: Lease
    run: Run


async def nudge_and_acquire(
    db: Database, run_id: str, token: str, *, seconds: float
) -> Claimed | None:
    """`nudge`, then `acquire_lease`, in one statement: whoever holds the run sees the nudge;
    if nobody does, the lease is this caller's, and the run as it is under it."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    row = await db.one(
        _NUDGE_AND_ACQUIRE, {"k_run": run_id, "v_now": now, "v_token": token, "v_until": until}
    )
    if row is None or row.lease_owner != token:
        return None
    return Claimed(Lease(run_id=run_id, token=token, wakeups=int(row.wakeups)), run_of(row))


def run_of(row: Any) -> Run:
    """A run from a row of all its columns read without the ORM (a statement that takes
    its lease, say): the ORM's own read would be a second statement."""
    return Run(**row._mapping)


async def renew_lease(db: Database, lease: Lease, *, seconds: float) -> LeaseCheck:
    """Extend a lease still held; says whether it is, and whether someone asked to stop."""
    row = await db.one(
        update(Run)
        .where(col(Run.id) == lease.run_id, col(Run.lease_owner) == lease.token)
        .values(lease_until=utcnow() + timedelta(seconds=seconds))
        .returning(col(Run.cancel_requested_by))
    )
    if row is None:
        return LeaseCheck(held=False)
    return LeaseCheck(held=True, cancel_requested_by=row[0])


async def renew_leases(
    db: Database, leases: Sequence[Lease], *, seconds: float
) -> dict[str, LeaseCheck]:
    """`renew_lease` for many leases in one transaction, a statement per `LEASE_BATCH`: what
    each still held says, by token (a lease missing from the answer is no longer held)."""
    until = utcnow() + timedelta(seconds=seconds)
    checks: dict[str, LeaseCheck] = {}
    async with db.transaction() as conn:
        for start in range(0, len(leases), LEASE_BATCH):
            keys = [(lease.run_id, lease.token) for lease in leases[start : start + LEASE_BATCH]]
            rows = await conn.execute(
                update(_RUNS)
                .where(tuple_(_RUNS.c.id, _RUNS.c.lease_owner).in_(keys))
                .values(lease_until=until)
                .returning(_RUNS.c.lease_owner, _RUNS.c.cancel_requested_by)
            )
            for token, by in rows:
                checks[token] = LeaseCheck(held=True, cancel_requested_by=by)
    return checks


LEASE_BATCH = 500


class Released(NamedTuple):
    """What letting go of a run's lease found."""

    nudged: bool  # someone nudged the run while it was held: drive it again
    follower: str | None  # the run has ended: the message that waited for it in its thread


async def release_lease(db: Database, lease: Lease) -> Released:
    """Let go, and read in the same statement what the driver does next."""
    row = await db.one(_RELEASE, {"k_run": lease.run_id, "k_token": lease.token})
    if row is None:  # no longer held (it lapsed and was taken): read the run as it is
        row = await db.one(_AS_RELEASED, {"k_run": lease.run_id})
    if row is None:
        return Released(nudged=False, follower=None)
    wakeups, status, follower = row
    ended = RunStatus(status).is_final
    return Released(
        nudged=int(wakeups) != lease.wakeups,
        follower=str(follower) if ended and follower is not None else None,
    )


async def request_cancel(db: Database, run_id: str, by: str) -> bool:
    """Ask for the run to be stopped; False when it has finished or a stop was asked before."""
    async with db.session() as s:
        result = await s.exec(
            update(Run)
            .where(
                col(Run.id) == run_id,
                col(Run.status).not_in(list(FINAL)),
                col(Run.cancel_requested_by).is_(None),
            )
            .values(cancel_requested_by=by, wakeups=Run.wakeups + 1)
        )
        if result.rowcount:
            s.add(Event(run_id=run_id, kind=EventKind.CANCEL_REQUESTED, data={"by": by}))
        return bool(result.rowcount)


@dataclass(frozen=True)
class Resumable:
    run_ids: list[str]
    # The soonest a live lease lapses: a sweep then would find more to resume.
    next_lease_end: datetime | None


async def runs_to_resume(db: Database) -> Resumable:
    """Unfinished runs nobody drives (their lease lapsed), one query; followers whose
    predecessor is still going are left to it."""
    now = utcnow()
    prev = aliased(Run)
    async with db.session() as s:
        q = (
            select(Run.id, Run.lease_until, Run.lease_owner)
            .outerjoin(prev, col(prev.id) == col(Run.follows_run_id))
            .where(
                col(Run.status).in_(list(ACTIVE)),
                or_(col(Run.follows_run_id).is_(None), col(prev.status).in_(list(FINAL))),
            )
            .order_by(col(Run.created_at))
        )
        rows = (await s.exec(q)).all()
    free = [r for r, until, owner in rows if owner is None or until is None or until < now]
    live = [until for _, until, owner in rows if owner is not None and until is not None]
    live = [u for u in live if u >= now]
    return Resumable(run_ids=free, next_lease_end=min(live) if live else None)


class Outcome(NamedTuple):
    """What a run's stretch ended with, as its span and the run metrics record it."""

    id: str
    status: RunStatus
    created_at: datetime
    finished_at: datetime | None
    input_tokens: int
    output_tokens: int
    cost_usd: float


async def outcome_of(db: Database, run_id: str) -> Outcome | None:
    """The run's `Outcome` (None: no such run), without building the whole row."""
    row = await db.one(_OUTCOME, {"k_run": run_id})
    return None if row is None else Outcome(*row)


_OUTCOME = select(*(_RUNS.c[name] for name in Outcome._fields)).where(
    _RUNS.c.id == bindparam("k_run")
)


async def spent(db: Database, run_id: str) -> tuple[int, int, float]:
    """What the run has spent so far: input tokens, output tokens, dollars."""
    row = await db.one(_SPENT, {"k_run": run_id})
    return (0, 0, 0.0) if row is None else (int(row[0]), int(row[1]), float(row[2]))


_SPENT = select(_RUNS.c.input_tokens, _RUNS.c.output_tokens, _RUNS.c.cost_usd).where(
    _RUNS.c.id == bindparam("k_run")
)


async def latest_unfinished(
    db: Database, *, channel_id: str, thread_ts: str | None = None
) -> Run | None:
    """The newest run still going in a channel (or one of its threads)."""
    q = (
        select(Run)
        .where(Run.channel_id == channel_id, col(Run.status).not_in(list(FINAL)))
        .order_by(col(Run.created_at).desc())
        .limit(1)
    )
    if thread_ts:
        q = q.where(Run.thread_ts == thread_ts)
    return await db.read_first(q)


async def count_runs(db: Database) -> int:
    async with db.session() as s:
        return int((await s.exec(select(func.count()).select_from(Run))).one())


async def runs_by_status(
    db: Database, statuses: Sequence[RunStatus], *, older_than: datetime | None = None
) -> list[Run]:
    async with db.session() as s:
        q = select(Run).where(col(Run.status).in_(list(statuses)))
        if older_than is not None:
            q = q.where(col(Run.updated_at) < older_than)
        return list((await s.exec(q)).all())


async def set_thread(db: Database, run_id: str, thread_ts: str) -> None:
    """The run's request is in Slack now: its thread is where everything else goes."""
    await db.write(Write(update(Run).where(col(Run.id) == run_id).values(thread_ts=thread_ts)))


async def set_status_message(db: Database, run_id: str, ts: str | None) -> None:
    """Remember where the run's progress is shown (not a state change: no event)."""
    await db.write(Write(update(Run).where(col(Run.id) == run_id).values(status_message_ts=ts)))


async def set_traceparent(db: Database, run_id: str, traceparent: str) -> None:
    """Remember the run's trace so that every later stretch joins it (not a state change)."""
    await db.write(Write(update(Run).where(col(Run.id) == run_id).values(traceparent=traceparent)))


async def unfinished_in_team(db: Database, team_id: str) -> list[str]:
    """The runs of a workspace that have not ended, oldest first."""
    async with db.session() as s:
        q = (
            select(Run.id)
            .where(col(Run.team_id) == team_id, col(Run.status).not_in(list(FINAL)))
            .order_by(col(Run.created_at))
        )
        return list((await s.exec(q)).all())


async def set_answer_preview(db: Database, run_id: str, ts: str) -> None:
    """The message the answer is being written into; its delivery edits that message."""
    async with db.session() as s:
        await s.exec(update(Run).where(col(Run.id) == run_id).values(answer_preview_ts=ts))

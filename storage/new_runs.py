"""New runs asked for from Slack, stored in groups: the one write before each request's ack.

A burst of requests (thirty slash commands at once) would otherwise be thirty transactions,
one after another on the web process's event loop, each costing about half a millisecond of
CPU before its request's ack can go. Instead, `IntakeQueue` gathers the requests that arrive
while a group is being written, and `store` writes the next group in one transaction, one
statement per table: what a request costs to store is shared by every request in its group.

A group keeps the rules a request stored alone follows:
- a request Slack sends again (same event or trigger id) stores nothing the second time;
- a run asked for in a thread whose run is still going waits for it (`follows_run_id`), and
  the thread is told so; two requests for one thread in one group queue in arrival order;
- a message that only follows up (`follow_up_only`) is stored only in a thread Baton has a
  run in, and leaves nothing behind otherwise, not even its id.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, text, tuple_

from storage import outbox, runs, slack_events
from storage.db import Database, is_unavailable
from storage.models import DeliveryPurpose, Run

_RUNS = Run.__table__  # type: ignore[attr-defined]

# Requests written in one transaction at most; a longer queue is written in several.
GROUP_MOST = 100
# Groups written at once on PostgreSQL, each on a connection of its own.
GROUPS_AT_ONCE = 2

Thread = tuple[str, str]  # (channel id, thread ts)


@dataclass
class NewRun:
    """A run asked for from Slack, to be stored before the request is acked.

    The run and what to show for it are given as rows (`writes.new_row`), not as models:
    building a `Run` costs more than storing it."""

    row: dict[str, Any]  # the run's columns
    seen: str | None = None  # the request's own id at Slack (event id, command trigger id)
    deliver: dict[str, Any] | None = None  # what to post for it (`outbox.new_row`)
    # Asked in a thread (the row's channel and thread): it waits for the thread's going
    # run, and the thread is told `notice`.
    in_thread: bool = False
    notice: str = ""
    follow_up_only: bool = False  # in a thread: stored only where Baton has a run already

    @property
    def thread(self) -> Thread:
        return (self.row.get("channel_id") or "", self.row.get("thread_ts") or "")


@dataclass(frozen=True)
class Taken:
    """How a request was stored: its run's row (None for a request Slack sent again, or a
    follow-up in a thread Baton has no run in), and whether it waits for the thread's going
    run."""

    row: dict[str, Any] | None
    queued: bool = False

    @property
    def run_id(self) -> str | None:
        return None if self.row is None else str(self.row["id"])

    @functools.cached_property
    def run(self) -> Run | None:
        """The run as a model, built when first asked for (after the ack)."""
        return None if self.row is None else Run(**self.row)


async def store(db: Database, requests: Sequence[NewRun]) -> list[Taken]:
    """Store these requests' runs in one transaction; one `Taken` per request, in order."""
    if len(requests) == 1 and not requests[0].in_thread:
        # One request outside a thread: a single guarded statement (`runs.store_run`).
        r = requests[0]
        stored = await runs.store_run(db, r.row, seen=r.seen, deliver=r.deliver)
        return [Taken(r.row if stored else None)]
    work = functools.partial(_store_in, is_sqlite=db.is_sqlite, requests=requests)
    return await db.transact(work, eager=True)  # before an ack: not behind SQLite's busy handler


def _store_in(conn: Connection, *, is_sqlite: bool, requests: Sequence[NewRun]) -> list[Taken]:
    """`store`'s transaction (plain SQLAlchemy: on SQLite it runs on the event loop's thread
    when the lock is free, `Database.transact`). It may run twice (a SQLite lock found taken
    part-way), so it sets whatever it decides afresh."""
    threads = {r.thread for r in requests if r.in_thread}
    # Follow-ups first, before anything is written: one in a thread with no run (and no
    # request of this group that could make one) leaves no trace.
    asked = {r.thread for r in requests if r.follow_up_only}
    have = _threads_with_runs(conn, asked) if asked else set()
    starting = {r.thread for r in requests if r.in_thread and not r.follow_up_only}
    candidates = [
        r for r in requests if not r.follow_up_only or r.thread in have or r.thread in starting
    ]
    first_seen = slack_events.record(
        conn, is_sqlite, [r.seen for r in candidates if r.seen is not None]
    )
    if threads and not is_sqlite:
        # Two requests in one thread at once (here or in another process) must not both
        # find it idle. Locks are taken in one order, so two groups never wait on each other.
        keys = sorted({zlib.crc32(f"{c}:{t}".encode()) for c, t in threads})
        conn.execute(_LOCK_THREADS, {"keys": keys})
    going = _going_runs(conn, threads) if threads else {}

    taken: list[Taken] = []
    writes: dict[Any, list[dict[str, Any]]] = {}
    for r in requests:
        if r.seen is not None:
            if r.seen not in first_seen:
                taken.append(Taken(None))  # sent before (or twice in this group)
                continue
            first_seen.discard(r.seen)
        deliver, queued = r.deliver, False
        if r.in_thread:
            if r.follow_up_only and r.thread not in have:
                taken.append(Taken(None))
                continue
            ahead = going.get(r.thread)
            r.row["follows_run_id"] = ahead
            queued = ahead is not None
            if queued:
                notice = {"text": r.notice}
                deliver = outbox.new_row(r.row["id"], DeliveryPurpose.NOTICE, data=notice)
            going[r.thread] = r.row["id"]  # the next request in this thread waits for this one
            have.add(r.thread)
        for w in runs.new_run_writes(r.row, deliver):
            assert isinstance(w.params, dict)
            writes.setdefault(w.statement, []).append(w.params)
        taken.append(Taken(r.row, queued))
    for statement, rows in writes.items():
        conn.execute(statement, rows)
    return taken


_LOCK_THREADS = text(
    "SELECT count(pg_advisory_xact_lock(k)) "
    "FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered"
)


def _threads_with_runs(conn: Connection, threads: set[Thread]) -> set[Thread]:
    pair = tuple_(_RUNS.c.channel_id, _RUNS.c.thread_ts)
    q = select(_RUNS.c.channel_id, _RUNS.c.thread_ts).where(pair.in_(threads)).distinct()
    return {(c, t) for c, t in conn.execute(q).all()}


def _going_runs(conn: Connection, threads: set[Thread]) -> dict[Thread, str]:
    """Each thread's newest run that has not ended."""
    pair = tuple_(_RUNS.c.channel_id, _RUNS.c.thread_ts)
    q = (
        select(_RUNS.c.channel_id, _RUNS.c.thread_ts, _RUNS.c.id)
        .where(pair.in_(threads), _RUNS.c.status.not_in(list(runs.FINAL)))
        .order_by(_RUNS.c.created_at)
    )
    rows = conn.execute(q).all()
    return {(c, t): run_id for c, t, run_id in rows}  # the newest comes last


class IntakeQueue:
    """Group commit for the web process: requests that arrive while groups are being written
    are written together next, so a burst costs a few transactions instead of one each.

    A request that finds no group gathering starts one at the loop's next turn, which takes
    whatever arrived meanwhile. On PostgreSQL up to GROUPS_AT_ONCE groups are written at
    once: a group may wait (for its commit to reach the disk, or for a thread another process
    is storing a run in), and the next group need not wait with it. SQLite writes one
    transaction at a time anyway.
    """

    def __init__(self, db: Database, *, most: int = GROUP_MOST) -> None:
        self.db = db
        self.most = most
        self.at_once = 1 if db.is_sqlite else GROUPS_AT_ONCE
        self._waiting: list[tuple[NewRun, asyncio.Future[Taken]]] = []
        self._gathering = False
        self._writing = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, request: NewRun) -> Taken:
        taken: asyncio.Future[Taken] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, taken))
        self._gather()
        return await taken

    def _gather(self) -> None:
        """Start a group unless one is gathering or as many as may be are being written."""
        if self._gathering or self._writing >= self.at_once or not self._waiting:
            return
        self._gathering = True
        task = asyncio.create_task(self._write_group(), name="intake-group")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_group(self) -> None:
        try:
            await asyncio.sleep(0)  # requests read in this turn of the loop join the group
        except BaseException:
            self._gathering = False
            for _, taken in self._waiting:
                taken.cancel()
            self._waiting = []
            raise
        self._gathering = False
        group, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
        self._writing += 1
        self._gather()  # a burst longer than one group: the next one may start
        try:
            await self._write(group)
        finally:
            self._writing -= 1
            self._gather()  # what arrived while every writer was busy

    async def _write(self, group: list[tuple[NewRun, asyncio.Future[Taken]]]) -> None:
        try:
            results = await store(self.db, [r for r, _ in group])
        except asyncio.CancelledError:
            for _, taken in group:
                taken.cancel()
            raise
        except Exception as e:
            if len(group) > 1 and not is_unavailable(e):
                # One request the database refused must not fail the others with it.
                for one in group:
                    await self._write([one])
                return
            for _, taken in group:
                if not taken.done():
                    taken.set_exception(e)
            return
        for (_, taken), result in zip(group, results, strict=True):
            if not taken.done():
                taken.set_result(result)

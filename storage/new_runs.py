"""New runs asked for from Slack, stored in groups: the one write before each request's ack.

A burst of requests (thirty slash commands at once) would otherwise be thirty transactions,
one after another on the web process's event loop, each costing about half a millisecond of
CPU before its request's ack can go. Instead, `IntakeQueue` gathers the requests that arrive
while a group is being written, and `store` writes the next group in one transaction, one
statement per table: what a request costs to store is shared by every request in its group.

Most requests need nothing read before they are stored: a slash command, a mention outside
any thread, a new DM (`NewRun.blind`). On PostgreSQL a group of only those is one statement
in autocommit (`_store_blind`): one round trip and one commit for the whole group, its rows
passed as JSON (`storage.json_rows`), and the workers' wake-up sent as it commits. Any other
group, and every group on SQLite, is a transaction (`_store_in`).

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
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, TextClause, select, text, tuple_
from sqlalchemy.exc import IntegrityError

from storage import json_rows, outbox, queue, runs, slack_events
from storage.db import Database, is_unavailable, utcnow
from storage.models import DeliveryPurpose, Event, Run, SeenSlackEvent

_RUNS: Table = Run.__table__  # type: ignore[attr-defined]
_EVENTS: Table = Event.__table__  # type: ignore[attr-defined]
_SEEN: Table = SeenSlackEvent.__table__  # type: ignore[attr-defined]

# Requests written in one transaction at most; a longer queue is written in several.
GROUP_MOST = 100
# Groups written at once on PostgreSQL, each on a connection of its own.
GROUPS_AT_ONCE = 2

Thread = tuple[str, str]  # (channel id, thread ts)


@dataclass
class NewRun:
    """A run asked for from Slack, to be stored before the request is acked.

    The run is given as a row (`writes.new_row`), not as a model: building a `Run` costs
    more than storing it. Only a run that waits for its thread's going run has something
    to post now (the thread's notice); a slash command's request is posted by its driver."""

    row: dict[str, Any]  # the run's columns
    seen: str | None = None  # the request's own id at Slack (event id, command trigger id)
    # Asked in a thread (the row's channel and thread): it waits for the thread's going
    # run, and the thread is told `notice`.
    in_thread: bool = False
    notice: str = ""
    follow_up_only: bool = False  # in a thread: stored only where Baton has a run already
    # In a thread its own message starts (a mention outside any thread, a new DM): no run
    # can be going there yet, so nothing needs reading before it is stored.
    new_thread: bool = False

    @property
    def thread(self) -> Thread:
        return (self.row.get("channel_id") or "", self.row.get("thread_ts") or "")

    @property
    def blind(self) -> bool:
        """Stored without reading anything first (`store`'s one statement on PostgreSQL)."""
        return not self.follow_up_only and (not self.in_thread or self.new_thread)


@dataclass(frozen=True)
class Taken:
    """How a request was stored: its run's row (None for a request Slack sent again, or a
    follow-up in a thread Baton has no run in), and whether it waits for the thread's going
    run."""

    row: dict[str, Any] | None
    queued: bool = False
    woken: bool = False  # the workers were told of it as it was stored (`IntakeQueue` `wake`)

    @property
    def run_id(self) -> str | None:
        return None if self.row is None else str(self.row["id"])

    @functools.cached_property
    def run(self) -> Run | None:
        """The run as a model, built when first asked for (after the ack)."""
        return None if self.row is None else Run(**self.row)


async def store(db: Database, requests: Sequence[NewRun], *, wake: bool = False) -> list[Taken]:
    """Store these requests' runs in one transaction; one `Taken` per request, in order.

    `wake`: on PostgreSQL, the statement that stores runs needing nothing read first also
    wakes the workers (`queue.notify`'s NOTIFY, sent as it commits), so no other round trip
    follows it. PostgreSQL commits notifying transactions one at a time; a whole group is one
    such transaction, so a burst's requests do not queue behind each other's.

    A run's id is short, for people to type (`runs.new_id`), so a new one can be one taken
    already. Then nothing of the group was written, and it is written again with new ids."""
    for _ in range(runs.ID_TRIES - 1):
        try:
            return await _store(db, requests, wake=wake)
        except IntegrityError as e:
            if not runs.id_taken(e):
                raise
        for r in requests:
            r.row["id"] = runs.new_id()
    return await _store(db, requests, wake=wake)


async def _store(db: Database, requests: Sequence[NewRun], *, wake: bool) -> list[Taken]:
    if not db.is_sqlite and all(r.blind for r in requests):
        return await _store_blind(db, requests, wake=wake)
    if len(requests) == 1 and not requests[0].in_thread:
        # One request outside a thread: a single guarded statement (`runs.store_run`).
        r = requests[0]
        stored = await runs.store_run(db, r.row, seen=r.seen, deliver=None)
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
        deliver, queued = None, False  # only a run that waits has something to post now
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


async def _store_blind(db: Database, requests: Sequence[NewRun], *, wake: bool) -> list[Taken]:
    """`store` on PostgreSQL for requests that need nothing read first: one statement in
    autocommit (`_blind`), so one round trip and one commit for the whole group.

    The statement records the requests' ids (a retry's is there already), takes the locks of
    the threads they start (a reply in one waits, then finds this run going), and adds each
    run whose id was new with its first event."""
    first: dict[str, NewRun] = {}
    for r in requests:
        if r.seen is not None:
            first.setdefault(r.seen, r)  # sent twice in this group: the first is stored
    kept = [r for r in requests if r.seen is None or first[r.seen] is r]
    by_table: dict[Table, list[dict[str, Any]]] = {_RUNS: [], _EVENTS: []}
    for r in kept:
        for w in runs.new_run_writes(r.row, None):
            assert isinstance(w.params, dict)
            by_table[w.statement.table].append(w.params)  # type: ignore[attr-defined]
    now = utcnow()
    params: dict[str, Any] = {
        "keys": sorted(
            {zlib.crc32(f"{c}:{t}".encode()) for c, t in {r.thread for r in kept if r.in_thread}}
        ),
        "seen": json_rows.as_json(_SEEN, [{"event_id": s, "seen_at": now} for s in sorted(first)]),
        "want": json.dumps([{"id": r.row["id"], "seen": r.seen} for r in kept]),
    }
    shape = []
    for i, (table, rows) in enumerate(by_table.items()):
        params[f"t{i}"] = json_rows.as_json(table, rows)
        shape.append((table, json_rows.columns_of(table, rows) if rows else ()))
    row = await db.one(_blind(tuple(shape), wake), params)
    added = set(row[0] or ()) if row is not None else set()
    return [Taken(r.row, woken=wake) if r.row["id"] in added else Taken(None) for r in requests]


@functools.lru_cache(maxsize=16)
def _blind(shape: tuple[tuple[Table, tuple[str, ...]], ...], wake: bool) -> TextClause:
    """`_store_blind`'s statement for these tables and columns (runs first). Each new run is
    added only once its thread is locked (`fresh` waits on `locked`) and only if its request's
    id was not seen before; with `wake`, the workers are notified when a run was added."""
    parts = [
        f"seen AS ({json_rows.insert_of(_SEEN, ('event_id', 'seen_at'), 'seen')} "
        "ORDER BY event_id ON CONFLICT DO NOTHING RETURNING event_id)",
        # After the ids, as `_store_in` takes them: two writers of one retried event never
        # hold what the other waits for.
        "locked AS (SELECT count(pg_advisory_xact_lock(k)) AS n FROM "
        "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered "
        "WHERE (SELECT count(*) FROM seen) >= 0)",
        "fresh AS (SELECT w.id FROM json_to_recordset(CAST(:want AS json)) AS w(id text, seen text) "
        "WHERE (SELECT n FROM locked) >= 0 "
        "AND (w.seen IS NULL OR w.seen IN (SELECT event_id FROM seen)))",
    ]
    for i, (table, columns) in enumerate(shape):
        if not columns:
            continue
        key = "id" if table is _RUNS else "run_id"
        parts.append(
            f"t{i} AS ({json_rows.insert_of(table, columns, f't{i}')} "
            f"WHERE r.{key} IN (SELECT id FROM fresh) RETURNING {key})"
        )
    woke = (
        f", (SELECT count(pg_notify('{queue.CHANNEL}', '')) FROM (SELECT 1 FROM t0 LIMIT 1) AS n)"
        if wake
        else ""
    )
    return text("WITH " + ",\n".join(parts) + f"\nSELECT array_agg(id){woke} FROM t0")


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

    def __init__(self, db: Database, *, most: int = GROUP_MOST, wake: bool = False) -> None:
        self.db = db
        self.most = most
        self.wake = wake  # `store`'s: the workers are told of runs as they are stored
        self.at_once = 1 if db.is_sqlite else GROUPS_AT_ONCE
        self._waiting: list[tuple[NewRun, asyncio.Future[Taken]]] = []
        self._gathering = False
        self._writing = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, request: NewRun) -> Taken:
        return await self.submit(request)

    def submit(self, request: NewRun) -> asyncio.Future[Taken]:
        """`store` without a coroutine of its own: how the request was stored, once its
        group has been written."""
        taken: asyncio.Future[Taken] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, taken))
        self._gather()
        return taken

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
            results = await store(self.db, [r for r, _ in group], wake=self.wake)
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

"""The async engine, URL normalisation, and tables straight from the models for tests."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Delete,
    Engine,
    Executable,
    Select,
    Update,
    create_engine,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import Session, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from storage.clock import REAL, Clock
from storage.driver import Busy, NotPrepared, execute_count, fetch_count, prepared, write_sqlite
from storage.errors import DatabaseUrlError, StorageError
from storage.writes import Write, busy, one_statement, written

T = TypeVar("T")
M = TypeVar("M")

log = logging.getLogger(__name__)

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_url(url: str) -> str:
    """Give plain `sqlite://` and `postgresql://` URLs their async driver."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseUrlError(f"not a database URL: {url!r}")
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"


def is_unavailable(error: BaseException) -> bool:
    """The database cannot be used right now (down, unreachable, read-only, full, pool dry).

    Not a bug and not the run's fault: whoever hit it lets go and tries again later.
    """
    if isinstance(error, sa_exc.DBAPIError):
        return (
            bool(error.connection_invalidated)
            or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
            or _sqlstate(error).startswith(_UNAVAILABLE_STATES)
        )
    return isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError | OSError)


# PostgreSQL's codes for "not now": connection failures, no resources (disk full, too many
# connections), shutting down or starting up, a database not accepting connections.
_UNAVAILABLE_STATES = ("08", "53", "57P", "55000")


def _sqlstate(error: sa_exc.DBAPIError) -> str:
    for cause in (error.orig, getattr(error.orig, "__cause__", None)):
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def _sqlite_wal(connection: Any, _: Any) -> None:
    # Readers no longer wait for the writer, and a commit needs no sync of the whole file:
    # many runs writing small changes at once would otherwise queue behind each other.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# PostgreSQL connections per process (a web process or a worker); PostgreSQL's own limit,
# 100 by default, must cover them all.
POOL_SIZE = 20

# A pooled connection idle this long is pinged before use; one in steady use is not.
IDLE_BEFORE_PING = 30.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only when it has sat idle: a database restart
    while it waited would otherwise surface as a failed statement.

    SQLAlchemy's own `pool_pre_ping` checks every checkout, which for asyncpg is three round
    trips (BEGIN, a query, ROLLBACK) — more than a task's whole move costs. A connection in
    steady use has just shown it works; one that fails anyway invalidates the pool, and the
    work that met it is left and resumed as in any outage.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_BEFORE_PING:
            return  # new (just connected), or in steady use
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as e:
            # The pool replaces the connection and tries again.
            raise sa_exc.DisconnectionError(str(e)) from e


# SQLite: how long, and how often, `transact` tries for the lock from the event loop.
EAGER_SECONDS, EAGER_POLL = 2.0, 0.002

# SQLite: transactions committed on the event loop's thread between two checkpoints of the
# write-ahead log. A ten-task run commits about 25 and adds about half a megabyte to the log.
CHECKPOINT_EVERY = 200

# PostgreSQL connections (of the pool's) a process keeps in autocommit for single statements.
LANE_SIZE = 4


class _Lane:
    """A few connections kept out of the pool, in autocommit, for the statements that stand
    alone (a task's move, a lease): checking a connection out of SQLAlchemy's pool and back
    costs more than such a statement's round trip. A statement that fails (the connection
    lost, the caller cancelled mid-way) closes its connection; the next need makes another.
    """

    def __init__(self, engine: AsyncEngine, finish: Callable[[Coroutine[Any, Any, None]], Any]):
        self._engine = engine
        self._finish = finish
        self._idle: list[AsyncConnection] = []
        self._free = asyncio.Semaphore(LANE_SIZE)
        # Each connection's asyncpg connection, for the statements sent to it directly.
        self._drivers: dict[AsyncConnection, Any] = {}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        async with self._free:
            conn = self._idle.pop() if self._idle else await self._open()
            try:
                yield conn
            except BaseException:
                self._drivers.pop(conn, None)
                await self._finish(conn.close())
                raise
            self._idle.append(conn)

    async def count(self, statement: Executable, params: Mapping[str, Any] | None) -> int:
        """Run one statement that stands alone: the rows it touched, or for a statement that
        answers a count (`writes.one_statement`'s), that count. Sent to asyncpg directly
        (`storage.driver`) when it can be."""
        answers = isinstance(statement, Select)
        async with self.connection() as conn:
            sent = prepared(statement, tuple(params or ()), conn.dialect)
            if sent is None:
                result = await conn.execute(statement, params)
                return int(result.scalar() or 0) if answers else result.rowcount
            driver = self._drivers.get(conn)
            if driver is None:
                driver = (await conn.get_raw_connection()).driver_connection
                self._drivers[conn] = driver
            args = sent.args(params or {})
            try:
                return await (fetch_count if answers else execute_count)(driver, sent, args)
            except BaseException:
                # Whatever state the statement left the connection in, it is not reused.
                await self._finish(conn.invalidate())
                raise

    async def _open(self) -> AsyncConnection:
        conn = await self._engine.connect()
        try:
            return await conn.execution_options(isolation_level="AUTOCOMMIT")
        except BaseException:
            await self._finish(conn.close())
            raise

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        self._drivers.clear()
        for conn in idle:
            await conn.close()


class _Unchanged(StorageError):
    """A `must_change` write touched nothing: the batch is rolled back."""


def _write_all(writes: Sequence[Write], conn: Connection) -> bool:
    """`Database.write`'s batch inside `transact`'s transaction, undone when unchanged."""
    if not written(conn, writes):
        raise _Unchanged
    return True


def _first_row(statement: Executable, params: Mapping[str, Any] | None, conn: Connection) -> Any:
    return conn.execute(statement, params).first()


def _in_session(work: Callable[[Session], T], conn: Connection) -> T:
    """`Database.read`'s work, with an ORM session on the connection it was given."""
    with Session(bind=conn, expire_on_commit=False) as s:
        return work(s)


def _sqlite_here(connection: Any, record: Any) -> None:
    _sqlite_wal(connection, record)
    # Checkpoints (which sync the file) run off the loop: see `Database._committed_here`.
    cursor = connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def utcnow() -> datetime:
    """Now, in UTC, with its zone: every stored time is zone-aware (the real clock's time)."""
    return REAL()


class Database:
    """One async engine and its session factory, and the clock stored times are read against."""

    def __init__(self, url: str, *, echo: bool = False, clock: Clock = REAL) -> None:
        self.url = normalize_url(url)
        # What "now" is for what this process stores and compares (tests move it on).
        self.clock = clock
        # Bound parameters (people's requests, answers, ids) never appear in an error's text,
        # so they never reach a log, a stored error or a message.
        kwargs: dict[str, object] = {"echo": echo, "hide_parameters": True}
        # Every session ends its transaction itself (committed, or rolled back — shielded from
        # cancellation — in `session`), so the pool's own rollback on return would only add an
        # await that a cancelled task (a Stop, a shutdown) could cut off, leaving an error in
        # the log for a cancel that was expected.
        kwargs["pool_reset_on_return"] = None
        if self.url.startswith("sqlite"):
            # Several coroutines share one file; wait for the writer instead of failing.
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # A worker drives many runs at once: a query waits for a connection rather than
            # fail after SQLAlchemy's default 30 s (which turned busy runs into failed tasks).
            # Connections are kept, not opened for a burst and closed after it: a new one
            # costs a TLS attempt, a login and its statements prepared again.
            kwargs.update(pool_size=POOL_SIZE, max_overflow=0, pool_timeout=300)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        # PostgreSQL: the connections kept in autocommit for statements that stand alone.
        self._lane: _Lane | None = None
        if not self.is_sqlite:
            _ping_when_idle(self.engine)
            self._lane = _Lane(self.engine, self._finish)
        # Sessions still handing their connection back (see `session`); `dispose` waits.
        self._closing: set[asyncio.Future[None]] = set()
        # SQLite: transactions committed here since the last checkpoint, and one under way.
        self._uncheckpointed = 0
        self._checkpoint: asyncio.Future[None] | None = None
        # SQLite: the same file, opened on this thread for `write`'s short batches.
        self._here: Engine | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_wal)
            if self.engine.url.database not in (None, "", ":memory:"):
                here = self.engine.url.set(drivername="sqlite+pysqlite")
                # Never wait for the lock here: a batch that finds it taken goes the usual way.
                self._here = create_engine(
                    here, echo=echo, hide_parameters=True, connect_args={"timeout": 0}
                )
                event.listen(self._here, "connect", _sqlite_here)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def create_all(self) -> None:
        """Create missing tables straight from the models, with no migration history.

        For tests and benchmarks that need tables fast; Baton itself starts through the
        migrations (`storage.schema`), which a test keeps equal to these tables.
        """
        from storage import models  # noqa: F401  (registers the tables)

        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Two processes starting together must not race on CREATE TABLE.
                from sqlalchemy import text

                await conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            await conn.run_sync(SQLModel.metadata.create_all)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed on success.

        Rolling back and closing are shielded: a caller cancelled mid-query (a Stop, a
        shutdown) still rolls back and hands its connection back whole, instead of leaving
        the pool a half-reset connection (and an error in the log for an expected cancel)."""
        session = self._sessions()
        try:
            yield session
            await session.commit()  # a commit may wait for SQLite's lock: cancellable
        except BaseException:
            await self._finish(session.rollback())
            raise
        finally:
            await self._finish(session.close())

    async def changed(self, statement: Update | Delete) -> bool:
        """Run one UPDATE or DELETE in its own transaction: True when it touched a row."""
        async with self.session() as s:
            result = await s.exec(statement)
            return bool(result.rowcount)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction on a plain connection, committed on success: for Core statements
        on hot paths (the run state machine), which need no unit of work. Rolling back and
        closing are shielded as in `session`."""
        conn = await self.engine.connect()
        try:
            await conn.begin()
            yield conn
            await conn.commit()
        except BaseException:
            await self._finish(conn.rollback())
            raise
        finally:
            await self._finish(conn.close())

    async def write(self, *writes: Write) -> bool:
        """Run these statements in one transaction and commit them; False, with nothing
        written, when a `must_change` one touched no row (see `storage.writes`).

        For the writes made several times per task (the run state machine's moves, usage).
        On SQLite they run as `transact` runs its work, on this thread while the lock is
        free. On PostgreSQL the batch is one statement in one round trip where it can be.
        Either way the statements go to the driver itself, compiled once (`storage.driver`).
        """
        if self._lane is not None:
            one = one_statement(writes) if len(writes) > 1 else None
            single = len(writes) == 1 and not isinstance(writes[0].params, Sequence)
            if one is not None or single:
                statement, params = one or (writes[0].statement, writes[0].params)
                changed = await self._lane.count(statement, params)  # type: ignore[arg-type]
                return bool(changed) or not writes[0].must_change
        if self._here is not None:
            try:
                return self._write_here(writes)
            except (Busy, NotPrepared):
                pass  # the lock is taken (the usual way waits for it), or a statement is new
        try:
            return await self.transact(functools.partial(_write_all, writes))
        except _Unchanged:
            return False

    def _write_here(self, writes: Sequence[Write]) -> bool:
        """SQLite: the batch on this thread, sent to sqlite3 directly (`storage.driver`)."""
        assert self._here is not None
        raw = self._here.raw_connection()
        try:
            connection: Any = raw.driver_connection  # sqlite3's own
            done = write_sqlite(connection, writes, self._here.dialect)
        finally:
            raw.close()
        self._committed_here()
        return done

    async def transact(self, work: Callable[[Connection], T], *, eager: bool = False) -> T:
        """Run `work` — plain, synchronous SQLAlchemy on one connection — in one transaction,
        and commit it (an exception from `work` undoes it). Elsewhere than SQLite it runs
        through the async driver (`AsyncConnection.run_sync`).

        On SQLite it runs on this thread: a few small statements take tens of microseconds
        there, where the async driver hands every statement, cursor and commit to its own
        thread and back (about ten times the CPU). The connection used here never waits for
        SQLite's lock: when another connection holds it, `work` goes the async way and waits
        there, so the event loop is never held up — and `work` may run twice, so it must
        decide afresh each time.

        `eager`: for the write before Slack's ack (the intake's groups). A writer waiting in
        SQLite's own busy handler polls for the lock at up to 100 ms intervals, and under
        load others keep taking it in between: an ack waited up to 0.8 s. So this tries again
        from the event loop every EAGER_POLL seconds, for up to EAGER_SECONDS, first.
        """
        if self._here is not None:
            deadline = time.monotonic() + (EAGER_SECONDS if eager else 0.0)
            while True:
                try:
                    with self._here.connect() as conn:
                        result = work(conn)
                        conn.commit()
                    self._committed_here()
                    return result
                except sa_exc.OperationalError as e:
                    if not busy(e):
                        raise
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(EAGER_POLL)  # the loop goes on meanwhile
        async with self.transaction() as conn:
            return await conn.run_sync(work)

    async def one(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """Run one statement on its own (a read, or a write that stands alone, with RETURNING)
        and return its first row, or None.

        Several times per run, so the cheapest way each database takes it: on PostgreSQL in
        autocommit (one round trip, no BEGIN or COMMIT); on SQLite as `transact` runs it.
        """
        if self._lane is not None:
            async with self._lane.connection() as conn:
                return (await conn.execute(statement, params)).first()
        return await self.transact(functools.partial(_first_row, statement, params))

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` — one read that stands alone, through a plain, synchronous ORM session —
        and return what it returns (rows it loaded stay usable after).

        For the reads made several times per run (the run, its tasks, its trail, its next
        message), the cheapest way each database takes them: on PostgreSQL in autocommit,
        the statement alone with no BEGIN or COMMIT (half the CPU of `session`); on SQLite
        as `transact` runs its work, on this thread (a fifth). One statement only: in
        autocommit, a second would not see the snapshot the first saw.
        """
        run = functools.partial(_in_session, work)
        if self._lane is not None:
            async with self._lane.connection() as conn:
                return await conn.run_sync(run)
        return await self.transact(run)

    async def read_all(self, query: SelectOfScalar[M]) -> list[M]:
        """Every row one ORM query selects, read as `read` reads."""
        return await self.read(lambda s: list(s.exec(query).all()))

    async def read_first(self, query: SelectOfScalar[M]) -> M | None:
        """The first row one ORM query selects, or None, read as `read` reads."""
        return await self.read(lambda s: s.exec(query).first())

    @property
    def engines(self) -> list[Engine]:
        """Every engine this database runs statements through (for counting them)."""
        return [self.engine.sync_engine, *([self._here] if self._here is not None else [])]

    def _committed_here(self) -> None:
        """Count a transaction committed on this thread, and every CHECKPOINT_EVERY start a
        checkpoint on the driver's own thread.

        The connections used here do not checkpoint at their commits (a checkpoint syncs the
        file, which would hold up the event loop). Without one now and then, every change
        would stay in the write-ahead log, which would grow for as long as Baton runs."""
        self._uncheckpointed += 1
        if self._uncheckpointed >= CHECKPOINT_EVERY and self._checkpoint is None:
            self._uncheckpointed = 0
            self._checkpoint = asyncio.ensure_future(self._checkpoint_log())

    async def _checkpoint_log(self) -> None:
        """Copy the write-ahead log into the database file and empty it. Writers wait
        meanwhile (a batch on the loop's thread finds the lock taken and goes the async way,
        as `transact` says): a few milliseconds every CHECKPOINT_EVERY transactions."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception as e:
            log.warning("SQLite checkpoint failed (%s); the next one will try again", e)
        finally:
            self._checkpoint = None

    async def _finish(self, step: Coroutine[Any, Any, None]) -> None:
        """Run the end of a transaction to completion even if the caller is cancelled;
        `dispose` waits for those still going."""
        finishing = asyncio.ensure_future(step)
        self._closing.add(finishing)
        finishing.add_done_callback(self._closing.discard)
        await asyncio.shield(finishing)

    async def dispose(self) -> None:
        pending = {*self._closing, *([self._checkpoint] if self._checkpoint else [])}
        if pending:
            await asyncio.wait(pending, timeout=10)
        if self._lane is not None:
            await self._lane.close()
        await self.engine.dispose()
        if self._here is not None:
            self._here.dispose()

"""The async engine, URL normalisation, and tables straight from the models for tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Delete, Update, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.clock import REAL, Clock
from storage.errors import DatabaseUrlError

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
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=300)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        # Sessions still handing their connection back (see `session`); `dispose` waits.
        self._closing: set[asyncio.Future[None]] = set()
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_wal)
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

    async def _finish(self, step: Coroutine[Any, Any, None]) -> None:
        """Run the end of a transaction to completion even if the caller is cancelled;
        `dispose` waits for those still going."""
        finishing = asyncio.ensure_future(step)
        self._closing.add(finishing)
        finishing.add_done_callback(self._closing.discard)
        await asyncio.shield(finishing)

    async def dispose(self) -> None:
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=10)
        await self.engine.dispose()

"""The run state machine's batches (`storage.writes`), sent to the database's driver itself.

A move is a statement or two that SQLAlchemy builds and compiles once (`Prepared`) and that
then runs several times per task. Executing it through SQLAlchemy costs more than the
database's own work: an execution context, result objects, and for asyncpg a greenlet hop
per statement. Sent to the driver with its parameters in their positions, a task's CPU
falls by about a fifth on SQLite and on PostgreSQL (`make bench`, the orchestration rows).

What a statement means, and how each value is converted (times, JSON, enums), is still
SQLAlchemy's: the SQL is what SQLAlchemy compiles for the dialect, and each parameter goes
through its type's own conversion. The driver's errors are raised as SQLAlchemy raises
them (`IntegrityError`, `OperationalError`, …), so callers and `is_unavailable` see no
difference. A statement that needs more of SQLAlchemy at each execution (a list expanded
into its text, a column's default made then) is left to SQLAlchemy.

The drivers' own hooks see these statements (sqlite3's trace callback, asyncpg's query
logger); SQLAlchemy's engine events do not.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Executable
from sqlalchemy import exc as sa_exc

from storage.errors import StorageError
from storage.writes import Params, Write, busy

# A slot: the parameter's name, its type's conversion (or None), and the value the
# statement itself gives it when the parameters do not (`_MISSING`: none).
_MISSING = object()
Slot = tuple[str, Callable[[Any], Any] | None, Any]


@dataclass(frozen=True)
class Prepared:
    """A statement compiled once for one dialect, and where each parameter goes."""

    sql: str
    slots: tuple[Slot, ...]

    def args(self, params: Params) -> list[Any]:
        """The parameters in their positions, each converted as its type converts it."""
        out = []
        for name, convert, fixed in self.slots:
            if name in params:
                value = params[name]
            elif fixed is not _MISSING:
                value = fixed
            else:
                raise sa_exc.InvalidRequestError(f"a value is required for parameter {name!r}")
            if convert is None:
                out.append(value)
                continue
            try:
                out.append(convert(value))
            except Exception as e:  # a value its type refuses, as SQLAlchemy reports it
                kind = f"{type(e).__module__}.{type(e).__name__}"
                raise sa_exc.StatementError(
                    f"({kind}) {e}", self.sql, None, e, hide_parameters=True
                ) from e
        return out


@functools.lru_cache(maxsize=512)
def prepared(statement: Executable, keys: tuple[str, ...], dialect: Dialect) -> Prepared | None:
    """`statement` with parameters named `keys`, compiled for `dialect` as SQLAlchemy compiles
    it at execution; None for one that needs more of SQLAlchemy at each execution (a list
    expanded into its text, a value or a column's default computed then) or a dialect whose
    parameters are not positional."""
    compiled: Any = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect, column_keys=list(keys)
    )
    order = compiled.positiontup
    if (
        order is None
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or compiled.insert_prefetch  # a column's default made at execution (a time, an id)
        or compiled.update_prefetch
    ):
        return None
    slots: list[Slot] = []
    for name in order:
        bind = compiled.binds[name]
        if bind.callable is not None:
            return None
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        slots.append((name, convert, _MISSING if bind.required else bind.value))
    return Prepared(compiled.string, tuple(slots))


def _prepared_write(w: Write, dialect: Dialect) -> tuple[Prepared, Any] | None:
    """A batch's write as prepared SQL and its driver arguments (a list of rows for an
    INSERT of several), or None."""
    if w.params is None or isinstance(w.params, Mapping):
        params = w.params or {}
        sent = prepared(w.statement, tuple(params), dialect)
        return None if sent is None else (sent, sent.args(params))
    rows = list(w.params)
    keys = tuple(rows[0]) if rows else None
    if keys is None or any(tuple(row) != keys for row in rows):
        return None
    sent = prepared(w.statement, keys, dialect)
    return None if sent is None else (sent, [sent.args(row) for row in rows])


# ---- SQLite ------------------------------------------------------------------------------


class NotPrepared(StorageError):
    """A write of the batch cannot be sent prepared: the batch goes through SQLAlchemy."""


class Busy(StorageError):
    """Another connection holds SQLite's lock: nothing of the batch was written."""


def write_sqlite(connection: sqlite3.Connection, writes: Sequence[Write], dialect: Dialect) -> bool:
    """The batch in one transaction on this sqlite3 connection (which never waits for the
    lock: Busy when it is taken). False, with nothing written, when a `must_change` write
    touched no row. None of it is written unless all of it is."""
    batch: list[tuple[Prepared, Any]] = []
    for w in writes:
        one = _prepared_write(w, dialect)
        if one is None:
            raise NotPrepared
        batch.append(one)
    sql, args = "", None
    try:
        for w, (sent, args) in zip(writes, batch, strict=True):
            sql = sent.sql
            if isinstance(w.params, Mapping) or w.params is None:
                cursor = connection.execute(sql, args)
            else:
                cursor = connection.executemany(sql, args)
            if w.must_change and not cursor.rowcount:
                connection.rollback()
                return False
        connection.commit()
        return True
    except sqlite3.Error as e:
        connection.rollback()
        if busy(e):
            raise Busy from e
        raise sa_exc.DBAPIError.instance(sql, args, e, sqlite3.Error, hide_parameters=True) from e


# ---- PostgreSQL (asyncpg) ----------------------------------------------------------------


async def fetch_count(driver: Any, sent: Prepared, args: list[Any]) -> int:
    """A statement that answers one number (`writes.one_statement`'s), on an asyncpg
    connection in autocommit."""
    try:
        return int(await driver.fetchval(sent.sql, *args))
    except Exception as e:
        raise _from_asyncpg(e, sent.sql, args) from e


async def execute_count(driver: Any, sent: Prepared, args: list[Any]) -> int:
    """A single INSERT, UPDATE or DELETE on an asyncpg connection in autocommit: the rows
    it touched (from its status, e.g. `UPDATE 1`)."""
    try:
        status = await driver.execute(sent.sql, *args)
    except Exception as e:
        raise _from_asyncpg(e, sent.sql, args) from e
    last = str(status).rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


# PostgreSQL's classes of SQLSTATE, as the DBAPI's exceptions (and SQLAlchemy's) name them.
_CLASSES: dict[str, type[sa_exc.DBAPIError]] = {
    "08": sa_exc.OperationalError,  # connection exceptions
    "22": sa_exc.DataError,
    "23": sa_exc.IntegrityError,
    "40": sa_exc.OperationalError,  # serialization failure, deadlock
    "42": sa_exc.ProgrammingError,
    "53": sa_exc.OperationalError,  # insufficient resources
    "57": sa_exc.OperationalError,  # operator intervention (shutdown, cancel)
    "XX": sa_exc.InternalError,
}


def _from_asyncpg(error: Exception, sql: str, args: list[Any]) -> sa_exc.DBAPIError:
    """An asyncpg error as SQLAlchemy would raise it (the original kept as its `orig`)."""
    import asyncpg  # type: ignore[import-untyped]

    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        cls = _CLASSES.get(state[:2], sa_exc.DatabaseError)
        return cls(sql, args, error, hide_parameters=True)
    if isinstance(error, asyncpg.InterfaceError):
        return sa_exc.InterfaceError(sql, args, error, hide_parameters=True)
    # The connection went away under the statement (a reset, a refused socket).
    return sa_exc.OperationalError(
        sql, args, error, hide_parameters=True, connection_invalidated=True
    )

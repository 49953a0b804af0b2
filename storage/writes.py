"""Batches of writes made several times per task (the run state machine's moves, usage), and
the cheapest way each database takes them in one transaction.

A batch is a list of `Write`s; the first may be a guard (`must_change`): when it touches no
row, nothing of the batch is written. `Database.write` runs a batch:

- on SQLite, on the event loop's own thread (`Database.write` says why and when not);
- on PostgreSQL, as one statement (`one_statement`): the guard as a CTE, the other writes as
  CTEs that act only if it changed a row. One statement is its own transaction, so it goes
  in autocommit: one round trip instead of BEGIN, a statement each, and COMMIT.
- anywhere else, or for a shape `one_statement` does not take, in a plain transaction.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Executable,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.dml import OnConflictDoNothing as DoNothing
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.dml import OnConflictDoNothing as SqliteDoNothing
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

Params = Mapping[str, Any]

# Rows one INSERT of a batch may have in the one-statement form. A plan's tasks (up to a
# hundred or more) go in a transaction instead: as a statement, each count of rows would be
# another statement to compile and for PostgreSQL to prepare, larger than the rows it writes.
MOST_ROWS = 8


@dataclass(frozen=True)
class Write:
    """One statement of a batch, and its parameters (a list of rows for a plain INSERT)."""

    statement: Executable
    params: Params | Sequence[Params] | None = None
    must_change: bool = False  # the whole batch is undone unless this touches a row


def insert_row(row: SQLModel, *, unless_there: bool = False, sqlite: bool = False) -> Write:
    """INSERT a new row as it is (an id left to the database is left out). `unless_there`:
    a row that would break a unique constraint is left out, and the batch goes on (SQLite's
    or PostgreSQL's `ON CONFLICT DO NOTHING`, by `sqlite`)."""
    table = row.__table__  # type: ignore[attr-defined]
    return Write(insert_into(table, unless_there, sqlite), row_values(row))


def new_row(model: type[SQLModel], **values: Any) -> dict[str, Any]:
    """A new row's column values, as `row_values(model(**values))` gives them, without
    building the model. SQLModel sets a table model's fields one at a time through pydantic
    and SQLAlchemy's instrumentation: a `Run` takes about 100 µs or more, this a few µs.
    For the rows written before a Slack ack."""
    fixed, made, required, columns, keys = _fields(model)
    if not required <= values.keys() or not values.keys() <= columns:
        raise TypeError(
            f"{model.__name__}: missing {sorted(required - values.keys())}, "
            f"not columns {sorted(values.keys() - columns)}"
        )
    row = {**fixed, **{name: make() for name, make in made}, **values}
    for name in keys:
        if row.get(name) is None:
            row.pop(name, None)  # left to the database
    return row


@functools.cache
def _fields(
    model: type[SQLModel],
) -> tuple[dict[str, Any], list[tuple[str, Any]], set[str], set[str], list[str]]:
    """A table model's fixed defaults, default factories, required fields, columns and
    primary key columns, read once."""
    table = model.__table__  # type: ignore[attr-defined]
    columns = {c.name for c in table.columns}
    fixed: dict[str, Any] = {}
    made: list[tuple[str, Any]] = []
    required: set[str] = set()
    for name, field in model.model_fields.items():
        if name not in columns:
            continue
        if field.default_factory is not None:
            made.append((name, field.default_factory))
        elif field.is_required():
            required.add(name)
        else:
            fixed[name] = field.default
    return fixed, made, required, columns, [c.name for c in table.primary_key.columns]


def row_values(row: SQLModel) -> dict[str, Any]:
    """A new row's column values, as INSERT parameters (an id left to the database is left
    out)."""
    table = row.__table__  # type: ignore[attr-defined]
    return {
        c.name: getattr(row, c.name)
        for c in table.columns
        if not (c.primary_key and getattr(row, c.name) is None)
    }


@functools.cache
def insert_into(table: Table, unless_there: bool = False, sqlite: bool = False) -> Insert:
    """One INSERT statement per table (and kind): the same statement is looked up, not built,
    each time, and its parameters are given apart, so it is compiled once and cached."""
    if not unless_there:
        return table.insert()
    return (sqlite_insert if sqlite else pg_insert)(table).on_conflict_do_nothing()


def written(conn: Connection, writes: Sequence[Write]) -> bool:
    """A batch inside the caller's transaction: False, as soon as a `must_change` write
    touches no row (the caller then undoes the transaction)."""
    for w in writes:
        result = conn.execute(w.statement, w.params)
        if w.must_change and not result.rowcount:
            return False
    return True


async def write_in(conn: AsyncConnection, writes: Sequence[Write]) -> bool:
    """`written`, inside an async caller's transaction."""
    return await conn.run_sync(written, writes)


def busy(error: Exception) -> bool:
    """SQLite said another connection holds the lock (it was not asked to wait for it): a
    sqlite3 error, or SQLAlchemy's around one."""
    code = getattr(getattr(error, "orig", None) or error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def one_statement(writes: Sequence[Write]) -> tuple[Executable, dict[str, Any]] | None:
    """The batch as one PostgreSQL statement and its parameters, or None for a shape this
    does not take (the batch then runs as a transaction).

    Taken: a guard first — an UPDATE, or an INSERT that does nothing on a conflict — then
    INSERTs (one row or several; plain, or doing nothing on a conflict) and UPDATEs of other
    tables. The statement answers
    one row: how many rows the guard changed.
    """
    first, rest = writes[0], writes[1:]
    if not first.must_change or not isinstance(first.params, Mapping):
        return None
    if any(w.must_change for w in rest):
        return None
    guard = first.statement
    params: dict[str, Any] = {}
    if isinstance(guard, Update):
        shapes: list[tuple[Any, ...]] = [(guard,)]
        params.update(first.params)
    elif isinstance(guard, Insert) and _only_rows_missing(guard):
        shapes = [(guard, tuple(first.params), 1)]
        params.update({f"w0_0_{c}": v for c, v in first.params.items()})
    else:
        return None
    updated = {guard.table}
    for i, w in enumerate(rest, 1):
        stmt = w.statement
        if isinstance(stmt, Insert) and (_plain(stmt) or _only_rows_missing(stmt)) and w.params:
            rows = [w.params] if isinstance(w.params, Mapping) else list(w.params)
            if len(rows) > MOST_ROWS:
                return None
            columns = tuple(rows[0])
            if any(tuple(row) != columns for row in rows):
                return None
            shapes.append((stmt, columns, len(rows)))
            for j, row in enumerate(rows):
                params.update({f"w{i}_{j}_{c}": v for c, v in row.items()})
        elif isinstance(stmt, Update) and isinstance(w.params, Mapping):
            if stmt.table in updated:
                return None  # PostgreSQL applies one change per row and statement
            updated.add(stmt.table)
            for key, value in w.params.items():
                if key in params and params[key] != value:
                    return None  # one name, two values: not one statement
                params[key] = value
            shapes.append((stmt,))
        else:
            return None
    return _template(tuple(shapes)), params


def _plain(stmt: Insert) -> bool:
    """`insert(table)` with its rows given at execution."""
    return stmt._values is None and stmt._multi_values == () and stmt.select is None


def _only_rows_missing(stmt: Insert) -> bool:
    """A plain INSERT … ON CONFLICT DO NOTHING: it inserts a row that is not there yet, or
    nothing."""
    clause = getattr(stmt, "_post_values_clause", None)
    return _plain(stmt) and isinstance(clause, DoNothing | SqliteDoNothing)


@functools.lru_cache(maxsize=256)
def _template(shapes: tuple[tuple[Any, ...], ...]) -> Select[Any]:
    """Built once per shape (the same statements, columns and row counts); only parameters
    change from one use to the next."""
    first = shapes[0][0]
    if isinstance(first, Insert):
        first = first.values({c: _bind(first, 0, 0, c) for c in shapes[0][1]})
    guard = first.returning(literal_column("1").label("w")).cte("w0")
    changed = exists(select(guard.c.w))
    ctes = []
    for i, shape in enumerate(shapes[1:], 1):
        stmt = shape[0]
        if isinstance(stmt, Insert):
            _, columns, count = shape
            rows = [
                select(*[_bind(stmt, i, j, c) for c in columns]).where(changed)
                for j in range(count)
            ]
            source = rows[0] if count == 1 else union_all(*rows)
            if _only_rows_missing(stmt):
                adding = pg_insert(stmt.table).from_select(list(columns), source)
                ctes.append(adding.on_conflict_do_nothing().cte(f"w{i}"))
            else:
                ctes.append(insert(stmt.table).from_select(list(columns), source).cte(f"w{i}"))
        else:
            ctes.append(stmt.where(changed).cte(f"w{i}"))
    return select(func.count()).select_from(guard).add_cte(*ctes)


def _bind(stmt: Insert, i: int, j: int, column: str) -> BindParameter[Any]:
    """The parameter for column `column` of row `j` of write `i`, typed as the column."""
    return bindparam(f"w{i}_{j}_{column}", type_=stmt.table.c[column].type)

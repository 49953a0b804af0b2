"""Rows for PostgreSQL as one JSON parameter: any number of rows, one statement text.

An INSERT of n rows with a parameter per value is a new statement for every n (compiled by
SQLAlchemy, prepared by PostgreSQL, and as many values to convert one by one). Here a table's
rows travel as one JSON array, which PostgreSQL turns into rows of the table's own type
(`json_populate_recordset`), each value read as its column's type. Used where a burst of
rows goes in before Slack's ack (`storage.new_runs`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from sqlalchemy import DateTime, Table
from sqlalchemy import Enum as SAEnum


def as_json(table: Table, rows: Sequence[Mapping[str, Any]]) -> str:
    """These rows of `table` as the JSON `insert_of` reads: each value as PostgreSQL reads its
    column's type (an `sa.Enum` column holds its members' names, a time its ISO form). A
    NULL is left out: `json_populate_recordset` reads a missing key as NULL, and a new run's
    row is mostly NULLs (half its JSON, written before an ack)."""
    named = _named_enums(table)
    times = _time_columns(table)
    out = []
    for row in rows:
        given = {c: v for c, v in row.items() if v is not None}
        for c, enum in named.items():
            if c in given:
                given[c] = _name(enum, given[c])
        for c in times:
            if c in given:
                given[c] = given[c].isoformat()
        out.append(given)
    return json.dumps(out, separators=(",", ":"))


def insert_of(table: Table, columns: Sequence[str], parameter: str) -> str:
    """`INSERT INTO table (columns) SELECT … FROM` the rows in JSON parameter `parameter`
    (each row named `r`, for a WHERE to follow)."""
    names = ", ".join(_quoted(c) for c in columns)
    return (
        f"INSERT INTO {_quoted(table.name)} ({names}) SELECT {names} FROM "
        f"json_populate_recordset(CAST(NULL AS {_quoted(table.name)}), "
        f"CAST(:{parameter} AS json)) AS r"
    )


def columns_of(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The columns these rows give values for, in the table's order."""
    given = set().union(*(row.keys() for row in rows))
    return tuple(c.name for c in table.columns if c.name in given)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.cache
def _named_enums(table: Table) -> dict[str, type[Enum]]:
    return {
        c.name: c.type.enum_class
        for c in table.columns
        if isinstance(c.type, SAEnum) and c.type.enum_class is not None
    }


@functools.cache
def _time_columns(table: Table) -> tuple[str, ...]:
    return tuple(
        c.name for c in table.columns if isinstance(getattr(c.type, "impl", c.type), DateTime)
    )


def _name(enum: type[Enum], value: Any) -> str:
    return (value if isinstance(value, enum) else enum(value)).name

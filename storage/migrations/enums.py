"""Helpers for revisions that change the values of an enum column."""

from __future__ import annotations

from alembic import op


def add_enum_values(type_name: str, *names: str) -> None:
    """Let an enum column hold new members (by their NAME, as Baton stores them).

    PostgreSQL: the column's ENUM type (e.g. `runstatus`) gains the labels. They are added
    outside the revision's transaction, as PostgreSQL requires before a value can be used,
    so a later statement in the same revision may already write them. SQLite stores enums
    as VARCHAR without a check and needs nothing.
    """
    # They go into SQL text as they are: only plain names (as Python's member names are).
    if not all(n.isidentifier() for n in (type_name, *names)):
        raise ValueError(f"not an enum type and member names: {type_name!r}, {names!r}")
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name in names:
            op.execute(f"ALTER TYPE {type_name} ADD VALUE IF NOT EXISTS '{name}'")

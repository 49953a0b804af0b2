"""The database's schema for people: start-up's check, `baton db upgrade` and `baton db current`.

`baton run` and the sandbox (and `baton worker`, when it comes) start through
`open_database`; `baton doctor` describes the same states with the same sentences.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.errors import BotError
from storage import Database, schema
from storage.clock import REAL, Clock
from storage.schema import SchemaState, SchemaStatus

UPGRADE_HINT = "run `baton db upgrade`"


class DatabaseNotReady(BotError):
    """Start-up stops: the schema is not this Baton's, and nothing may change it now."""


def describe(found: SchemaState) -> str:
    """Where the database stands: `at head (0002)`, `behind: at 0001, head is 0002`, …"""
    match found.status:
        case SchemaStatus.AT_HEAD:
            return f"at head ({found.current})"
        case SchemaStatus.BEHIND:
            return f"behind: at {found.current}, head is {found.head}"
        case SchemaStatus.EMPTY:
            return f"behind: no tables yet, head is {found.head}"
        case SchemaStatus.UNVERSIONED:
            return f"behind: Baton 0.1.0's tables without a revision, head is {found.head}"
        case SchemaStatus.UNKNOWN:
            return schema.unknown_revision(found)


async def open_database(settings: Settings, *, clock: Clock = REAL) -> Database:
    """The database, at head: upgraded first when BATON_AUTO_MIGRATE allows it, else refused.

    Raises DatabaseNotReady (one sentence) when it is behind and auto-migrate is off, or when
    a newer Baton has upgraded it.
    """
    db = Database(settings.database_url, clock=clock)
    try:
        found = await schema.state(db)
        if found.status is SchemaStatus.UNKNOWN:
            raise DatabaseNotReady(schema.unknown_revision(found))
        if found.needs_upgrade:
            if not settings.auto_migrate:
                raise DatabaseNotReady(
                    f"the database is {describe(found)}; {UPGRADE_HINT} first, "
                    "or set BATON_AUTO_MIGRATE=true"
                )
            await schema.upgrade(db)
    except schema.SchemaError as e:
        await db.dispose()
        raise DatabaseNotReady(str(e)) from e
    except BaseException:
        await db.dispose()
        raise
    return db


def shown_url(settings: Settings) -> str:
    """BATON_DATABASE_URL with its password hidden."""
    return make_url(settings.database_url).render_as_string(hide_password=True)


def missing_sqlite_file(settings: Settings) -> bool:
    """A SQLite file that does not exist yet (connecting would create it)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    return not Path(url.database).exists()


async def stored_state(settings: Settings) -> SchemaState | None:
    """Where the database stands, or None for a SQLite file not made yet (nothing is created)."""
    if missing_sqlite_file(settings):
        return None
    db = Database(settings.database_url)
    try:
        return await schema.state(db)
    finally:
        await db.dispose()


def current(settings: Settings, *, out: TextIO | None = None) -> int:
    """`baton db current`: the revision and whether it is head; exit 0 at head, 1 if not."""
    stream = out if out is not None else sys.stdout
    try:
        found = asyncio.run(stored_state(settings))
    except Exception as e:
        return _failed("current", settings, e)
    if found is None:
        print(
            f"{shown_url(settings)} · no database yet, head is {schema.BATON.head}; {UPGRADE_HINT}",
            file=stream,
        )
        return 1
    hint = f"; {UPGRADE_HINT}" if found.needs_upgrade else ""
    print(f"{shown_url(settings)} · {describe(found)}{hint}", file=stream)
    return 0 if found.status is SchemaStatus.AT_HEAD else 1


def upgrade(settings: Settings, *, out: TextIO | None = None) -> int:
    """`baton db upgrade`: bring the database to head (once, however many run it at once)."""
    stream = out if out is not None else sys.stdout
    try:
        done = asyncio.run(_upgrade(settings))
    except Exception as e:
        return _failed("upgrade", settings, e)
    before = done.before
    if not done.ran:
        print(f"{shown_url(settings)} · already at head ({done.after})", file=stream)
        return 0
    origin = {
        SchemaStatus.EMPTY: "an empty database",
        SchemaStatus.UNVERSIONED: "Baton 0.1.0's tables",
    }.get(before.status, str(before.current))
    print(f"{shown_url(settings)} · upgraded from {origin} to {done.after} (head)", file=stream)
    return 0


async def _upgrade(settings: Settings) -> schema.Upgrade:
    db = Database(settings.database_url)
    try:
        return await schema.upgrade(db)
    finally:
        await db.dispose()


def _failed(command: str, settings: Settings, e: Exception) -> int:
    if isinstance(e, schema.SchemaError):
        print(f"baton db {command}: {e}", file=sys.stderr)
        return 1
    # SQLAlchemy wraps the driver's error; the driver's own words are the useful part.
    cause = getattr(e, "orig", None) or e
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    print(f"baton db {command}: {shown_url(settings)} · {first}", file=sys.stderr)
    return 2

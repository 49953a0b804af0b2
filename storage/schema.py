"""Alembic owns the schema: where a database stands, and bringing it to head.

The revisions live in `storage/migrations/versions/`. A database made by the release before
migrations (its tables created with `create_all`, no `alembic_version`) is adopted at the
initial revision, which equals that release's tables, and upgraded from there.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database
from storage.errors import StorageError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

# The revision equal to the tables of the last release without migrations.
INITIAL = "0001"
RELEASE_TABLES = frozenset(
    {
        "runs",
        "tasks",
        "events",
        "seen_slack_events",
        "approvals",
        "tool_calls",
        "schedules",
        "schedule_fires",
    }
)
VERSION_TABLE = "alembic_version"

# Any fixed number will do, as long as every Baton uses the same one: replicas starting
# together queue on this PostgreSQL advisory lock, and only the first finds work to do.
UPGRADE_LOCK = 7_272_741


class SchemaError(StorageError):
    """The database cannot be brought to head by this Baton; the message says why."""


class SchemaStatus(StrEnum):
    AT_HEAD = "at head"
    BEHIND = "behind"  # at an older revision
    EMPTY = "empty"  # none of Baton's tables: a new database
    UNVERSIONED = "unversioned"  # the release's tables from before migrations, no revision
    UNKNOWN = "unknown"  # at a revision this Baton does not have (a newer Baton's)


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands against this Baton's revisions."""

    current: str | None
    head: str
    status: SchemaStatus

    @property
    def needs_upgrade(self) -> bool:
        return self.status in (SchemaStatus.BEHIND, SchemaStatus.EMPTY, SchemaStatus.UNVERSIONED)


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: the revision before (None for a new database) and after."""

    before: SchemaState
    after: str

    @property
    def ran(self) -> bool:
        return self.before.needs_upgrade


class Migrations:
    """A folder of Alembic revisions: Baton's own, or a copy that tests extend."""

    def __init__(self, location: Path = MIGRATIONS) -> None:
        self.location = location

    def config(self, connection: Connection | None = None) -> Config:
        # Alembic's own console messages are not for Baton's users: what happened is logged.
        cfg = Config(cmd_opts=argparse.Namespace(quiet=True))
        cfg.set_main_option("script_location", str(self.location))
        # env.py runs the revisions on this connection (no URL, no alembic.ini).
        cfg.attributes["connection"] = connection
        return cfg

    @cached_property
    def scripts(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())

    @property
    def head(self) -> str:
        head = self.scripts.get_current_head()
        if head is None:
            raise SchemaError(f"no revisions in {self.location / 'versions'}")
        return head

    def knows(self, revision: str) -> bool:
        return revision in {s.revision for s in self.scripts.walk_revisions()}


BATON = Migrations()


async def state(db: Database, migrations: Migrations = BATON) -> SchemaState:
    """Where the database stands; nothing is changed."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(_state, migrations)


async def upgrade(db: Database, migrations: Migrations = BATON) -> Upgrade:
    """Bring the database to head, once even when several processes ask at the same time.

    On PostgreSQL the work happens under an advisory lock: the first process upgrades, the
    others wait for it and then find nothing to do. Each revision runs in its own transaction.
    Raises SchemaError when the database is at a revision this Baton does not know.
    """
    async with db.engine.connect() as conn:
        locked = not db.is_sqlite
        if locked:
            await _lock(conn)
        try:
            return await conn.run_sync(_upgrade, migrations)
        finally:
            if locked:
                # A failed revision may have left its transaction open; end it to unlock.
                await conn.rollback()
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": UPGRADE_LOCK})
                await conn.commit()


async def _lock(conn: AsyncConnection) -> None:
    got = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": UPGRADE_LOCK})
    if not got:
        log.info("another Baton is upgrading the database; waiting for it")
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": UPGRADE_LOCK})
    # A session lock outlives this transaction; Alembic starts its own ones after it.
    await conn.commit()


def _state(conn: Connection, migrations: Migrations) -> SchemaState:
    head = migrations.head
    tables = set(inspect(conn).get_table_names())
    current = MigrationContext.configure(conn).get_current_revision()
    # Reading opened a transaction; Alembic must start from none to own its transactions.
    conn.rollback()
    if current is None:
        status = SchemaStatus.UNVERSIONED if tables & RELEASE_TABLES else SchemaStatus.EMPTY
    elif current == head:
        status = SchemaStatus.AT_HEAD
    elif migrations.knows(current):
        status = SchemaStatus.BEHIND
    else:
        status = SchemaStatus.UNKNOWN
    if status is SchemaStatus.UNVERSIONED and (missing := RELEASE_TABLES - tables):
        raise SchemaError(
            "the database has some of Baton's tables but not "
            f"{', '.join(sorted(missing))}, and no migration history: "
            "restore it from a backup, or start from an empty database"
        )
    return SchemaState(current=current, head=head, status=status)


def _upgrade(conn: Connection, migrations: Migrations) -> Upgrade:
    before = _state(conn, migrations)
    if before.status is SchemaStatus.UNKNOWN:
        raise SchemaError(unknown_revision(before))
    cfg = migrations.config(conn)
    if before.status is SchemaStatus.UNVERSIONED:
        # Made by the release before migrations: its tables are the initial revision.
        command.stamp(cfg, INITIAL)
    if before.needs_upgrade:
        command.upgrade(cfg, "head")
        log.info(
            "database upgraded from %s to %s",
            before.current or f"no revision ({before.status})",
            before.head,
        )
    return Upgrade(before=before, after=before.head)


def unknown_revision(found: SchemaState) -> str:
    """The sentence for a database that a newer Baton has upgraded."""
    return (
        f"the database is at revision {found.current}, which this Baton does not know "
        f"(its newest is {found.head}): a newer Baton upgraded it; run that version"
    )

"""Alembic owns the schema: release databases upgrade with every row kept, on SQLite and PostgreSQL.

The release fixtures in tests/fixtures/ were written by Baton 0.1.0's own code (see
make_release_databases.py there). After any upgrade the schema must equal what
storage/models.py declares, as Alembic's autogenerate comparison sees it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import sys
import zipfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from storage import Database, approvals, runs, schedules, schema
from storage.migrations.autogen import differences
from storage.models import AlertMode, ApprovalStatus, Run, RunStatus, TaskStatus
from storage.schema import Migrations, SchemaStatus
from testkit.databases import RELEASE_PG_DUMP, RELEASE_SQLITE, fresh_pg_database, psql

# What make_release_databases.py wrote: a test against an empty fixture cannot pass.
RELEASE_ROWS = {
    "runs": 8,
    "tasks": 10,
    "events": 15,
    "seen_slack_events": 3,
    "approvals": 4,
    "tool_calls": 2,
    "schedules": 3,
    "schedule_fires": 4,
}


async def pg_dump_schema(url: str) -> list[str]:
    """The schema as pg_dump writes it, without its comments and session lines."""
    proc = await asyncio.create_subprocess_exec(
        "pg_dump",
        "--schema-only",
        "--no-owner",
        "--exclude-table=alembic_version",
        "--dbname",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    return [
        line
        for line in out.decode().splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]


def sqlite_schema(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return sorted(
            sql
            for (name, sql) in conn.execute("SELECT name, sql FROM sqlite_master")
            if sql and name != "alembic_version"
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def release_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database Baton 0.1.0 made and used: a copy of the SQLite file, or the dump restored."""
    if request.param == "sqlite":
        shutil.copyfile(RELEASE_SQLITE, tmp_path / "baton.db")
        db = Database(f"sqlite:///{tmp_path}/baton.db")
        yield db
        await db.dispose()
        return
    async with fresh_pg_database() as url:
        await psql(url, "--file", str(RELEASE_PG_DUMP))
        db = Database(url)
        yield db
        await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A new database with no tables."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path}/baton.db")
        yield db
        await db.dispose()
        return
    async with fresh_pg_database() as url:
        db = Database(url)
        yield db
        await db.dispose()


async def snapshot(db: Database, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table, in primary-key order, as the database returns them."""

    def read(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
        found = {}
        for table, names in columns.items():
            keys = inspect(conn).get_pk_constraint(table)["constrained_columns"]
            quoted = ", ".join(f'"{n}"' for n in names)
            order = ", ".join(f'"{k}"' for k in keys)
            found[table] = [
                tuple(r)
                for r in conn.execute(text(f"SELECT {quoted} FROM {table} ORDER BY {order}"))
            ]
        return found

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)


async def release_columns(db: Database) -> dict[str, list[str]]:
    def read(conn: Connection) -> dict[str, list[str]]:
        return {t: [c["name"] for c in inspect(conn).get_columns(t)] for t in RELEASE_ROWS}

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)


async def schema_differences(db: Database) -> list[Any]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(differences)


async def versions(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def test_a_release_database_upgrades_to_head_with_every_row_kept(
    release_db: Database,
) -> None:
    db = release_db
    assert (await schema.state(db)).status is SchemaStatus.UNVERSIONED
    columns = await release_columns(db)
    before = await snapshot(db, columns)
    assert {table: len(rows) for table, rows in before.items()} == RELEASE_ROWS

    done = await schema.upgrade(db)

    assert done.ran and done.before.status is SchemaStatus.UNVERSIONED
    assert await snapshot(db, columns) == before
    assert await schema_differences(db) == []
    assert await versions(db) == [schema.BATON.head]
    assert (await schema.state(db)).status is SchemaStatus.AT_HEAD

    # Today's code reads what the release wrote…
    waiting = await runs.get_run(db, "a1000004")
    assert waiting is not None and waiting.status is RunStatus.WAITING
    assert waiting.traceparent is None and waiting.budget_usd == 0.5
    first = await runs.get_run(db, "a1000001")
    assert first is not None and first.request.endswith("Café ✓ — 日本語\nsecond line")
    assert first.plan is not None and [t["id"] for t in first.plan["tasks"]] == ["check", "digest"]
    tasks = {t.task_id: t for t in await runs.list_tasks(db, "a1000004")}
    assert tasks["deploy"].status is TaskStatus.WAITING and tasks["deploy"].transcript is not None
    assert tasks["deploy"].transcript[1]["tool_calls"][0]["name"] == "webhook_post"
    pending = await approvals.get(db, "ap000001")
    assert pending is not None and pending.status is ApprovalStatus.PENDING
    assert pending.tool_args == {"name": "deploys", "payload": {"version": "1.4.2"}}
    assert pending.approvers == ["U0BOB", "S0ONCALL"]
    daily = await schedules.get(db, "s1000001")
    assert daily is not None and daily.alert is AlertMode.ON_CHANGE
    assert daily.timezone == "Europe/Berlin" and daily.quiet_daily
    [fire] = [f for f in await schedules.recent_fires(db, "s1000001") if f.run_id]
    assert fire.checks is not None and fire.checks[
        "GET https://shop.example.com/payments/health"
    ] == {"ok": False, "state": "503", "figure": "12 ms"}

    # …and writes after it: PostgreSQL's sequences carry on from the restored rows.
    await runs.create_run(db, Run(id="b2000001", request="after the upgrade", traceparent="00-ab"))
    again = await runs.get_run(db, "b2000001")
    assert again is not None and again.traceparent == "00-ab"
    after = await snapshot(db, {"events": ["id", "run_id", "kind"]})
    assert after["events"][-1][1:] == ("b2000001", "run_created")
    assert len(after["events"]) == RELEASE_ROWS["events"] + 1


async def test_the_initial_revision_creates_exactly_the_release_tables(
    release_db: Database, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        if release_db.is_sqlite:
            url = f"sqlite:///{tmp_path}/new.db"
        else:
            url = await stack.enter_async_context(fresh_pg_database())
        new = Database(url)
        async with new.engine.connect() as conn:
            await conn.run_sync(lambda c: command.upgrade(schema.BATON.config(c), schema.INITIAL))
        await new.dispose()

        if release_db.is_sqlite:
            assert sqlite_schema(tmp_path / "new.db") == sqlite_schema(tmp_path / "baton.db")
        else:
            release = release_db.engine.url.set(drivername="postgresql")
            released = await pg_dump_schema(release.render_as_string(hide_password=False))
            assert "CREATE TYPE public.runstatus AS ENUM (" in released
            assert await pg_dump_schema(url) == released


async def test_a_new_database_is_created_at_head_and_matches_the_models(
    empty_db: Database,
) -> None:
    db = empty_db
    assert (await schema.state(db)).status is SchemaStatus.EMPTY

    done = await schema.upgrade(db)

    assert done.ran and done.before.status is SchemaStatus.EMPTY
    assert await schema_differences(db) == []
    assert await versions(db) == [schema.BATON.head]
    assert not (await schema.upgrade(db)).ran


async def test_every_revision_downgrades_to_an_empty_database_and_upgrades_again(
    empty_db: Database,
) -> None:
    db = empty_db
    await schema.upgrade(db)
    async with db.engine.connect() as conn:
        await conn.run_sync(lambda c: command.downgrade(schema.BATON.config(c), "base"))
        left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        types = (
            []
            if db.is_sqlite
            else list(
                await conn.scalars(
                    text("SELECT typname FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid")
                )
            )
        )
    assert left <= {"alembic_version"} and types == []

    await schema.upgrade(db)
    assert await schema_differences(db) == []


def test_the_revisions_form_one_line_from_the_initial_one() -> None:
    scripts = schema.BATON.scripts
    assert scripts.get_heads() == [schema.BATON.head]
    chain = [s.revision for s in scripts.walk_revisions()]  # head first
    assert chain[-1] == schema.INITIAL
    assert chain == [f"{n:04d}" for n in range(len(chain), 0, -1)]
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_"), script.path


ADD_ARCHIVED = '''"""A later Baton's run status: `archived`.

Revision ID: 0099
Revises: {down}
"""

from alembic import op

from storage.migrations.enums import add_enum_values

revision = "0099"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_enum_values("runstatus", "ARCHIVED")
    # Usable at once, in the same revision.
    op.execute("UPDATE runs SET status = 'ARCHIVED' WHERE id = 'a1000006'")


def downgrade() -> None:
    pass
'''


async def test_a_later_revision_can_add_an_enum_value_on_both_databases(
    release_db: Database, tmp_path: Path
) -> None:
    later = Migrations(tmp_path / "migrations")
    shutil.copytree(schema.MIGRATIONS, later.location, ignore=shutil.ignore_patterns("__pycache__"))
    (later.location / "versions" / "0099_run_archived.py").write_text(
        ADD_ARCHIVED.format(down=schema.BATON.head)
    )
    db = release_db
    if not db.is_sqlite:
        # Without the revision PostgreSQL refuses the value: the type is the release's.
        with pytest.raises(DBAPIError, match="invalid input value for enum runstatus"):
            async with db.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE runs SET status = 'ARCHIVED' WHERE id = 'a1000006'")
                )

    await schema.upgrade(db, later)

    async with db.engine.connect() as conn:
        status = await conn.scalar(text("SELECT status FROM runs WHERE id = 'a1000006'"))
    assert status == "ARCHIVED"
    assert (await schema.state(db, later)).status is SchemaStatus.AT_HEAD
    # The models here do not know `archived`: on PostgreSQL the comparison says so, which
    # is how a model change without its revision is caught. SQLite has nothing to compare.
    found = await schema_differences(db)
    if db.is_sqlite:
        assert found == []
    else:
        [[(kind, _, table, column, *_)]] = found
        assert (kind, table, column) == ("modify_type", "runs", "status")


async def test_a_database_a_newer_baton_upgraded_is_not_touched(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0042'"))

    found = await schema.state(db)
    assert found.status is SchemaStatus.UNKNOWN
    with pytest.raises(
        schema.SchemaError, match=re.escape("at revision 0042, which this Baton does not know")
    ):
        await schema.upgrade(db)
    assert await versions(db) == ["0042"]
    await db.dispose()


NEW_MODEL = """
import asyncio, json, sys
from pathlib import Path
from sqlmodel import Field, SQLModel

class Widget(SQLModel, table=True):
    __tablename__ = "widgets"
    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(index=True)
    note: str | None = None

from storage import Database, schema
from storage.migrations.autogen import differences
from storage.migrations.new import main

scripts = Path(sys.argv[1])
code = main(["widgets table", "--scripts", str(scripts)])

async def check() -> list[str]:
    db = Database(f"sqlite:///{scripts.parent}/fresh.db")
    await schema.upgrade(db, schema.Migrations(scripts))
    async with db.engine.connect() as conn:
        found = await conn.run_sync(differences)
    await db.dispose()
    return [repr(d) for d in found]

print(json.dumps({"code": code, "differences": asyncio.run(check())}))
"""


async def test_make_migration_writes_the_next_revision_for_a_new_model(tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        NEW_MODEL,
        str(scripts),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    *said, result = out.decode().splitlines()
    # The revision, applied to a new database, leaves nothing between it and the models.
    assert json.loads(result) == {"code": 0, "differences": []}
    head = max(int(p.name[:4]) for p in (schema.MIGRATIONS / "versions").glob("[0-9]*.py"))
    [written] = (scripts / "versions").glob(f"{head + 1:04d}_*.py")
    assert written.name == f"{head + 1:04d}_widgets_table.py" and said == [
        f"wrote {written}: read it, fix what autogenerate cannot know, then commit it"
    ]
    source = written.read_text()
    assert f'down_revision = "{head:04d}"' in source and "sqlmodel" not in source
    assert 'sa.Column("topic", sa.String(), nullable=False)' in source
    assert (
        'batch_op.create_index(batch_op.f("ix_widgets_topic"), ["topic"], unique=False)' in source
    )


async def test_make_migration_says_so_when_the_models_and_head_agree(tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storage.migrations.new",
        "nothing",
        "--scripts",
        str(scripts),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 1 and out == b""
    assert "storage/models.py and the newest revision agree: nothing to generate" in err.decode()
    assert sorted(p.name for p in (scripts / "versions").glob("*.py")) == sorted(
        p.name for p in (schema.MIGRATIONS / "versions").glob("*.py")
    )


def test_the_wheel_ships_the_migrations(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[1]
    [wheel] = list(WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"]))
    with zipfile.ZipFile(wheel) as z:
        shipped = {n for n in z.namelist() if n.startswith("storage/migrations/")}
    expected = {
        f"storage/{p.relative_to(root / 'storage').as_posix()}"
        for p in schema.MIGRATIONS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {"storage/migrations/env.py", "storage/migrations/script.py.mako"} <= expected
    assert len([n for n in expected if n.startswith("storage/migrations/versions/")]) == len(
        list(schema.BATON.scripts.walk_revisions())
    )
    assert shipped == expected


async def test_a_database_with_only_some_release_tables_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path}/odd.db")
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE runs (id VARCHAR PRIMARY KEY)"))
        await conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY)"))

    with pytest.raises(schema.SchemaError) as refused:
        await schema.upgrade(db)
    assert str(refused.value) == (
        "the database has some of Baton's tables but not approvals, schedule_fires, schedules, "
        "seen_slack_events, tasks, tool_calls, and no migration history: restore it from a "
        "backup, or start from an empty database"
    )
    async with db.engine.connect() as conn:
        left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert left == {"runs", "events"}
    await db.dispose()

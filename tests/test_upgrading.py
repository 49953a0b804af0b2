"""Upgrading a deployment: start-up's check, `baton db upgrade|current`, replicas migrating once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from bot.app import create
from bot.config import Settings
from bot.database import DatabaseNotReady
from sandbox.web_api import SlackStandIn
from storage import Database, runs, schema
from storage.schema import SchemaStatus
from testkit.databases import RELEASE_PG_DUMP, RELEASE_SQLITE, fresh_pg_database, psql
from testkit.harness import SECRET, running_bot, running_sandbox, settings_for
from testkit.processes import healthy
from tests.test_migrations import RELEASE_ROWS

ROOT = str(Path(__file__).resolve().parents[1])
HEAD = schema.BATON.head


@dataclass
class Result:
    code: int
    out: str
    err: str


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": ROOT,
        "BATON_DATABASE_URL": db_url,
        "BATON_LOG_LEVEL": "WARNING",
        **extra,
    }


async def baton(*args: str, env: dict[str, str], cwd: Path) -> Result:
    """`baton …` as an operator runs it, to completion."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slack_env(slack: SlackStandIn) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
    }


@asynccontextmanager
async def serving(env: dict[str, str], cwd: Path, log: Path) -> AsyncIterator[str]:
    """`baton run --http` in its own process, its log in `log`; yields its URL once it answers."""
    port = free_port()
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "--http",
            "--port",
            str(port),
            cwd=cwd,
            env=env,
            stderr=sink,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def test_baton_run_refuses_a_database_that_is_behind_until_baton_db_upgrade(
    tmp_path: Path,
) -> None:
    async with fresh_pg_database() as url, SlackStandIn() as slack:
        await psql(url, "--file", str(RELEASE_PG_DUMP))
        # The password is ignored by the test server; it must never be shown.
        with_password = url.replace("postgres@", "postgres:hunter2@")
        env = env_for(with_password, **slack_env(slack))

        refused = await baton("run", "--http", "--port", str(free_port()), env=env, cwd=tmp_path)
        assert refused.code == 2
        assert refused.err.splitlines() == [
            "Baton cannot start: the database is behind: Baton 0.1.0's tables without a "
            f"revision, head is {HEAD}; run `baton db upgrade` first, or set BATON_AUTO_MIGRATE=true"
        ]
        db = Database(url)
        assert (await schema.state(db)).status is SchemaStatus.UNVERSIONED

        shown = with_password.replace("hunter2", "***")
        behind = await baton("db", "current", env=env, cwd=tmp_path)
        assert (behind.code, behind.out.splitlines()) == (
            1,
            [
                f"{shown} · behind: Baton 0.1.0's tables without a revision, head is {HEAD}; "
                "run `baton db upgrade`"
            ],
        )
        upgraded = await baton("db", "upgrade", env=env, cwd=tmp_path)
        assert (upgraded.code, upgraded.out.splitlines(), upgraded.err) == (
            0,
            [f"{shown} · upgraded from Baton 0.1.0's tables to {HEAD} (head)"],
            "",
        )
        at_head = await baton("db", "current", env=env, cwd=tmp_path)
        assert (at_head.code, at_head.out.splitlines()) == (0, [f"{shown} · at head ({HEAD})"])
        again = await baton("db", "upgrade", env=env, cwd=tmp_path)
        assert (again.code, again.out.splitlines()) == (0, [f"{shown} · already at head ({HEAD})"])
        assert "hunter2" not in behind.out + upgraded.out + at_head.out + refused.err

        # The release's daily schedule fires at 08:00 UTC: started in the minutes after, Baton
        # would rightly make up the missed fire with a run of its own.
        await psql(url, "--command", "UPDATE schedules SET paused = true")
        async with serving(env, tmp_path, tmp_path / "baton.log") as baton_url:
            await healthy(baton_url)
        assert await runs.count_runs(db) == RELEASE_ROWS["runs"]
        await db.dispose()


async def test_replicas_starting_together_on_a_new_postgresql_database_migrate_once(
    tmp_path: Path,
) -> None:
    async with fresh_pg_database() as url, SlackStandIn() as slack:
        env = env_for(
            url,
            **slack_env(slack),
            BATON_AUTO_MIGRATE="true",
            BATON_LOG_LEVEL="INFO",
            BATON_LOG_FORMAT="json",
        )
        # Hold the upgrade lock until both replicas are queued on it, so they truly start
        # together: then one upgrades and the other finds the work done.
        holder = await asyncpg.connect(url.replace("postgresql://", "postgres://"))
        await holder.execute("SELECT pg_advisory_lock($1)", schema.UPGRADE_LOCK)
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        async with (
            serving(env, tmp_path, logs[0]) as first,
            serving(env, tmp_path, logs[1]) as second,
        ):
            deadline = time.monotonic() + 60
            while (
                await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
                    "AND NOT granted",
                    schema.UPGRADE_LOCK,
                )
                < 2
            ):
                assert time.monotonic() < deadline, "the replicas never waited for the lock"
                await asyncio.sleep(0.05)
            await holder.execute("SELECT pg_advisory_unlock($1)", schema.UPGRADE_LOCK)
            await holder.close()

            await asyncio.gather(healthy(first), healthy(second))

        db = Database(url)
        async with db.engine.connect() as conn:
            versions = list(
                (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )
        await db.dispose()
        assert versions == [HEAD]
        messages = [[str(r["message"]) for r in records(log)] for log in logs]
        upgraded = [[m for m in ms if m.startswith("database upgraded")] for ms in messages]
        assert sorted(len(u) for u in upgraded) == [0, 1], messages
        ran = [[m for m in ms if m.startswith("Running upgrade")] for ms in messages]
        revisions = len(list(schema.BATON.scripts.walk_revisions()))
        assert sorted(len(r) for r in ran) == [0, revisions], messages
        for ms in messages:
            assert "another Baton is upgrading the database; waiting for it" in ms


async def test_a_release_sqlite_database_is_upgraded_at_start_and_its_runs_shown(
    tmp_path: Path,
) -> None:
    shutil.copyfile(RELEASE_SQLITE, tmp_path / "baton.db")
    # The release's daily schedule fires at 08:00 UTC: started in the minutes after, Baton
    # would rightly make up the missed fire with a run of its own.
    with contextlib.closing(sqlite3.connect(tmp_path / "baton.db")) as release, release:
        release.execute("UPDATE schedules SET paused = 1")
    url = f"sqlite:///{tmp_path}/baton.db"
    # SQLite's default: upgrade at start.
    async with SlackStandIn() as slack, running_bot(slack, url, baton_auto_migrate=None) as bot:
        assert (await schema.state(bot.baton.db)).status is SchemaStatus.AT_HEAD
        _, report = await bot.slash("status a1000001")
        assert report is not None
        shown = json.dumps(report["blocks"], ensure_ascii=False)
        assert "a1000001" in shown and "web-checker" in shown and "succeeded" in shown
        assert await runs.count_runs(bot.baton.db) == RELEASE_ROWS["runs"]


async def test_a_new_sqlite_database_is_created_at_head_on_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    async with SlackStandIn() as slack, running_bot(slack, url, baton_auto_migrate=None) as bot:
        assert (await schema.state(bot.baton.db)).status is SchemaStatus.AT_HEAD


async def test_postgresql_starts_on_a_new_database_only_with_auto_migrate() -> None:
    async with fresh_pg_database() as url, SlackStandIn() as slack:
        with pytest.raises(DatabaseNotReady) as refused:
            await create(settings_for(slack, url, baton_auto_migrate=None), mode="http")
        assert str(refused.value) == (
            f"the database is behind: no tables yet, head is {HEAD}; run `baton db upgrade` "
            "first, or set BATON_AUTO_MIGRATE=true"
        )
        db = Database(url)
        assert (await schema.state(db)).status is SchemaStatus.EMPTY

        async with running_bot(slack, url, baton_auto_migrate=True) as bot:
            assert (await schema.state(bot.baton.db)).status is SchemaStatus.AT_HEAD
        await db.dispose()


def test_auto_migrate_is_on_for_sqlite_and_off_for_postgresql_unless_set() -> None:
    def auto(url: str, **values: object) -> bool:
        return Settings(_env_file=None, baton_database_url=url, **values).auto_migrate  # type: ignore[call-arg]

    assert auto("sqlite:///baton.db") is True
    assert auto("postgresql://db/baton") is False
    assert auto("postgresql+asyncpg://db/baton") is False
    assert auto("postgresql://db/baton", baton_auto_migrate=True) is True
    assert auto("sqlite:///baton.db", baton_auto_migrate=False) is False


async def test_the_sandbox_starts_at_head_even_with_auto_migrate_off() -> None:
    async with running_sandbox(baton_auto_migrate=False) as sandbox:
        assert sandbox.baton is not None
        assert (await schema.state(sandbox.baton.db)).status is SchemaStatus.AT_HEAD


async def test_a_database_a_newer_baton_upgraded_stops_start_up_and_upgrade(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0042'"))
    await db.dispose()
    says = (
        f"the database is at revision 0042, which this Baton does not know (its newest is "
        f"{HEAD}): a newer Baton upgraded it; run that version"
    )
    async with SlackStandIn() as slack:
        with pytest.raises(DatabaseNotReady) as refused:
            await create(settings_for(slack, sqlite_url), mode="http")
    assert str(refused.value) == says

    result = await baton("db", "upgrade", env=env_for(sqlite_url), cwd=tmp_path)
    assert (result.code, result.out, result.err.splitlines()) == (
        1,
        "",
        [f"baton db upgrade: {says}"],
    )


async def test_baton_db_current_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/later.db"
    result = await baton("db", "current", env=env_for(url), cwd=tmp_path)
    assert (result.code, result.out.splitlines()) == (
        1,
        [f"{url} · no database yet, head is {HEAD}; run `baton db upgrade`"],
    )
    assert not (tmp_path / "later.db").exists()

"""A database that goes away mid-run: the driver lets go, and the run resumes when it is back.

PostgreSQL: connections are cut (`pg_terminate_backend`) or refused for a while (the test
database stops accepting connections). SQLite: its directory turns read-only, or its disk
fills up — a small tmpfs, remounted or filled, since the tests run as root (CI does).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import pytest

from bot.transports import housekeeping_loop
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunStatus
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.harness import Bot, running_bot
from tests.trust_helpers import answers, model_settings, write_catalog

# Short leases: a driver that lost the database is taken over seconds later, not minutes.
LEASES = Limits(lease_seconds=2.0)


@asynccontextmanager
async def bot_with_slow_step(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Bot, FakeOpenAI]]:
    async with SlackStandIn() as slack, FakeOpenAI() as openai:
        openai.when(
            lambda s: s.system.startswith("You are thinker"), Reply(text="thought", delay=1.0)
        )
        async with running_bot(
            slack,
            db_url,
            baton_agents_file=write_catalog(tmp_path),
            limits=LEASES,
            **model_settings(openai.base_url),
        ) as bot:
            # The process's sweep, as `baton run` has it (outside the work a test waits for).
            sweeper = asyncio.create_task(housekeeping_loop(bot.baton, every=0.5))
            try:
                yield bot, openai
            finally:
                bot.baton.stopping.set()
                await sweeper


async def run_started(bot: Bot, openai: FakeOpenAI) -> str:
    await bot.slash_ack("run think")
    await asyncio.wait_for(openai.received(1), timeout=20)
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    return run.id


async def finishes(bot: Bot, run_id: str) -> None:
    """Wait (generously) until the run has finished and its answer is in the thread."""

    async def done() -> None:
        while True:
            try:
                run = await runs.get_run(bot.baton.db, run_id)
            except Exception:
                run = None  # the database may still be coming back
            if run is not None and run.status.is_final and answers(bot.slack, run_id):
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(done(), timeout=60)


def admin_dsn(url: str) -> tuple[str, str]:
    base, name = url.rsplit("/", 1)
    return f"{base.replace('postgresql://', 'postgres://')}/postgres", name


async def test_postgresql_connections_cut_mid_run_do_not_lose_the_run(
    pg_url: str, tmp_path: Path
) -> None:
    async with bot_with_slow_step(pg_url, tmp_path) as (bot, openai):
        run_id = await run_started(bot, openai)
        dsn, name = admin_dsn(pg_url)
        admin = await asyncpg.connect(dsn)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        assert cut >= 1
        await finishes(bot, run_id)
        run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert len(answers(bot.slack, run_id)) == 1


async def test_postgresql_refusing_connections_for_a_while_delays_the_run_and_loses_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    dsn, name = admin_dsn(pg_url)
    async with bot_with_slow_step(pg_url, tmp_path) as (bot, openai):
        run_id = await run_started(bot, openai)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            # The step finishes while the database is away: its driver cannot record it.
            await bot.slack.wait_for(lambda: not bot.baton.orchestrator.driving(run_id), timeout=30)
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        await finishes(bot, run_id)
        run = await runs.get_run(bot.baton.db, run_id)
        kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert kinds.count("run_finished") == 1 and "run_resumed" in kinds
    assert len(answers(bot.slack, run_id)) == 1


async def sh(*command: str, check: bool = True) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    if await proc.wait() != 0 and check:
        raise RuntimeError(f"{' '.join(command)} failed")


@contextmanager
def small_disk(path: Path, *, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` at `path`, removed afterwards (mounting needs root; CI runs as root)."""
    if os.geteuid() != 0:
        raise RuntimeError(
            "This test mounts a small tmpfs to make a disk read-only or full; run it as root "
            "(as .ci/run does)."
        )
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        # Everything mounted there, a view a test put over it included: umount fails once
        # nothing is left.
        while subprocess.run(["umount", "-l", str(path)], capture_output=True).returncode == 0:
            pass


@pytest.mark.parametrize("fault", ["read-only", "full"])
async def test_a_sqlite_disk_that_turns_read_only_or_fills_up_mid_run_loses_nothing(
    tmp_path: Path, fault: str
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        url = f"sqlite:///{disk}/baton.db"
        async with bot_with_slow_step(url, tmp_path) as (bot, openai):
            run_id = await run_started(bot, openai)
            filler = disk / "filler"
            if fault == "read-only":
                # A read-only view over the directory: SQLite cannot create its journal there.
                await sh("mount", "--bind", str(disk), str(disk))
                await sh("mount", "-o", "remount,bind,ro", str(disk))
            else:
                # Fill what is left (dd stops with "No space left on device").
                await sh("dd", "if=/dev/zero", f"of={filler}", "bs=64k", check=False)
            try:
                await bot.slack.wait_for(
                    lambda: not bot.baton.orchestrator.driving(run_id), timeout=30
                )
            finally:
                if fault == "read-only":
                    # Lazily: a connection opened through the view keeps it busy until it
                    # is closed, and must find its way back to a writable disk by itself.
                    await sh("umount", "-l", str(disk))
                else:
                    filler.unlink()
            await finishes(bot, run_id)
            run = await runs.get_run(bot.baton.db, run_id)
            kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert kinds.count("run_finished") == 1
    if fault == "full":
        # The driver could not record the step: it let go, and the sweep resumed the run.
        assert "run_resumed" in kinds
    # (In WAL mode a read-only view over the directory does not stop a process that has the
    # files open: its run goes on as if nothing happened — which is as good.)
    assert len(answers(bot.slack, run_id)) == 1

"""Which installation store to authorise each request with (OAuth mode), on SQLite.

Every request looks up its workspace's installation before it is acked. Measured here: 200
lookups one after another over 20 installed workspaces, with a 1 ms ticker on the same event
loop whose lateness shows how long the loop was blocked (what every other request's ack would
wait) — slack_sdk's synchronous SQLAlchemy store called from the loop, its async one, and
Baton's store on its own tables.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import (
    AsyncSQLAlchemyInstallationStore,
    SQLAlchemyInstallationStore,
)
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from bot.workspaces import InstallationStore
from storage import Database, schema

TEAMS = [f"T{i:04d}" for i in range(20)]
LOOKUPS = 200
CLIENT_ID = "0000.1111"


def installation(team: str) -> Installation:
    return Installation(
        app_id="A0BATON",
        team_id=team,
        team_name=f"Team {team}",
        bot_token=f"xoxb-{team}",
        bot_id="B0BATON",
        bot_user_id="U0BATON",
        bot_scopes="chat:write,commands",
        user_id="U0ALICE",
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measured(lookup: Callable[[str], Awaitable[object]]) -> tuple[float, float]:
    """(median lookup in ms, p95 of the loop's lateness in ms) over LOOKUPS lookups."""
    done = asyncio.Event()
    late: list[float] = []

    async def ticker() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - start - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    late.clear()
    took = []
    for i in range(LOOKUPS):
        start = time.perf_counter()
        assert await lookup(TEAMS[i % len(TEAMS)])
        took.append(time.perf_counter() - start)
        await asyncio.sleep(0)  # the next request comes in on its own, as Slack's do
    done.set()
    await tick
    return pct(took, 0.5) * 1000, pct(late, 0.95) * 1000


async def sync_store(folder: Path) -> tuple[float, float]:
    store = SQLAlchemyInstallationStore(
        client_id=CLIENT_ID, engine=create_engine(f"sqlite:///{folder}/sync.db")
    )
    store.create_tables()
    for team in TEAMS:
        store.save(installation(team))

    async def lookup(team: str) -> object:
        return store.find_bot(enterprise_id=None, team_id=team)

    try:
        return await measured(lookup)
    finally:
        store.engine.dispose()


async def async_sdk_store(folder: Path) -> tuple[float, float]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{folder}/async.db")
    store = AsyncSQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine)
    await store.create_tables()
    for team in TEAMS:
        await store.async_save(installation(team))

    async def lookup(team: str) -> object:
        return await store.async_find_bot(enterprise_id=None, team_id=team)

    try:
        return await measured(lookup)
    finally:
        await engine.dispose()


async def baton_store(folder: Path) -> tuple[float, float]:
    db = Database(f"sqlite:///{folder}/baton.db")
    await schema.upgrade(db)
    store = InstallationStore(db, on_change=lambda _: None)
    for team in TEAMS:
        await store.async_save(installation(team))

    async def lookup(team: str) -> object:
        return await store.async_find_bot(enterprise_id=None, team_id=team)

    try:
        return await measured(lookup)
    finally:
        await db.dispose()


async def installation_stores() -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, run in (
            ("slack_sdk sync SQLAlchemy store", sync_store),
            ("slack_sdk async SQLAlchemy store", async_sdk_store),
            ("Baton's store (its tables)", baton_store),
        ):
            lookup, stall = await run(folder)
            rows.append(
                (
                    "authorise a request (SQLite)",
                    label,
                    f"lookup p50 {lookup:.2f} ms · loop late p95 {stall:.2f} ms",
                )
            )
    return rows

"""Which installation store to authorise each request with (OAuth mode), on SQLite.

Every request looks up its workspace's installation before it is acked. Measured here: 200
lookups over 20 installed workspaces, each lookup's time and the longest stretch it held the
event loop without letting go (what every other request's ack waits meanwhile) —
slack_sdk's synchronous SQLAlchemy store called from the loop, its async one, and Baton's
store on its own tables.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import (
    AsyncSQLAlchemyInstallationStore,
    SQLAlchemyInstallationStore,
)
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from bench.figures import pct
from bot.workspaces import InstallationStore
from storage import Database, normalize_url, schema
from testkit.databases import fresh_pg_database

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


class Held:
    """Runs a coroutine step by step, timing each step: how long it held the event loop
    before it next let go (a synchronous query holds it for the whole query)."""

    def __init__(self, coro: Coroutine[Any, Any, object]) -> None:
        self.coro = coro
        self.longest = 0.0

    def __await__(self) -> Generator[Any, Any, object]:
        sent: Any = None
        while True:
            start = time.perf_counter()
            try:
                waiting = self.coro.send(sent)
            except StopIteration as done:
                self.longest = max(self.longest, time.perf_counter() - start)
                return done.value
            self.longest = max(self.longest, time.perf_counter() - start)
            sent = yield waiting


async def measured(lookup: Callable[[str], Coroutine[Any, Any, object]]) -> tuple[float, float]:
    """(median lookup in ms, median of each lookup's longest hold on the loop in ms)."""
    took, held = [], []
    for i in range(LOOKUPS):
        step = Held(lookup(TEAMS[i % len(TEAMS)]))
        start = time.perf_counter()
        assert await step
        took.append(time.perf_counter() - start)
        held.append(step.longest)
    return pct(took, 0.5) * 1000, pct(held, 0.5) * 1000


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


async def async_sdk_store(url: str) -> tuple[float, float]:
    engine = create_async_engine(normalize_url(url))
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


async def baton_store(url: str) -> tuple[float, float]:
    db = Database(url)
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


def row(where: str, label: str, lookup: float, held: float) -> tuple[str, str, str]:
    return (
        f"authorise a request ({where})",
        label,
        f"lookup p50 {lookup:.2f} ms · holds the loop p50 {held:.3f} ms",
    )


async def installation_stores() -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(row("SQLite", "slack_sdk sync SQLAlchemy store", *await sync_store(Path(tmp))))
        for label, run in (
            ("slack_sdk async SQLAlchemy store", async_sdk_store),
            ("Baton's store (its tables)", baton_store),
        ):
            rows.append(row("SQLite", label, *await run(f"sqlite:///{tmp}/{run.__name__}.db")))
    # (slack_sdk's sync store would need a sync PostgreSQL driver, which Baton does not ship;
    # a synchronous call holds the loop for all of its round trips, as the SQLite row shows.)
    for label, run in (
        ("slack_sdk async SQLAlchemy store", async_sdk_store),
        ("Baton's store (its tables)", baton_store),
    ):
        async with fresh_pg_database() as url:
            rows.append(row("PostgreSQL", label, *await run(url)))
    return rows

"""Shared fixtures: real databases (SQLite file, PostgreSQL) and a local website to check."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from storage import Database, schema

PG_ADMIN = os.environ.get("BATON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file upgraded to head by the migrations, once per session."""
    path = tmp_path_factory.mktemp("schema") / "baton.db"

    async def upgrade() -> None:
        db = Database(f"sqlite:///{path}")
        await schema.upgrade(db)
        await db.dispose()

    asyncio.run(upgrade())
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_at_head: Path) -> str:
    """A SQLite database at head: a copy of the session's, faster than migrating each time."""
    shutil.copyfile(sqlite_at_head, tmp_path / "baton.db")
    return f"sqlite:///{tmp_path}/baton.db"


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the local server (no tables), dropped afterwards."""
    name = f"baton_{secrets.token_hex(6)}"
    dsn = PG_ADMIN.replace("postgresql://", "postgres://")
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A new PostgreSQL database upgraded to head by the migrations, dropped afterwards."""
    async with fresh_pg_database() as url:
        db = Database(url)
        await schema.upgrade(db)
        await db.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The same test on SQLite and on PostgreSQL (tables straight from the models)."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/baton.db"
        else:
            url = await stack.enter_async_context(fresh_pg_database())
        db = Database(url)
        await db.create_all()
        yield db
        await db.dispose()


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    yield database
    await database.dispose()


@dataclass
class Site:
    """A small local website: pages that are up, down, slow, and a JSON metric."""

    base_url: str = ""
    host: str = "127.0.0.1"
    hits: dict[str, int] = field(default_factory=dict)
    metric: float = 42.0
    down: bool = False

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site()

    async def ok(request: web.Request) -> web.Response:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        if state.down:
            return web.Response(status=503, text="maintenance")
        return web.Response(text="<html>All systems operational</html>", content_type="text/html")

    async def down(request: web.Request) -> web.Response:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        return web.Response(status=503, text="Service Unavailable")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="late but fine")

    async def metric(request: web.Request) -> web.Response:
        return web.json_response({"queue": {"depth": state.metric}})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/status", ok)
    app.router.add_get("/down", down)
    app.router.add_get("/slow", slow)
    app.router.add_get("/metric", metric)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture(autouse=True)
def _no_real_network_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach a real model or Slack: real keys and URLs are cleared."""
    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_API_URL",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "BATON_MODEL",
        "BATON_AGENTS_FILE",
        "BATON_DATABASE_URL",
        "BATON_AUTO_MIGRATE",
        "BATON_LOG_FORMAT",
        "BATON_LOG_LEVEL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    ):
        monkeypatch.delenv(var, raising=False)
    yield

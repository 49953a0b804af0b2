"""Shared fixtures: real databases (SQLite file, PostgreSQL) and a local website to check.

What they are made of lives in testkit/, which bench/ uses too."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from storage import Database, schema
from testkit.databases import Site, fresh_pg_database, serving_site


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


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with serving_site() as state:
        yield state


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

"""Real databases for tests and the benchmark: a new PostgreSQL database per use, Baton
0.1.0's release databases, and a small local website for the checks to read."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from aiohttp import web

PG_ADMIN = os.environ.get("BATON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# Written by Baton 0.1.0's own code (tests/fixtures/make_release_databases.py says how).
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
RELEASE_SQLITE = FIXTURES / "release-0.1.0.sqlite"
RELEASE_PG_DUMP = FIXTURES / "release-0.1.0.pg.sql"


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


async def psql(url: str, *args: str) -> str:
    """PostgreSQL's own client, as an operator restores a dump."""
    proc = await asyncio.create_subprocess_exec(
        "psql",
        "--no-psqlrc",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        "--dbname",
        url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@dataclass
class Site:
    """A small local website: pages that are up, down, slow, and a JSON metric."""

    base_url: str = ""
    host: str = "127.0.0.1"
    hits: dict[str, int] = field(default_factory=dict)
    metric: float = 42.0
    down: bool = False
    # Set to an unset event: the pages that are up answer once it is set (a check held
    # mid-run, so a test can see what the run shows meanwhile).
    gate: asyncio.Event | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@asynccontextmanager
async def serving_site() -> AsyncIterator[Site]:
    """The Site on a free port of 127.0.0.1, stopped afterwards."""
    state = Site()

    async def ok(request: web.Request) -> web.Response:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        if state.gate is not None:
            await state.gate.wait()
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
    port = runner.addresses[0][1]
    state.base_url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()

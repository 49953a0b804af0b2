"""Baton and the fake MCP server in processes of their own, as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from sandbox.web_api import SlackStandIn
from testkit.fakes.model_servers import FakeOpenAI
from testkit.harness import SECRET

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
Process = asyncio.subprocess.Process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(
    slack: SlackStandIn, db_url: str, catalog: Path, models: FakeOpenAI
) -> dict[str, str]:
    """What `baton run --http` and `baton worker` get: the stand-in, the fake model, workers."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "BATON_DATABASE_URL": db_url,
        "BATON_AUTO_MIGRATE": "true",
        "BATON_AGENTS_FILE": str(catalog),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": models.base_url,
        "BATON_MODEL": "rules",
        "BATON_HTTP_ALLOW_HOSTS": "127.0.0.1",
        "BATON_WORKERS": "external",
        # A killed worker's runs are taken over seconds after it died.
        "BATON_LEASE_SECONDS": "2",
        "BATON_LOG_LEVEL": "WARNING",
    }


async def healthy(url: str, proc: Process | None = None, *, within: float = 60) -> None:
    """Returns once `url`/healthz answers 200; fails if the process (given one) exits, or
    after `within` seconds."""
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + within
        while True:
            try:
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert proc is None or proc.returncode is None, "the process exited during start-up"
            assert time.monotonic() < deadline, "the process did not start"
            await asyncio.sleep(0.1)


@asynccontextmanager
async def process(
    env: dict[str, str], workdir: Path, *args: str
) -> AsyncIterator[tuple[str, Process]]:
    """`baton <args>` in its own process, serving `/healthz` on a free port once it is up."""
    port = free_port()
    env = {**env, "BATON_METRICS_PORT": str(port)}
    if args[0] == "run":
        args = (*args, "--port", str(port))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=workdir, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await healthy(url, proc)
        yield url, proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
        await proc.wait()


@asynccontextmanager
async def http_server(record: Path, *extra: str) -> AsyncIterator[str]:
    """The fake MCP server over Streamable HTTP in its own process; yields its MCP endpoint."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "testkit.fakes.fake_mcp_server",
        "--http",
        str(port),
        "--record",
        str(record),
        *extra,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                assert proc.returncode is None, "the MCP server exited while starting"
                assert time.monotonic() < deadline, "the MCP server did not start"
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()

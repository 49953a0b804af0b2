"""`baton sandbox` and `baton run` without Slack credentials, as real processes."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"^Baton sandbox: (http://127\.0\.0\.1:\d+/)$")


@asynccontextmanager
async def baton(*args: str, cwd: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`baton <args>` in a clean environment (no Slack variables, no .env), stopped afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def lines_until_url(process: asyncio.subprocess.Process) -> tuple[list[str], str]:
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert raw, f"baton exited before printing a URL; printed {lines}"
        line = raw.decode().rstrip("\n")
        lines.append(line)
        if match := URL_LINE.match(line):
            return lines, match.group(1)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def crashes(err: str) -> list[str]:
    """Log records in stderr that carry a traceback."""
    records: list[str] = []
    for line in err.splitlines():
        if LOG_LINE.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return [r for r in records if "Traceback" in r]


async def stop(process: asyncio.subprocess.Process, sig: signal.Signals) -> tuple[int, str]:
    process.send_signal(sig)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_baton_sandbox_prints_one_url_whose_page_and_state_answer(tmp_path: Path) -> None:
    async with baton("sandbox", "--port", "0", cwd=tmp_path) as process:
        lines, url = await lines_until_url(process)
        assert len(lines) == 1
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as page:
                assert page.status == 200 and "<title>Baton sandbox</title>" in await page.text()
            async with session.get(f"{url}api/state", params={"user": "U0ALICE"}) as state:
                body = await state.json()
        assert process.stdout is not None
        rest = (await asyncio.wait_for(process.stdout.readline(), timeout=5)).decode()
        code, err = await stop(process, signal.SIGTERM)

    assert {c["name"] for c in body["channels"]} >= {"general", "random", "deploys", "alice"}
    assert [u["real_name"] for u in body["users"]] == ["Alice", "Bob", "Carol"]
    assert body["info"]["model"] == "rules"
    assert "temporary database" in rest and "SLACK_BOT_TOKEN" in rest
    assert code == 0 and crashes(err) == []


async def test_baton_run_without_credentials_opens_the_sandbox_and_says_how_to_connect_slack(
    tmp_path: Path,
) -> None:
    async with baton("run", cwd=tmp_path) as process:
        lines, url = await lines_until_url(process)
        async with aiohttp.ClientSession() as session, session.get(url) as page:
            assert page.status == 200
        code, err = await stop(process, signal.SIGINT)

    assert lines[0].startswith("No Slack credentials: starting the local sandbox.")
    assert "SLACK_BOT_TOKEN" in lines[0] and "SLACK_APP_TOKEN" in lines[0]
    assert code == 0 and crashes(err) == []


async def test_a_port_that_is_taken_is_refused_with_a_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with baton("sandbox", "--port", str(port), cwd=tmp_path) as process:
            out, err = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 2 and out.decode() == ""
    assert f"baton sandbox: cannot listen on port {port}" in err.decode()
    assert "Traceback" not in err.decode()

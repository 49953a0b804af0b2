"""`baton sandbox` and `baton run` without Slack credentials, as real processes: one line on
stdout (the page's URL), nothing chatty on the console, and one sandbox per port."""

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
import pytest

from sandbox.command import page_socket
from testkit.harness import running_sandbox

ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"^Baton sandbox: (http://127\.0\.0\.1:(\d+)/)$")


@asynccontextmanager
async def baton(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`baton <args>` in a clean environment (no Slack variables, no .env), stopped afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def first_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert raw, "baton exited before printing anything"
    return raw.decode().rstrip("\n")


async def stop(process: asyncio.subprocess.Process, sig: signal.Signals) -> tuple[int, str, str]:
    """Stop it; its exit code and everything else it printed on stdout and stderr."""
    process.send_signal(sig)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_baton_sandbox_prints_exactly_one_line_the_url_of_a_page_that_answers(
    tmp_path: Path,
) -> None:
    async with baton("sandbox", "--port", "0", cwd=tmp_path) as process:
        line = await first_line(process)
        match = URL_LINE.match(line)
        assert match, line
        async with aiohttp.ClientSession() as session:
            async with session.get(match.group(1)) as page:
                assert page.status == 200 and "<title>Baton sandbox</title>" in await page.text()
            async with session.get(match.group(1) + "api/state", params={"user": "U0ALICE"}) as s:
                body = await s.json()
            # Work behind the page (a run, the scheduler) logs at INFO: none of it may show.
            async with session.post(
                match.group(1) + "api/messages",
                json={"user": "U0ALICE", "channel": "C0GENERAL", "text": "@Baton run shop-health"},
            ) as said:
                assert (await said.json())["ok"]
        code, rest, err = await stop(process, signal.SIGTERM)

    assert rest == "", "stdout holds only the URL line"
    assert code == 0 and "Traceback" not in err, err
    assert "INFO" not in err and "/slack/events" not in err
    assert {c["name"] for c in body["channels"]} >= {"general", "random", "deploys", "alice"}
    assert [u["real_name"] for u in body["users"]] == ["Alice", "Bob", "Carol"]
    assert body["info"]["model"] == "rules" and "SLACK_BOT_TOKEN" in body["info"]["real_slack"]


async def test_baton_run_without_credentials_opens_the_sandbox_on_the_port_it_is_given(
    tmp_path: Path,
) -> None:
    port = free_port()
    # What `make run ARGS="--port N"` runs.
    async with baton("run", "--port", str(port), cwd=tmp_path) as process:
        line = await first_line(process)
        match = URL_LINE.match(line)
        assert match and match.group(2) == str(port), line
        async with aiohttp.ClientSession() as session, session.get(match.group(1)) as page:
            assert page.status == 200
        code, rest, err = await stop(process, signal.SIGINT)

    assert rest == "" and code == 0 and "Traceback" not in err


async def test_a_second_sandbox_on_the_same_port_points_to_the_first_and_exits(
    tmp_path: Path,
) -> None:
    async with running_sandbox() as first:
        port = first.url.rsplit(":", 1)[1].strip("/")
        async with baton("sandbox", "--port", port, cwd=tmp_path) as second:
            out, err = await asyncio.wait_for(second.communicate(), timeout=60)

    assert second.returncode == 0 and err.decode() == ""
    assert out.decode().splitlines() == [
        f"Baton sandbox: {first.url} is already running; `baton sandbox --port 0` starts another."
    ]


async def test_a_port_held_by_another_program_is_refused_with_a_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with baton("sandbox", "--port", str(port), cwd=tmp_path) as process:
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 2 and out.decode() == ""
    assert f"baton sandbox: cannot listen on port {port}" in err.decode()
    assert "Traceback" not in err.decode()


async def test_the_usual_port_held_by_another_program_falls_back_to_a_free_one_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        usual = taken.getsockname()[1]
        chosen = await page_socket(None, default=usual)

    assert isinstance(chosen, socket.socket)
    with chosen:
        port = chosen.getsockname()[1]
    assert port != usual
    assert capsys.readouterr().err == (
        f"Port {usual} is taken by another program: the sandbox uses port {port} instead.\n"
    )


async def test_the_usual_port_held_by_a_sandbox_gives_that_sandboxs_url() -> None:
    async with running_sandbox() as first:
        port = int(first.url.rsplit(":", 1)[1].strip("/"))
        assert await page_socket(None, default=port) == first.url

"""Logs: JSON lines that carry the run, task, team and trace ids; text on a terminal; a quiet sandbox."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agents.telemetry import RUN_ID, TASK_ID, trace_id_of
from bot.config import LogFormat, Settings
from bot.logs import configure_logging
from sandbox.web_api import SlackStandIn
from storage import runs
from testkit.databases import Site
from testkit.harness import running_bot


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quieted = {n: logging.getLogger(n).level for n in ("apscheduler", "aiohttp.access")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quieted.items():
        logging.getLogger(name).setLevel(was)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the log, each parsed on its own."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_logs_parse_line_by_line_and_carry_the_run_ids(
    sqlite_url: str, site: Site
) -> None:
    stream = io.StringIO()
    configure_logging(settings(baton_log_format="json"), stream=stream)
    async with SlackStandIn() as slack, running_bot(slack, sqlite_url) as bot:
        logging.getLogger("tests.outside").info("before any run")
        await bot.mention(f"is {site.url('/ok')} up?")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    try:
        raise ValueError("two\nlines")
    except ValueError:
        logging.getLogger("tests.outside").exception("it broke")

    logged = records(stream)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in logged)
    assert all(datetime.fromisoformat(r["time"]).tzinfo is not None for r in logged)
    [outside] = [r for r in logged if r["message"] == "before any run"]
    assert outside["level"] == "INFO" and outside["logger"] == "tests.outside"
    assert not {"run_id", "task_id", "team_id", "trace_id"} & outside.keys()

    of_run = [r for r in logged if r.get("run_id") == run.id]
    finished = next(r for r in of_run if r["message"].startswith(f"run {run.id} succeeded"))
    assert finished["logger"] == "orchestration.step_tracing" and finished["team_id"] == "T0BATON"
    assert finished["trace_id"] == trace_id_of(run.traceparent)
    assert "task_id" not in finished
    task = next(r for r in of_run if r["message"].startswith("task web-checker"))
    assert task["task_id"] == "web-checker" and task["trace_id"] == finished["trace_id"]

    [broke] = [r for r in logged if r["message"] == "it broke"]
    assert broke["level"] == "ERROR" and "ValueError: two\nlines" in broke["exception"]


def test_text_on_a_terminal_json_otherwise_unless_the_variable_says() -> None:
    terminal = Terminal()
    assert configure_logging(settings(), stream=terminal) == LogFormat.TEXT
    assert configure_logging(settings(), stream=io.StringIO()) == LogFormat.JSON
    assert (
        configure_logging(settings(baton_log_format="text"), stream=io.StringIO()) == LogFormat.TEXT
    )
    assert configure_logging(settings(baton_log_format="json"), stream=Terminal()) == LogFormat.JSON

    configure_logging(settings(), stream=terminal)
    run, task = RUN_ID.set("3fa9c2d1"), TASK_ID.set("check")
    try:
        logging.getLogger("orchestration.tasks").warning("slow model")
    finally:
        TASK_ID.reset(task)
        RUN_ID.reset(run)
    [line] = terminal.getvalue().splitlines()
    assert line.endswith("WARNING orchestration.tasks [run 3fa9c2d1 · task check]: slow model")


def test_the_sandbox_console_shows_warnings_but_not_the_schedulers_ticks() -> None:
    def write_some(stream: io.StringIO, *, quiet: bool, **values: Any) -> list[str]:
        configure_logging(settings(baton_log_format="json", **values), quiet=quiet, stream=stream)
        logging.getLogger("apscheduler.executors.default").info("Running job tick")
        logging.getLogger("bot.digest_posts").info("posted a digest")
        logging.getLogger("bot.digest_posts").warning("could not update digest")
        return [r["message"] for r in records(stream)]

    assert write_some(io.StringIO(), quiet=True) == ["could not update digest"]
    assert write_some(io.StringIO(), quiet=False) == ["posted a digest", "could not update digest"]
    assert write_some(io.StringIO(), quiet=True, baton_log_level="info") == [
        "posted a digest",
        "could not update digest",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_baton_run_writes_json_lines_when_its_log_is_not_a_terminal(tmp_path: Path) -> None:
    port = free_port()
    async with SlackStandIn() as slack:
        logged = await _start_logging(tmp_path, port, slack)
    assert logged[-1]["level"] == "INFO"
    assert logged[-1]["message"] == f"Baton is listening on http://0.0.0.0:{port}/slack/events"


async def _start_logging(tmp_path: Path, port: int, slack: SlackStandIn) -> list[dict[str, Any]]:
    """`baton run --http` until it says it listens: every line it logged, parsed."""
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": "secret",
        "SLACK_API_URL": slack.api_url,
        "BATON_DATABASE_URL": f"sqlite:///{tmp_path}/baton.db",
        "BATON_PORT": str(port),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--http",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    logged: list[dict[str, Any]] = []
    try:
        assert proc.stderr is not None
        while not any(r["logger"] == "bot.transports" for r in logged):
            line = await asyncio.wait_for(proc.stderr.readline(), timeout=60)
            assert line, "baton run stopped before it was listening"
            logged.append(json.loads(line))
    finally:
        proc.terminate()
        await proc.wait()
    return logged


def test_an_unknown_log_level_stops_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("BATON_LOG_LEVEL", "chatty")
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    assert main(["run", "--http"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "Baton cannot start:",
        "  - BATON_LOG_LEVEL: Value error, must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'chatty'",
    ]

"""Secrets stay secret: no token, signing secret, API key, database password or SQL parameter
reaches a log line, a Slack call or a stored row; `/healthz` says only ok or not."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.config import Settings
from bot.logs import configure_logging
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.db import Database
from storage.models import Event, Run, TaskRow, ToolCallRecord
from testkit.databases import PG_ADMIN
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.harness import SECRET, running_bot
from tests.trust_helpers import answers, write_catalog

API_KEY = "sk-proj-NeverShowThisKey0123456789abcdef"
SLACK_TOKEN = "xoxb-1111-2222-NeverShowThisSlackToken"
DB_PASSWORD = "Pg-Never-Show-This-4242"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def everything_stored(db: Database) -> str:
    """Every row a run leaves behind, as one text."""
    async with db.session() as s:
        rows: list[Any] = []
        for table in (Run, TaskRow, Event, ToolCallRecord):
            rows += [r.model_dump(mode="json") for r in (await s.exec(select(table))).all()]
    return json.dumps(rows, ensure_ascii=False)


async def test_a_run_whose_provider_echoes_the_api_key_leaks_no_secret_anywhere(
    pg_url: str, tmp_path: Path
) -> None:
    stream = io.StringIO()
    configure_logging(
        Settings(_env_file=None, baton_log_format="json", baton_log_level="DEBUG"),  # type: ignore[call-arg]
        stream=stream,
    )
    with_password = pg_url.replace(
        "postgresql://postgres@", f"postgresql://postgres:{DB_PASSWORD}@"
    )
    async with SlackStandIn(token=SLACK_TOKEN) as slack, FakeOpenAI() as openai:
        # What OpenAI answers a wrong key with, echoing it.
        openai.when(
            lambda s: s.system.startswith("You are thinker"),
            Reply(
                status=401,
                error_code="invalid_api_key",
                error_message=f"Incorrect API key provided: {API_KEY}. You can find your API key at https://platform.openai.com/account/api-keys.",
            ),
        )
        async with running_bot(
            slack,
            with_password,
            baton_agents_file=write_catalog(tmp_path),
            openai_api_key=API_KEY,
            openai_base_url=openai.base_url,
            baton_model="rules",
        ) as bot:
            await bot.slash("run think")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            stored = await everything_stored(bot.baton.db)
            [answer] = answers(slack, run.id)
        assert openai.requests, "the model server was asked"

    logged = stream.getvalue()
    sent_to_slack = json.dumps([c.args for c in slack.calls], ensure_ascii=False, default=str)
    # The failure is told, in words, without the server's echo.
    assert "rejected the API key; check OPENAI_API_KEY" in answer.text + json.dumps(answer.blocks)
    assert "failed (bad_key)" in logged  # the operator's log says what failed
    for secret in (API_KEY, SLACK_TOKEN, SECRET, DB_PASSWORD):
        assert secret not in logged
        assert secret not in sent_to_slack
        assert secret not in stored
    assert "sk-proj-" not in logged + sent_to_slack + stored


async def test_sql_parameters_never_appear_in_a_database_error(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        await runs.create_run(db, Run(id="dup", request="first"))
        with pytest.raises(IntegrityError) as refused:
            await runs.create_run(db, Run(id="dup", request="my salary is 123456"))
    finally:
        await db.dispose()

    assert "123456" not in str(refused.value)
    assert "hidden due to hide_parameters" in str(refused.value)


async def test_healthz_with_the_database_down_says_only_not_ok(pg_url: str) -> None:
    name = pg_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://"))
    async with SlackStandIn() as slack, running_bot(slack, pg_url) as bot:
        async with bot.session.get(f"{bot.url}/healthz") as up:
            assert up.status == 200 and await up.json() == {"ok": True}
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            async with bot.session.get(f"{bot.url}/healthz") as down:
                status, body = down.status, await down.text()
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()

    assert status == 503
    assert json.loads(body) == {"ok": False}  # no driver text, host or database name
    assert name not in body

"""`baton doctor` against the Slack stand-in, the fake model servers and real databases."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp import web

from bot.config import Settings
from bot.doctor import Check, Outcome, run_checks
from bot.manifest import bot_scopes
from sandbox.local_server import LocalServer
from sandbox.web_api import SlackStandIn
from storage import Database, schema, stats
from testkit.databases import PG_ADMIN, fresh_pg_database
from testkit.fakes.model_servers import FakeAnthropic, FakeOpenAI, Reply

CATALOG = """
agents:
  - name: checker
    description: Checks websites.
    model: default
    tools: [http_check]
  - name: writer
    description: Writes the summary.
    model: anthropic:claude-haiku-4-5
"""


async def doctor(env: dict[str, str], cwd: Path) -> tuple[int, list[str]]:
    """`baton doctor` as a person runs it: its exit code and its lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "doctor",
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert err == b"", err.decode()
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines()


def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "agents.yml"
    path.write_text(CATALOG)
    return path


async def test_a_ready_deployment_gets_ok_on_every_line_and_exit_0(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/baton.db")
    await schema.upgrade(db)
    await db.dispose()
    async with SlackStandIn() as slack, FakeOpenAI() as openai, FakeAnthropic() as anthropic:
        code, lines = await doctor(
            {
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_APP_TOKEN": "xapp-1-doctor",
                "SLACK_API_URL": slack.api_url,
                "OPENAI_API_KEY": "sk-openai-secret",
                "OPENAI_BASE_URL": openai.base_url,
                "ANTHROPIC_API_KEY": "sk-ant-secret",
                "ANTHROPIC_BASE_URL": anthropic.base_url,
                "BATON_MODEL": "openai:gpt-4.1-mini",
                "BATON_AGENTS_FILE": str(catalog(tmp_path)),
                "BATON_DATABASE_URL": f"sqlite:///{tmp_path}/baton.db",
            },
            tmp_path,
        )

    assert code == 0, lines
    assert [line.split()[:2] for line in lines] == [
        ["ok", "configuration"],
        ["ok", "database"],
        ["ok", "migrations"],
        ["ok", "slack"],
        ["ok", "model"],
        ["ok", "model"],
    ]
    assert "socket mode · model openai:gpt-4.1-mini · your catalog: 2 specialists" in lines[0]
    tables = len(stats.baton_tables())
    assert lines[1].endswith(f"sqlite:///{tmp_path}/baton.db · all {tables} tables")
    assert lines[2].endswith(f"migrations     at head ({schema.BATON.head})")
    assert "bot @baton (U0BATON) in" in lines[3] and "(T0BATON)" in lines[3]
    assert "openai:gpt-4.1-mini answered in" in lines[4]
    assert "anthropic:claude-haiku-4-5 answered in" in lines[5]
    # One cheap call each: the configured model id, a handful of tokens.
    [asked_openai], [asked_anthropic] = openai.requests, anthropic.requests
    assert asked_openai.model == "gpt-4.1-mini"
    # A compatible server not known to honour max_completion_tokens is sent max_tokens.
    assert asked_openai.body["max_tokens"] <= 16
    assert asked_anthropic.model == "claude-haiku-4-5" and asked_anthropic.body["max_tokens"] <= 16
    assert [c.method for c in slack.calls] == ["auth.test"]
    shown = "\n".join(lines)
    assert not [s for s in (slack.token, "sk-openai-secret", "sk-ant-secret") if s in shown]


async def test_each_failure_gets_its_own_line_and_exit_1(tmp_path: Path) -> None:
    missing_db = PG_ADMIN.rsplit("/", 1)[0].replace("postgres@", "postgres:hunter2@")
    async with SlackStandIn() as slack, FakeOpenAI() as openai:
        openai.default = Reply(status=401)
        code, lines = await doctor(
            {
                "SLACK_BOT_TOKEN": "xoxb-revoked-long-ago",
                "SLACK_APP_TOKEN": "xapp-1-doctor",
                "SLACK_API_URL": slack.api_url,
                "OPENAI_API_KEY": "sk-wrong",
                "OPENAI_BASE_URL": openai.base_url,
                "BATON_MODEL": "openai:gpt-4.1-mini",
                "BATON_DATABASE_URL": f"{missing_db}/baton_does_not_exist",
            },
            tmp_path,
        )

    assert code == 1
    assert [line.split()[:2] for line in lines] == [
        ["ok", "configuration"],
        ["FAIL", "database"],
        ["skip", "migrations"],
        ["FAIL", "slack"],
        ["FAIL", "model"],
    ]
    assert 'database "baton_does_not_exist" does not exist' in lines[1]
    assert "hunter2" not in lines[1] and "***" in lines[1]
    assert lines[2].endswith("not checked: the database did not answer")
    assert lines[3].endswith(
        "auth.test said invalid_auth: SLACK_BOT_TOKEN is wrong, or was revoked (reinstall the app)"
    )
    assert "openai:gpt-4.1-mini" in lines[4] and "Incorrect API key provided" in lines[4]
    assert not [s for s in ("xoxb-revoked-long-ago", "sk-wrong") if s in "\n".join(lines)]


async def test_an_unconfigured_baton_is_told_what_is_missing_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    database = tmp_path / "baton.db"
    checks = await run_checks(
        Settings(_env_file=None, baton_database_url=f"sqlite:///{database}"),  # type: ignore[call-arg]
        "http",
    )

    assert [(c.name, c.outcome) for c in checks] == [
        ("configuration", Outcome.FAIL),
        ("database", Outcome.OK),
        ("migrations", Outcome.OK),
        ("slack", Outcome.SKIPPED),
        ("model", Outcome.OK),
    ]
    assert "SLACK_BOT_TOKEN is not set" in checks[0].detail
    assert "SLACK_SIGNING_SECRET is not set" in checks[0].detail
    assert checks[1].detail.endswith("no file yet; Baton creates it on start")
    assert checks[2].detail == "no database yet; start-up creates it at head"
    assert checks[4].detail == "rules only: offline, nothing to call"
    assert not database.exists()


class ScopedSlack(LocalServer):
    """`auth.test` as Slack answers it, with the token's scopes in `X-OAuth-Scopes`."""

    def __init__(self, scopes: list[str]) -> None:
        super().__init__()
        self.scopes = scopes

    def web_app(self) -> web.Application:
        async def auth_test(_: web.Request) -> web.Response:
            body = {"ok": True, "team": "Acme", "team_id": "T1", "user": "baton", "user_id": "U1"}
            return web.json_response(body, headers={"X-OAuth-Scopes": ",".join(self.scopes)})

        app = web.Application()
        app.router.add_post("/api/auth.test", auth_test)
        return app


async def test_a_token_installed_before_the_manifest_grew_is_told_which_scopes_to_add(
    tmp_path: Path,
) -> None:
    granted = [s for s in bot_scopes() if s not in ("usergroups:read", "assistant:write")]
    async with ScopedSlack(granted) as slack:
        checks = await run_checks(
            Settings(  # type: ignore[call-arg]
                _env_file=None,
                slack_bot_token="xoxb-1",
                slack_signing_secret="s",
                slack_api_url=f"{slack.root}/api/",
                baton_database_url=f"sqlite:///{tmp_path}/baton.db",
            ),
            "http",
        )
    [found] = [c for c in checks if c.name == "slack"]
    assert found.outcome == Outcome.FAIL
    assert found.detail.endswith(
        "the token lacks usergroups:read, assistant:write: add them and reinstall the app"
    )

    async with ScopedSlack(bot_scopes()) as slack:
        checks = await run_checks(
            Settings(  # type: ignore[call-arg]
                _env_file=None,
                slack_bot_token="xoxb-1",
                slack_signing_secret="s",
                slack_api_url=f"{slack.root}/api/",
                baton_database_url=f"sqlite:///{tmp_path}/baton.db",
            ),
            "http",
        )
    assert [c.outcome for c in checks if c.name == "slack"] == [Outcome.OK]


async def test_migrations_line_says_behind_and_what_to_run(tmp_path: Path) -> None:
    async with fresh_pg_database() as url:
        empty = await run_checks(
            Settings(_env_file=None, baton_database_url=url),  # type: ignore[call-arg]
            "http",
        )
        told = await run_checks(
            Settings(_env_file=None, baton_database_url=url, baton_auto_migrate=True),  # type: ignore[call-arg]
            "http",
        )
        db = Database(url)
        await schema.upgrade(db)
        await db.dispose()
        ready = await run_checks(
            Settings(_env_file=None, baton_database_url=url),  # type: ignore[call-arg]
            "http",
        )

    def line(checks: list[Check]) -> tuple[Outcome, str]:
        [found] = [(c.outcome, c.detail) for c in checks if c.name == "migrations"]
        return found

    head = schema.BATON.head
    assert line(empty) == (
        Outcome.FAIL,
        f"behind: no tables yet, head is {head}; run `baton db upgrade`",
    )
    assert line(told) == (
        Outcome.OK,
        f"behind: no tables yet, head is {head}; start-up upgrades it (BATON_AUTO_MIGRATE)",
    )
    assert line(ready) == (Outcome.OK, f"at head ({head})")


async def test_oauth_mode_passes_the_configuration_and_leaves_slack_to_each_install(
    tmp_path: Path,
) -> None:
    async with SlackStandIn() as slack:
        checks = await run_checks(
            Settings(  # type: ignore[call-arg]
                _env_file=None,
                baton_database_url=f"sqlite:///{tmp_path}/baton.db",
                slack_client_id=slack.client_id,
                slack_client_secret=slack.client_secret,
                slack_signing_secret="s",
                slack_api_url=slack.api_url,
            ),
            "http",
        )
    found = {c.name: c for c in checks}
    assert found["configuration"].outcome == Outcome.OK
    assert found["slack"].outcome == Outcome.SKIPPED
    assert "OAuth mode" in found["slack"].detail
    assert slack.calls == []


async def test_with_external_workers_the_live_ones_are_listed_and_stale_ones_flagged() -> None:
    from datetime import timedelta

    from bot.doctor import worker_processes
    from storage import utcnow, workers
    from storage.models import WorkerRow

    async with fresh_pg_database() as url:
        db = Database(url)
        await schema.upgrade(db)
        start = utcnow()
        for name, pid, beat, driving in (("web-1", 101, start, 3), ("web-2", 202, start, 0)):
            await workers.join(
                db,
                WorkerRow(
                    id=f"{name}:{pid}:a1",
                    host=name,
                    pid=pid,
                    started_at=start,
                    last_beat_at=beat - timedelta(seconds=60 if pid == 202 else 0),
                    runs_driving=driving,
                ),
            )
        await db.dispose()
        settings = Settings(_env_file=None, baton_database_url=url, baton_workers="external")  # type: ignore[call-arg]
        soon = await worker_processes(settings, within=10, now=start + timedelta(seconds=2))
        # Nobody beats any more: a minute on, both are stale and no run would be driven.
        later = await worker_processes(settings, within=10, now=start + timedelta(seconds=60))
        checks = await run_checks(settings, "http")

    assert soon == Check(
        "workers",
        Outcome.OK,
        "1 live (web-1:101 driving 3) · 1 stale (web-2:202 last beat 62 s ago)",
    )
    assert later == Check(
        "workers",
        Outcome.FAIL,
        "0 live · 2 stale (web-1:101 last beat 60 s ago, web-2:202 last beat 120 s ago): "
        "start `baton worker` to drive the runs",
    )
    assert checks[-1].name == "workers"

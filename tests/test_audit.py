"""`/baton audit`: a run's trail for the people who may read it, and a trail nothing changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError

from bot import approval_blocks as ui
from bot.command_parsing import HELP
from sandbox.web_api import SlackStandIn
from storage import run_states, runs, schema, tool_calls
from storage.db import Database
from storage.models import Event, EventKind, Run
from testkit.databases import fresh_pg_database
from testkit.harness import running_bot
from tests.test_approval_policies import approval_messages, start, value_of, write_catalog


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


async def test_audit_shows_who_asked_the_plan_each_decision_and_each_side_effect(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0BOB]")
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog) as bot:
        run_id = await start(bot, "announce")
        [message] = approval_messages(slack)
        await bot.click(ui.APPROVE, value_of(message), user="U0BOB", message=message)
        await bot.idle()
        [call] = await tool_calls.for_run(bot.baton.db, run_id)

        _, reply = await bot.slash(f"audit {run_id}", user="U0ALICE")
        _, latest = await bot.slash("audit", user="U0BOB")
    assert reply is not None and latest is not None
    shown = json.dumps(reply["blocks"], ensure_ascii=False)
    assert f"Audit of run {run_id}" in shown
    assert "*Asked by* <@U0ALICE>" in shown and "`announce`" in shown
    assert '`post` — *announcer*: Post \\"Deploy finished\\" to' in shown
    assert "asked for approval of `post_message`" in shown and "approvers <@U0BOB>" in shown
    assert "approved by <@U0BOB>" in shown
    assert f"key `{call.idempotency_key}`" in shown
    assert latest["blocks"] == reply["blocks"]  # without an id: the latest run here


async def test_audit_from_another_channel_reveals_nothing_but_an_admin_may_read_it(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path, "approvers: [U0BOB]")
    async with running_bot(
        slack, sqlite_url, baton_agents_file=catalog, baton_admins=["U0ALICE"]
    ) as bot:
        run_id = await start(bot, "announce")
        _, refused = await bot.slash(f"audit {run_id}", user="U0BOB", channel="C0RANDOM")
        _, unknown = await bot.slash("audit run_nothing", user="U0BOB", channel="C0RANDOM")
        _, admin = await bot.slash(f"audit {run_id}", user="U0ALICE", channel="C0RANDOM")
    assert refused is not None and unknown is not None and admin is not None
    assert refused["text"] == (
        f"I can't show the audit of run `{run_id}` here. Ask in the channel the run belongs "
        "to, or ask a Baton admin."
    )
    assert "blocks" not in refused and "announce" not in json.dumps(refused)
    assert unknown["text"].startswith("I can't show the audit of run `run_nothing` here.")
    assert f"Audit of run {run_id}" in json.dumps(admin["blocks"])


def test_help_mentions_audit_and_cancel() -> None:
    assert "`/baton audit [run-id]`" in HELP and "`/baton cancel [run-id]`" in HELP


@pytest.fixture(params=["sqlite", "postgresql"])
async def migrated_db(
    request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[Database]:
    """A database made by the migrations, as Baton makes its own."""
    async with AsyncExitStack() as stack:
        url = sqlite_url
        if request.param == "postgresql":
            url = await stack.enter_async_context(fresh_pg_database())
            fresh = Database(url)
            await schema.upgrade(fresh)
            await fresh.dispose()
        db = Database(url)
        yield db
        await db.dispose()


async def test_audit_events_can_be_added_but_never_changed_or_deleted(
    migrated_db: Database,
) -> None:
    db = migrated_db
    await runs.create_run(db, Run(id="run_audit", request="check"))
    await run_states.note(db, "run_audit", EventKind.APPROVAL_APPROVED, data={"by": "U0BOB"})
    await run_states.note(db, "run_audit", EventKind.APPROVAL_REJECTED, data={"by": "U0ALICE"})

    for statement in (
        update(Event).where(Event.run_id == "run_audit").values(data={"by": "U0MALLORY"}),  # type: ignore[arg-type]
        delete(Event).where(Event.run_id == "run_audit"),  # type: ignore[arg-type]
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.session() as s:
                await s.exec(statement)
    trail = await runs.events(db, "run_audit")
    assert [(e.kind, e.data) for e in trail] == [
        ("run_created", {"source": "command", "request": "check"}),
        ("approval_approved", {"by": "U0BOB"}),
        ("approval_rejected", {"by": "U0ALICE"}),
    ]

"""Exactly one driver per run: concurrent drives, racing clicks, lost leases, shutdowns."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, update

from bot import approval_blocks as ui
from bot.transports import resume_interrupted
from orchestration.driving import Drive, LeaseKeeper, StopReason
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import Database, runs, tool_calls
from storage.db import utcnow
from storage.models import Run, RunStatus, TaskStatus
from testkit.databases import Site
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.harness import Bot, running_bot
from tests.trust_helpers import (
    answers,
    approval_requests,
    approval_value,
    model_settings,
    write_catalog,
)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.when(lambda s: "Write the final answer" in s.system, Reply(text="final answer"))
        yield server


def thinking(seen: Seen) -> bool:
    return seen.system.startswith("You are thinker")


async def new_thread_run(bot: Bot, request: str) -> str:
    question = await bot.slack.post_as_user("C0GENERAL", "U0ALICE", request)
    run = await runs.create_run(
        bot.baton.db,
        Run(
            id=runs.new_id(),
            source="mention",
            request=request,
            team_id="T0BATON",
            channel_id="C0GENERAL",
            thread_ts=question.ts,
            user_id="U0ALICE",
        ),
    )
    assert run is not None
    return run.id


async def test_two_drives_of_one_run_at_once_finish_it_once(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        for _ in range(20):
            run_id = await new_thread_run(bot, f"check {site.url('/ok')} and summarise")
            orchestrator = bot.baton.orchestrator
            await asyncio.gather(orchestrator.execute(run_id), orchestrator.execute(run_id))
            await bot.idle()
            kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
            assert kinds.count("run_finished") == 1 and "run_failed" not in kinds
            assert kinds.count("task_succeeded") == 2
            assert len(answers(slack, run_id)) == 1


async def test_two_approvals_clicked_at_once_on_two_gates_give_one_answer_per_run(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_bot(
        slack, sqlite_url, baton_agents_file=write_catalog(tmp_path), **model_settings()
    ) as bot:
        for _ in range(20):
            before = {m.ts for m in approval_requests(slack)}
            await bot.slash("run two-posts")
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            gates = [m for m in approval_requests(slack) if m.ts not in before]
            assert len(gates) == 2
            statuses = await asyncio.gather(
                *[
                    bot.click(ui.APPROVE, approval_value(m), user="U0ALICE", message=m)
                    for m in gates
                ]
            )
            assert statuses == [200, 200]
            await bot.idle()
            done = await runs.get_run(bot.baton.db, run.id)
            assert done is not None and done.status == RunStatus.SUCCEEDED
            kinds = [e.kind for e in await runs.events(bot.baton.db, run.id)]
            assert kinds.count("run_finished") == 1 and "run_failed" not in kinds
            assert len(answers(slack, run.id)) == 1
            assert len(await tool_calls.for_run(bot.baton.db, run.id)) == 2
        assert sorted(m.text for m in slack.messages("C0RANDOM")) == sorted(["one", "two"] * 20)


async def test_a_click_and_the_sweep_racing_resume_the_run_once(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_bot(
        slack, sqlite_url, baton_agents_file=write_catalog(tmp_path), **model_settings()
    ) as bot:
        await bot.slash("run two-posts")
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None
        first, second = approval_requests(slack)
        await bot.click(ui.APPROVE, approval_value(first), user="U0ALICE", message=first)
        await asyncio.gather(
            bot.click(ui.APPROVE, approval_value(second), user="U0ALICE", message=second),
            resume_interrupted(bot.baton),
            resume_interrupted(bot.baton),
        )
        await bot.idle()
        kinds = [e.kind for e in await runs.events(bot.baton.db, run.id)]
    assert kinds.count("run_finished") == 1 and len(answers(slack, run.id)) == 1


async def test_a_driver_that_loses_its_lease_stops_and_writes_nothing_more(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    openai.when(thinking, Reply(hang=True))
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(tmp_path),
        **model_settings(openai.base_url),
        limits=Limits(lease_seconds=1.5),
    ) as bot:
        await bot.slash_ack("run think")
        await asyncio.wait_for(openai.received(1), timeout=20)
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None and bot.baton.orchestrator.driving(run.id)
        # Another process takes the run over (as if this one had been too slow to renew).
        async with bot.baton.db.session() as s:
            await s.exec(
                update(Run)
                .where(Run.id == run.id)  # type: ignore[arg-type]
                .values(lease_owner="elsewhere:1", lease_until=utcnow().replace(year=2100))
            )
        await slack.wait_for(lambda: not bot.baton.orchestrator.driving(run.id), timeout=10)
        [task] = await runs.list_tasks(bot.baton.db, run.id)
        kinds = [e.kind for e in await runs.events(bot.baton.db, run.id)]
        stored = await runs.get_run(bot.baton.db, run.id)
    # The new owner decides what happens to the task; this driver left it as it was.
    assert task.status == TaskStatus.RUNNING
    assert not {"task_failed", "run_failed", "run_finished", "task_requeued"} & set(kinds)
    assert stored is not None and stored.lease_owner == "elsewhere:1"


async def test_one_beat_renews_every_drive_of_the_process_in_one_statement(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    keeper = LeaseKeeper(db, Limits(lease_seconds=30))
    forever = asyncio.Event()
    drives = []
    for i in range(3):
        run = await runs.create_run(db, Run(id=runs.new_id(), request=f"job {i}"))
        assert run is not None
        lease = await runs.acquire_lease(db, run.id, f"here:{i}", seconds=30)
        assert lease is not None
        drive = Drive(lease=lease, work=asyncio.create_task(forever.wait()))
        keeper.keep(drive)
        drives.append(drive)
    kept, taken, asked = drives
    async with db.session() as s:
        await s.exec(
            update(Run)
            .where(Run.id == taken.lease.run_id)  # type: ignore[arg-type]
            .values(lease_owner="elsewhere:1")
        )
    assert await runs.request_cancel(db, asked.lease.run_id, "U0ALICE")
    statements: list[str] = []
    listen = functools.partial(event.listen, db.engine.sync_engine, "before_cursor_execute")
    listen(lambda *a: statements.append(a[2]))
    await keeper.beat()
    assert len(statements) == 1 and statements[0].startswith("UPDATE runs")
    await asyncio.sleep(0)  # the stopped drives' work sees its cancellation
    assert not kept.work.done() and kept.reason is None
    assert taken.work.cancelled() and taken.reason == StopReason.LEASE_LOST
    assert asked.work.cancelled() and asked.reason == StopReason.PERSON
    assert asked.stopped_by == "U0ALICE"
    for drive in drives:
        keeper.release(drive)
    kept.work.cancel()
    await db.dispose()


async def test_stopping_the_process_mid_task_leaves_it_for_the_next_driver(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    stuck = {"second": True}  # the second step hangs until the process is replaced
    openai.when(lambda s: thinking(s) and s.last_user_text == "first", Reply(text="first done"))
    openai.when(
        lambda s: thinking(s) and s.last_user_text.startswith("second") and stuck["second"],
        Reply(hang=True),
    )
    catalog = write_catalog(tmp_path)
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=catalog,
        **model_settings(openai.base_url),
    ) as bot:
        await bot.slash_ack("run think-twice")
        await asyncio.wait_for(openai.received(2), timeout=20)
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None
        # What a shutdown does: every background job is cancelled and awaited.
        await bot.baton.background.cancel_all()
        tasks = {t.task_id: t for t in await runs.list_tasks(bot.baton.db, run.id)}
        stopped = await runs.get_run(bot.baton.db, run.id)
        assert tasks["first"].status == TaskStatus.SUCCEEDED
        assert tasks["second"].status == TaskStatus.PENDING
        assert stopped is not None and stopped.lease_owner is None
        assert not bot.baton.orchestrator.driving(run.id)

    stuck["second"] = False
    openai.when(thinking, Reply(text="second done"))
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=catalog,
        **model_settings(openai.base_url),
    ) as second:
        await resume_interrupted(second.baton)
        await second.idle()
        finished = await runs.get_run(second.baton.db, run.id)
        kinds = [e.kind for e in await runs.events(second.baton.db, run.id)]
    assert finished is not None and finished.status == RunStatus.SUCCEEDED
    assert kinds.count("task_succeeded") == 2 and "task_requeued" in kinds
    # The first task was not run again; the second ran again after the restart.
    assert len([s for s in openai.requests if thinking(s) and s.last_user_text == "first"]) == 1
    assert len(answers(slack, run.id)) == 1

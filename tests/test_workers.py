"""Workers: `baton run --http` with BATON_WORKERS=external only receives, acks and hands over;
`baton worker` processes on the same PostgreSQL database claim the runs and drive them.

Everything runs as an operator runs it: separate processes, the Slack stand-in, the fake model
server, a webhook receiver counting side effects. Which process drove a run is read from its
audit trail (`run_started` / `run_resumed` name their driver, host:pid:…). Each worker lists
itself in the `workers` table while it beats.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from bot import approval_blocks as ui
from bot import work
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import Database, outbox, queue, run_states, runs, workers
from storage.db import utcnow
from storage.models import EventKind, Run, RunStatus, WorkerRow
from testkit.databases import fresh_pg_database
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.fakes.webhook_receiver import WebhookReceiver
from testkit.harness import Bot
from testkit.processes import environment, process
from tests.trust_helpers import answers, approval_requests, approval_value, write_catalog


async def run_in(db: Database, thread: Message) -> Run | None:
    async with db.session() as s:
        from sqlmodel import select

        return (await s.exec(select(Run).where(Run.thread_ts == thread.ts))).first()


async def drivers(db: Database, run_id: str) -> list[str]:
    """The pid of each process that started or resumed the run, in order."""
    found = []
    for e in await runs.events(db, run_id):
        if e.kind in ("run_started", "run_resumed"):
            found.append(str((e.data or {}).get("driver", "")).split(":")[1])
    return found


async def finished(db: Database, slack: SlackStandIn, threads: list[Message]) -> list[Run]:
    """Every thread's run has ended and its answer is posted."""
    while True:
        done = []
        for thread in threads:
            run = await run_in(db, thread)
            if run is not None and run.status.is_final and answers(slack, run.id):
                done.append(run)
        if len(done) == len(threads):
            return done
        await asyncio.sleep(0.1)


async def ended(db: Database, run_id: str) -> Run:
    while True:
        run = await runs.get_run(db, run_id)
        if run is not None and run.status.is_final:
            return run
        await asyncio.sleep(0.1)


def thinking(seen: Seen) -> bool:
    return seen.system.startswith("You are thinker")


async def test_a_request_taken_in_by_the_web_process_is_run_by_a_worker(tmp_path: Path) -> None:
    async with (
        SlackStandIn() as slack,
        FakeOpenAI() as models,
        fresh_pg_database() as db_url,
    ):
        models.when(thinking, lambda s: Reply(text="thought it through"))
        env = environment(slack, db_url, write_catalog(tmp_path), models)
        db = Database(db_url)
        try:
            async with (
                process(env, tmp_path, "run", "--http") as (url, web),
                process(env, tmp_path, "worker") as (_, worker),
                aiohttp.ClientSession() as session,
            ):
                bot = Bot(baton=None, url=url, slack=slack, session=session)  # type: ignore[arg-type]
                thread = await bot.mention("run think")
                [run] = await asyncio.wait_for(finished(db, slack, [thread]), 60)
                assert run.status == RunStatus.SUCCEEDED
                assert len(answers(slack, run.id)) == 1
                assert await drivers(db, run.id) == [str(worker.pid)]
                assert str(web.pid) not in await drivers(db, run.id)
        finally:
            await db.dispose()


async def test_two_workers_never_take_the_same_run(tmp_path: Path) -> None:
    async with (
        SlackStandIn() as slack,
        FakeOpenAI() as models,
        fresh_pg_database() as db_url,
    ):
        models.when(thinking, lambda s: Reply(text=f"{s.last_user_text.split()[0]}: done"))
        # Nothing dies here: a lease long enough that a busy machine never lets one lapse.
        env = {
            **environment(slack, db_url, write_catalog(tmp_path), models),
            "BATON_LEASE_SECONDS": "30",
        }
        db = Database(db_url)
        try:
            async with (
                process(env, tmp_path, "run", "--http") as (url, _),
                process(env, tmp_path, "worker") as (_, one),
                process(env, tmp_path, "worker") as (_, two),
                aiohttp.ClientSession() as session,
            ):
                bot = Bot(baton=None, url=url, slack=slack, session=session)  # type: ignore[arg-type]
                threads = await asyncio.gather(*(bot.mention("run think") for _ in range(24)))
                done = await asyncio.wait_for(finished(db, slack, list(threads)), 90)
                for run in done:
                    assert run.status == RunStatus.SUCCEEDED
                    assert len(answers(slack, run.id)) == 1
                    # Driven by the workers only (a worker that met a database outage lets go
                    # and the run is taken up again, so a run may have more than one drive;
                    # what is never doubled is its model call, counted below, and its answer).
                    driven_by = await drivers(db, run.id)
                    assert driven_by and set(driven_by) <= {str(one.pid), str(two.pid)}
                assert len([s for s in models.requests if thinking(s)]) == 24
        finally:
            await db.dispose()


async def test_a_worker_killed_mid_task_leaves_it_to_another_that_finishes_it_once(
    tmp_path: Path,
) -> None:
    async with (
        SlackStandIn() as slack,
        FakeOpenAI() as models,
        WebhookReceiver() as hook,
        fresh_pg_database() as db_url,
    ):
        killed = asyncio.Event()
        models.when(
            thinking,
            lambda s: Reply(text="ready to deploy") if killed.is_set() else Reply(hang=True),
        )
        env = environment(
            slack, db_url, write_catalog(tmp_path, webhook=hook.url, approvers="U0ALICE"), models
        )
        db = Database(db_url)
        try:
            async with (
                process(env, tmp_path, "run", "--http") as (url, _),
                aiohttp.ClientSession() as session,
            ):
                bot = Bot(baton=None, url=url, slack=slack, session=session)  # type: ignore[arg-type]
                async with process(env, tmp_path, "worker") as (_, first):
                    thread = await bot.mention("run think-then-deploy")
                    await slack.wait_for(
                        lambda: any(thinking(s) for s in models.requests), timeout=30
                    )
                    first.send_signal(signal.SIGKILL)  # mid-task: its model call is in flight
                    await first.wait()
                killed.set()
                async with process(env, tmp_path, "worker") as (_, second):
                    gate = await slack.wait_for(
                        lambda: next(iter(approval_requests(slack)), None), timeout=60
                    )
                    status = await bot.click(
                        ui.APPROVE, approval_value(gate), user="U0ALICE", message=gate
                    )
                    assert status == 200
                    [run] = await asyncio.wait_for(finished(db, slack, [thread]), 60)
                    assert run.status == RunStatus.SUCCEEDED, run.error
                    assert len(answers(slack, run.id)) == 1
                    # The first worker started it; the second took over and applied the click.
                    assert (await drivers(db, run.id))[0] == str(first.pid)
                    assert set((await drivers(db, run.id))[1:]) == {str(second.pid)}
            # The cut-off step ran again; the side effect after it happened exactly once.
            assert len([s for s in models.requests if thinking(s)]) == 2
            assert [r.path for r in hook.received] == ["/hook"]
        finally:
            await db.dispose()


async def test_a_worker_killed_while_posting_a_commands_request_leaves_it_to_another_once(
    tmp_path: Path,
) -> None:
    """A slash command's request message is made by the worker that drives its run, after the
    ack. The first worker dies while Slack holds that post (Slack never makes it); the next
    worker posts the same request, once, and the run answers in its thread."""
    async with (
        SlackStandIn() as slack,
        FakeOpenAI() as models,
        fresh_pg_database() as db_url,
    ):
        models.when(thinking, lambda s: Reply(text="thought it through"))
        env = environment(slack, db_url, write_catalog(tmp_path), models)
        db = Database(db_url)
        asked = slack.hold("chat.postMessage", when=lambda a: "asked:" in str(a.get("text")))
        try:
            async with (
                process(env, tmp_path, "run", "--http") as (url, _),
                aiohttp.ClientSession() as session,
            ):
                bot = Bot(baton=None, url=url, slack=slack, session=session)  # type: ignore[arg-type]
                status, ack = await bot.slash_ack("run think")
                assert status == 200 and ack is None
                async with process(env, tmp_path, "worker") as (_, first):
                    await asyncio.wait_for(asked.arrived.wait(), 30)
                    first.send_signal(signal.SIGKILL)
                    await first.wait()
                asked.release(apply=False)  # Slack did not post it
                async with process(env, tmp_path, "worker") as (_, second):
                    run = await asyncio.wait_for(until_answered(db, slack), 60)
                    assert run.status == RunStatus.SUCCEEDED, run.error
                    assert await drivers(db, run.id) == [str(second.pid)]
            top = [m for m in slack.messages("C0GENERAL") if not m.is_reply]
            assert [m.text for m in top] == ["<@U0ALICE> asked: run `think`"]
            assert run.thread_ts == top[0].ts and len(answers(slack, run.id)) == 1
            requests = [d for d in await outbox.for_run(db, run.id) if d.purpose == "request"]
            assert len(requests) == 1 and requests[0].data["response_url"]
        finally:
            await db.dispose()


async def until_answered(db: Database, slack: SlackStandIn) -> Run:
    """The one run in the database, once it has ended and its answer is posted."""
    while True:
        run = await runs.latest_run(db, channel_id="C0GENERAL")
        if run is not None and run.status.is_final and answers(slack, run.id):
            return run
        await asyncio.sleep(0.1)


async def test_claims_at_the_same_moment_never_share_a_run(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        ids = [runs.new_id() for _ in range(60)]
        for run_id in ids:
            await runs.create_run(db, Run(id=run_id, source="command", request="x"))
        claimants = [queue.Claims(f"worker-{i}") for i in range(4)]
        taken = await asyncio.gather(
            *(c.claim(db, limit=20, seconds=30) for c in claimants for _ in range(2))
        )
        won = [c.lease.run_id for claims in taken for c in claims]
        assert sorted(won) == sorted(ids)  # each run once, none left behind
        # A run claimed is not claimed again while its lease holds.
        assert await claimants[0].claim(db, limit=60, seconds=30) == []
        tokens = {c.lease.token for claims in taken for c in claims}
        # Each claim comes with its run as stored, under the lease it took.
        assert all(c.run.id == c.lease.run_id for claims in taken for c in claims)
        assert all(c.run.lease_owner == c.lease.token for claims in taken for c in claims)
        assert len(tokens) == len(won)
    finally:
        await db.dispose()


async def test_a_worker_claims_a_burst_once_its_wake_ups_pause(pg_url: str) -> None:
    """While the web process stores a burst, each group's commit wakes the workers; they claim
    once the wake-ups pause, so the acks are not competing with the claims."""
    db = Database(pg_url)
    wake = asyncio.Event()
    listener = queue.Listener(db, wake)
    try:
        await listener.start()
        assert listener.heard_at == float("-inf")
        await queue.notify(db)
        await asyncio.wait_for(wake.wait(), 10)
        heard = listener.heard_at
        assert heard <= asyncio.get_running_loop().time()
    finally:
        await listener.close()
        await db.dispose()
    # Heard just now: wait for the quiet, unless the worker has waited its longest already.
    assert work.burst_wait(heard, heard, first=heard) == pytest.approx(work.BURST_QUIET)
    quiet = heard + work.BURST_QUIET
    assert work.burst_wait(quiet - 0.005, heard, first=heard) == pytest.approx(0.005)
    assert work.burst_wait(quiet, heard, first=heard) == 0
    later = heard + work.BURST_MOST - 0.001  # wake-ups kept coming until a moment ago
    assert work.burst_wait(later, later, first=heard) == pytest.approx(0.001)
    assert work.burst_wait(heard + work.BURST_MOST, later, first=heard) == 0
    # Nothing heard (only its own run ended, or no notifications): claim at once.
    assert work.burst_wait(heard, float("-inf"), first=heard) == 0


async def test_a_run_waiting_for_a_person_is_not_claimed(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        run_id = runs.new_id()
        await runs.create_run(db, Run(id=run_id, source="command", request="x"))
        await run_states.run_started(
            db, run_id, driver="test", deadline_at=utcnow(), budget_usd=None
        )
        await run_states.plan_ready(db, run_id, {}, [])
        await run_states.run_waiting(db, run_id)
        assert await queue.Claims("w").claim(db, limit=5, seconds=30) == []
    finally:
        await db.dispose()


async def test_the_queue_holds_runs_nobody_drives_and_decided_gates_only(any_db: Database) -> None:
    """On SQLite and PostgreSQL alike: queued runs, not a follower whose predecessor is going,
    not a run waiting for a person until the person has decided, not a run someone drives."""
    from datetime import timedelta

    from storage import approvals
    from storage.db import utcnow
    from storage.models import Approval, TaskRow

    db = any_db
    queued, follower, waiting, driven = (runs.new_id() for _ in range(4))
    for run_id in (queued, waiting, driven):
        await runs.create_run(db, Run(id=run_id, source="command", request="x"))
    await runs.create_run(
        db, Run(id=follower, source="mention", request="x", follows_run_id=queued)
    )
    for run_id in (waiting, queued):
        await run_states.run_started(
            db, run_id, driver="test", deadline_at=utcnow(), budget_usd=None
        )
    await run_states.plan_ready(
        db, waiting, {}, [TaskRow(run_id=waiting, task_id="t", agent="a", instruction="i")]
    )
    await run_states.plan_ready(db, queued, {}, [])
    await run_states.run_waiting(db, waiting)
    gate = await approvals.create(
        db,
        Approval(
            id=approvals.new_approval_id(),
            run_id=waiting,
            task_id="t",
            kind="task",
            expires_at=utcnow() + timedelta(hours=1),
        ),
        task_fields={},
    )
    assert await runs.acquire_lease(db, driven, "elsewhere:1", seconds=60) is not None
    claims = queue.Claims("w")

    first = await claims.claim(db, limit=10, seconds=30)
    assert [c.lease.run_id for c in first] == [queued]
    assert await approvals.decide(db, gate.id, approve=True, by="U0ALICE") is not None
    second = await claims.claim(db, limit=10, seconds=30)
    assert [c.lease.run_id for c in second] == [waiting]
    # The predecessor ends: its follower is work now.
    await run_states.run_ended(
        db, queued, EventKind.RUN_FINISHED, RunStatus.SUCCEEDED, answer="done"
    )
    third = await claims.claim(db, limit=10, seconds=30)
    assert [c.lease.run_id for c in third] == [follower]


async def test_a_follow_up_is_read_with_its_thread_before_a_worker_plans_it(
    tmp_path: Path,
) -> None:
    """A reply without a mention in Baton's thread: the web process stores it and reads the
    thread after the ack; the worker plans it knowing what was written there."""
    from tests.test_conversations import CATALOG, PLAN, advisor, planner, synthesis

    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG)
    async with (
        SlackStandIn() as slack,
        FakeOpenAI() as models,
        fresh_pg_database() as db_url,
    ):
        models.when(planner, Reply(structured=PLAN))
        models.when(advisor, Reply(text="notes"))
        models.when(
            lambda s: synthesis(s) and "how long" in s.last_user_text,
            Reply(text="About two days."),
        )
        models.when(synthesis, Reply(text="Use PostgreSQL with nightly backups."))
        env = {
            **environment(slack, db_url, catalog, models),
            "BATON_MODEL": "openai:gpt-4.1-mini",
            "BATON_LEASE_SECONDS": "30",
        }
        db = Database(db_url)
        try:
            async with (
                process(env, tmp_path, "run", "--http") as (url, web),
                process(env, tmp_path, "worker") as (_, worker),
                aiohttp.ClientSession() as session,
            ):
                bot = Bot(baton=None, url=url, slack=slack, session=session)  # type: ignore[arg-type]
                root = await bot.say("We are choosing a database for the wiki.")
                await bot.say("Backups matter most to me.", user="U0BOB", thread_ts=root.ts)
                await bot.mention("what do you suggest?", thread_ts=root.ts)
                [first] = await asyncio.wait_for(finished(db, slack, [root]), 60)
                assert first.status == RunStatus.SUCCEEDED
                assert "Use PostgreSQL with nightly backups." in texts(slack, root)
                reading = slack.hold("conversations.replies")
                await bot.say("and how long would the move take?", thread_ts=root.ts)
                await asyncio.wait_for(reading.arrived.wait(), 30)
                # While the thread is being read, the run is the web process's: no worker
                # has claimed it, and it was stored so (not claimable for a moment).
                async with db.session() as s:
                    from sqlmodel import select

                    waiting = (
                        await s.exec(select(Run).where(Run.request.startswith("and how long")))  # type: ignore[attr-defined]
                    ).one()
                assert waiting.lease_owner is not None
                assert f":{web.pid}:" in waiting.lease_owner and ":intake:" in waiting.lease_owner
                assert len([s for s in models.requests if planner(s)]) == 1
                reading.release()
                await slack.wait_for(lambda: "About two days." in texts(slack, root), 60)
                follow_up = await asyncio.wait_for(ended(db, waiting.id), 60)
                assert follow_up.status == RunStatus.SUCCEEDED
                assert await drivers(db, follow_up.id) == [str(worker.pid)]
                assert str(web.pid) not in await drivers(db, follow_up.id)
        finally:
            await db.dispose()
    follow_up_plan = [s for s in models.requests if planner(s)][-1].last_user_text
    assert "<@U0BOB> wrote: Backups matter most to me." in follow_up_plan
    assert "Use PostgreSQL with nightly backups." in follow_up_plan


def texts(slack: SlackStandIn, root: Message) -> str:
    """What Baton has written in the thread under `root`."""
    return "\n".join(
        m.text
        for m in slack.messages("C0GENERAL")
        if m.user == slack.workspace.bot.id and m.thread_ts == root.ts
    )


async def recorded_worker(db: Database, pid: int) -> WorkerRow:
    """The row of the worker process `pid`, once it has recorded itself."""
    while True:
        found = await workers.recorded(db)
        for row in [*found.live, *found.stale]:
            if row.pid == pid:
                return row
        await asyncio.sleep(0.1)


async def beat_after(db: Database, row: WorkerRow) -> WorkerRow:
    """The worker's row once it has beaten again since `row` was read."""
    while True:
        now = await recorded_worker(db, row.pid)
        if now.last_beat_at > row.last_beat_at:
            return now
        await asyncio.sleep(0.2)


async def test_a_worker_is_listed_while_it_beats_goes_stale_when_killed_and_leaves_when_stopped(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from prometheus_client.parser import text_string_to_metric_families

    async with (
        SlackStandIn() as slack,
        FakeOpenAI() as models,
        fresh_pg_database() as db_url,
    ):
        env = environment(slack, db_url, write_catalog(tmp_path), models)
        db = Database(db_url)
        try:
            async with (
                process(env, tmp_path, "worker") as (url, killed),
                process(env, tmp_path, "worker") as (_, stopped),
                aiohttp.ClientSession() as session,
            ):
                gone = await asyncio.wait_for(recorded_worker(db, killed.pid), 30)
                kept = await asyncio.wait_for(recorded_worker(db, stopped.pid), 30)
                assert gone.host == socket.gethostname() and gone.runs_driving == 0
                assert f":{killed.pid}:" in gone.id
                async with session.get(f"{url}/metrics") as resp:
                    shown = {
                        (s.name, tuple(sorted(s.labels.items()))): s.value
                        for family in text_string_to_metric_families(await resp.text())
                        for s in family.samples
                    }
                assert shown[("baton_workers", (("state", "live"),))] == 2
                assert shown[("baton_worker_runs_driving", (("worker", gone.id),))] == 0

                killed.send_signal(signal.SIGKILL)
                await killed.wait()
                # Nothing beats for it any more: once the stale time has passed since its last
                # beat, it is listed as stale while the other (still beating) is live.
                last = (await recorded_worker(db, killed.pid)).last_beat_at
                soon = await workers.recorded(
                    db, now=last + timedelta(seconds=workers.STALE_SECONDS - 1)
                )
                assert killed.pid in [w.pid for w in soon.live]
                later = last + timedelta(seconds=workers.STALE_SECONDS + 1)
                found = await workers.recorded(db, now=later)
                assert killed.pid in [w.pid for w in found.stale]
                assert killed.pid not in [w.pid for w in found.live]
                # The other goes on beating.
                renewed = await asyncio.wait_for(beat_after(db, kept), 30)
                assert renewed.pid == stopped.pid
            # SIGTERM: the stopped worker took its row with it; the killed one's stays, stale.
            rows = await workers.recorded(db, now=later)
            assert [w.pid for w in rows.live + rows.stale] == [killed.pid]
        finally:
            await db.dispose()

"""Baton's benchmarks, all local: `make bench` prints one table.

- this machine, before and after the rest: a fixed piece of Python's CPU time and a
  PostgreSQL round trip, to set the figures against another machine's (`bench/machine.py`)
- ack latency: signed `app_mention` POSTs to /slack/events until the HTTP answer (Slack's limit:
  3 s), with Slack answering normally and with Slack answering 429 to every Web API call
- run throughput: offline (`rules`) runs checking a local site, 20 at once, SQLite and PostgreSQL
- Slack calls per run: how many Web API calls a 12-task-update run costs after coalescing
- Slack economy: calls per 3- and 10-task run against `tasks + 4`, and the most edits one
  message had in a second (`bench/slack_economy.py`)
- streamed answer: a 600-word answer streamed by a model, from its first piece to the answer
  in the thread, and the Slack calls its preview took
- approval race: 50 concurrent decisions on one approval in PostgreSQL (exactly one must win)
- quorum race: 50 approvals by 10 people at once on a quorum-5 gate (each counts once, one decision)
- sandbox page: from a Web API call to the page's WebSocket frame that shows it
- schedule fires: 40 schedules due at once, ticked by two schedulers (replicas) together
- telemetry: the same offline runs with tracing and metrics off and on (OTLP to a local collector)
- first start: `make run` in a fresh copy, nothing installed or cached, until the sandbox's URL
- MCP call overhead: a tool called through an MCP server (stdio, HTTP) against a built-in one
- migrations: a new and a 0.1.0 database upgraded to head; start-up's check when at head
- installation stores: authorising requests in OAuth mode, and how long each store blocks the loop
- intake groups: a group of requests stored before their acks on PostgreSQL, as the one
  statement new runs take against a transaction (`bench/intake_groups.py`)
- real model: one run against llama-cpp-python's server with SmolLM2-135M (time and tokens)
- scale (`bench/scale.py`): acks under bursts against a bare Bolt app, with runs in flight in
  a worker, and the worker's memory per run in flight; orchestration overhead per task against
  LangGraph's; throughput with 1, 2 and 4 workers, for runs that wait on their models and
  for offline runs
- parallel efficiency: runs whose model calls each take 1 s, their wall time over their
  critical path, for playbooks and planned requests (`bench/parallel.py`)
- SQLite's write-ahead log: its largest size over 300 ten-task runs, and the database
  file's at the end (`bench/sqlite_log.py`)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import pct, print_table  # noqa: E402
from testkit.databases import Site, fresh_pg_database  # noqa: E402


async def with_site(
    fn: Callable[[Site], Awaitable[list[tuple[str, str, str]]]],
) -> list[tuple[str, str, str]]:
    from aiohttp import web

    state = Site()

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="All systems operational")

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        return await fn(state)
    finally:
        await runner.cleanup()


async def ack_latency(site: Site) -> list[tuple[str, str, str]]:
    """Mentions answered by Baton: with Slack answering normally, then with Slack answering
    HTTP 429 (Retry-After: 4) to every Web API call while the mentions come in."""
    from sandbox.web_api import SlackStandIn
    from testkit.harness import running_bot

    async def hundred(bot: Any, slack: Any) -> list[float]:
        timings: list[float] = []
        for i in range(100):
            msg = await slack.post_as_user(
                "C0GENERAL", "U0ALICE", f"<@U0BATON> is {site.url('/ok')} up? {i}"
            )
            event = {
                "type": "app_mention",
                "user": "U0ALICE",
                "text": msg.text,
                "ts": msg.ts,
                "channel": "C0GENERAL",
                "event_ts": msg.ts,
            }
            start = time.perf_counter()
            assert await bot.event(event) == 200
            timings.append((time.perf_counter() - start) * 1000)
        return timings

    rows = []
    for throttled in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            async with SlackStandIn() as slack, running_bot(slack, f"sqlite:///{tmp}/b.db") as bot:
                if throttled:
                    slack.throttle(retry_after=4)
                timings = await hundred(bot, slack)
                slack.unthrottle()
                await bot.idle()
        label = (
            "ack latency, mention → HTTP 200, Slack 429s every call (100)"
            if throttled
            else "ack latency, mention → HTTP 200 (100 requests)"
        )
        rows.append(
            (
                label,
                "p50 / p99 / max",
                f"{pct(timings, 0.5):.1f} / {pct(timings, 0.99):.1f} / {max(timings):.1f} ms",
            )
        )
    return rows


async def throughput(site: Site, url: str, label: str) -> tuple[str, str, str]:
    from storage import Database, runs
    from storage.models import Run, RunStatus
    from testkit.offline import offline_orchestrator

    db = Database(url)
    await db.create_all()
    orch = offline_orchestrator(db, allow_hosts=frozenset({"127.0.0.1"}))
    ids = []
    for i in range(20):
        run = await runs.create_run(
            db, Run(id=runs.new_id(), request=f"check {site.url('/ok')} and summarise #{i}")
        )
        ids.append(run.id)
    latencies: list[float] = []

    async def one(run_id: str) -> None:
        t0 = time.perf_counter()
        await orch.execute(run_id)
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in ids))
    elapsed = time.perf_counter() - start
    done = [
        r for r in [await runs.get_run(db, i) for i in ids] if r and r.status == RunStatus.SUCCEEDED
    ]
    await db.dispose()
    assert len(done) == 20
    return (
        f"offline runs, 2 tasks each, 20 at once ({label})",
        "runs/s · p50 run",
        f"{20 / elapsed:.1f} runs/s · {pct(latencies, 0.5) * 1000:.0f} ms",
    )


async def run_throughput(site: Site) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [await throughput(site, f"sqlite:///{tmp}/b.db", "SQLite")]
    async with fresh_pg_database() as url:
        rows.append(await throughput(site, url, "PostgreSQL"))
    return rows


async def slack_calls(site: Site) -> list[tuple[str, str, str]]:
    from bot.progress import ProgressOptions
    from sandbox.web_api import SlackStandIn
    from storage import runs
    from testkit.harness import running_bot

    urls = " ".join(site.url(f"/ok?n={i}") for i in range(12))
    rows = []
    for label, progress in (
        ("streaming", ProgressOptions()),
        ("chat.update", ProgressOptions(streaming=False)),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            async with (
                SlackStandIn() as slack,
                running_bot(slack, f"sqlite:///{tmp}/b.db", progress=progress) as bot,
            ):
                await bot.mention(f"check {urls} and summarise")
                await bot.idle()
                run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
                assert run is not None
                events = len(await runs.events(bot.baton.db, run.id))
                calls = [c for c in slack.calls if c.method not in ("auth.test",)]
        rows.append(
            (
                f"Slack calls for a 12-check run ({label})",
                "run events → Web API calls",
                f"{events} → {len(calls)}",
            )
        )
    return rows


async def slack_economy(_: Site) -> list[tuple[str, str, str]]:
    from bench.slack_economy import slack_economy as measure

    return await measure()


async def approval_race(_: Site) -> list[tuple[str, str, str]]:
    from datetime import timedelta

    from storage import Database, approvals, run_states, runs
    from storage.db import utcnow
    from storage.models import Approval, Run, TaskRow

    async with fresh_pg_database() as url:
        db = Database(url)
        await db.create_all()
        run = await runs.create_run(db, Run(id=runs.new_id(), request="x"))
        await run_states.run_started(
            db, run.id, driver="bench", deadline_at=utcnow(), budget_usd=None
        )
        await run_states.plan_ready(
            db, run.id, {}, [TaskRow(run_id=run.id, task_id="t", agent="a", instruction="i")]
        )
        approval = await approvals.create(
            db,
            Approval(
                id=approvals.new_approval_id(),
                run_id=run.id,
                task_id="t",
                kind="task",
                expires_at=utcnow() + timedelta(hours=1),
            ),
            task_fields={},
        )
        timings: list[float] = []

        async def click(i: int) -> bool:
            t0 = time.perf_counter()
            result = await approvals.decide(db, approval.id, approve=i % 2 == 0, by=f"U{i}")
            timings.append((time.perf_counter() - t0) * 1000)
            return bool(result and result.won)

        wins = await asyncio.gather(*(click(i) for i in range(50)))
        await db.dispose()
    return [
        (
            "approval race, 50 concurrent clicks (PostgreSQL)",
            "winners · p50 decision",
            f"{sum(wins)} · {pct(timings, 0.5):.1f} ms",
        )
    ]


async def page_latency(_: Site) -> list[tuple[str, str, str]]:
    import aiohttp
    from slack_sdk.web.async_client import AsyncWebClient

    from sandbox.relay import Relay
    from sandbox.server import SandboxPage
    from sandbox.web_api import SlackStandIn

    timings: list[float] = []
    async with SlackStandIn() as slack:
        relay = Relay(slack, events_url="http://127.0.0.1:9/slack/events", signing_secret="x")
        page = SandboxPage(slack, relay)
        url = (await page.start()).url
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"{url}ws", params={"user": "U0ALICE"}) as socket,
            ):
                for i in range(100):
                    start = time.perf_counter()
                    await client.chat_postMessage(channel="C0GENERAL", text=f"update {i}")
                    while "change" not in (await socket.receive_json(timeout=5)):
                        pass
                    timings.append((time.perf_counter() - start) * 1000)
        finally:
            await page.stop()
            await relay.aclose()
    return [
        (
            "sandbox page, chat.postMessage → WebSocket frame",
            "p50 / p95 / max",
            f"{pct(timings, 0.5):.1f} / {pct(timings, 0.95):.1f} / {max(timings):.1f} ms",
        )
    ]


async def quorum_race(_: Site) -> list[tuple[str, str, str]]:
    from bench.approval_policies import quorum_race as measure

    return await measure()


async def schedule_race(_: Site) -> list[tuple[str, str, str]]:
    from bench.schedule_fires import fire_race

    return await fire_race()


async def telemetry(site: Site) -> list[tuple[str, str, str]]:
    from bench.telemetry_cost import telemetry_cost

    return await telemetry_cost(site)


async def first_start(_: Site) -> list[tuple[str, str, str]]:
    from bench.first_start import first_start as measure

    return await measure()


async def mcp_overhead(_: Site) -> list[tuple[str, str, str]]:
    from bench.mcp import call_overhead

    return await call_overhead()


async def migrations(_: Site) -> list[tuple[str, str, str]]:
    from bench.migrations import upgrades

    return await upgrades()


async def intake_groups(_: Site) -> list[tuple[str, str, str]]:
    from bench.intake_groups import intake_groups as measure

    return await measure()


async def installation_stores(_: Site) -> list[tuple[str, str, str]]:
    from bench.installation_stores import installation_stores as measure

    return await measure()


async def real_model(site: Site) -> list[tuple[str, str, str]]:
    from bench.real_model_run import real_model_run

    return await real_model_run(site)


async def machine_before(_: Site) -> list[tuple[str, str, str]]:
    from bench.machine import machine

    return await machine("before")


async def parallel(_: Site) -> list[tuple[str, str, str]]:
    from bench.parallel import parallel_efficiency

    return await parallel_efficiency()


async def sqlite_log(_: Site) -> list[tuple[str, str, str]]:
    from bench.sqlite_log import sqlite_log as measure

    return await measure()


async def machine_after(_: Site) -> list[tuple[str, str, str]]:
    from bench.machine import machine

    return await machine("after")


async def scale(_: Site) -> list[tuple[str, str, str]]:
    from bench.scale import scale as measure

    return await measure()


async def streamed_answer(site: Site) -> list[tuple[str, str, str]]:
    from sandbox.web_api import SlackStandIn
    from storage import runs
    from testkit.fakes.model_servers import FakeOpenAI, Reply
    from testkit.harness import running_bot

    words = 600
    answer = " ".join(f"w{i}" for i in range(words))
    catalog = (
        "agents:\n  - {name: web-checker, description: Checks URLs., model: rules, "
        "tools: [http_check]}\nplaybooks:\n  - name: check\n    description: Check.\n"
        "    tasks:\n      - {id: c, agent: web-checker, instruction: Check the URL.}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "agents.yml").write_text(catalog)
        async with FakeOpenAI() as openai, SlackStandIn() as slack:
            openai.default = Reply(text=answer)
            async with running_bot(
                slack,
                f"sqlite:///{tmp}/b.db",
                openai_api_key="sk-bench",
                openai_base_url=openai.base_url,
                baton_model="openai:gpt-4.1-mini",
                baton_agents_file=Path(tmp) / "agents.yml",
            ) as bot:
                started = time.perf_counter()
                await bot.mention(f"run check {site.url('/ok')}")
                await bot.idle()
                took = time.perf_counter() - started
                run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
                assert run is not None and run.answer_preview_ts is not None
                preview = [
                    c
                    for c in slack.calls
                    if c.method.startswith("chat.")
                    and run.answer_preview_ts in (c.args.get("ts"), c.response.get("ts"))
                ]
    return [
        (
            "Streamed answer, 600 words (OpenAI wire, local)",
            "model pieces → Slack calls; request to answer",
            f"{words} → {len(preview)}; {took:.2f} s",
        )
    ]


async def main() -> None:
    rows: list[tuple[str, str, str]] = []
    for bench in (
        machine_before,
        ack_latency,
        run_throughput,
        slack_calls,
        slack_economy,
        streamed_answer,
        approval_race,
        quorum_race,
        page_latency,
        schedule_race,
        telemetry,
        first_start,
        mcp_overhead,
        migrations,
        installation_stores,
        intake_groups,
        real_model,
        scale,
        parallel,
        sqlite_log,
        machine_after,
    ):
        rows += await with_site(bench)
    print_table(rows)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())

"""`GET /metrics` after scripted runs shows exactly what happened; stored counts come from the database."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.retry import RetryPolicy
from bot import approval_blocks as ui
from bot.transports import serve_operator_routes
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.db import utcnow
from storage.models import RunStatus
from testkit.databases import PG_ADMIN, Site, fresh_pg_database
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.harness import Bot, running_bot
from tests.test_approvals import approval_messages, value_of
from tests.test_schedules import add_schedule, fires, start_clock

CATALOG = """
agents:
  - name: counter
    description: Counts things exactly.
    model: openai:gpt-4.1-mini
    tools: [calculator]
  - name: writer
    description: Writes the summary.
    model: openai:gpt-4.1-mini
"""
GOOD_PLAN = {
    "tasks": [
        {"id": "count", "agent": "counter", "instruction": "Add 2 and 3"},
        {"id": "write", "agent": "writer", "instruction": "Summarise", "depends_on": ["count"]},
    ]
}
DOOMED_PLAN = {"tasks": [{"id": "write", "agent": "writer", "instruction": "Write the doomed one"}]}
GATED_CATALOG = """
agents:
  - name: announcer
    description: Posts messages to channels.
    model: rules
    tools: [post_message]
    reach: {post_channels: [C0RANDOM]}
  - name: web-checker
    description: Checks websites.
    model: rules
    tools: [http_check]
    triggers: ['https?://']
playbooks:
  - name: announce
    description: Announce a deploy.
    tasks:
      - {id: post, agent: announcer, instruction: 'Post "Deploy finished" to <#C0RANDOM>'}
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def planner(seen: Seen) -> bool:
    return "Turn the request into a plan" in seen.system


def counter(seen: Seen) -> Reply:
    if any(m.get("role") == "tool" for m in seen.body["messages"]):
        return Reply(text="5", input_tokens=30, output_tokens=7)
    return Reply(tool_calls=[("calculator", {"expression": "2+3"})], input_tokens=20)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.when(
            lambda s: planner(s) and "doomed" in s.last_user_text,
            Reply(structured=DOOMED_PLAN, input_tokens=40, output_tokens=10),
        )
        server.when(planner, Reply(structured=GOOD_PLAN, input_tokens=100, output_tokens=50))
        server.when(lambda s: s.system.startswith("You are counter,"), counter)
        server.when(
            lambda s: s.system.startswith("You are writer,") and "doomed" in s.last_user_text,
            Reply(status=400, error_message="this request is not allowed"),
        )
        server.when(lambda s: s.system.startswith("You are writer,"), Reply(text="summary"))
        server.when(lambda s: "Write the final answer" in s.system, Reply(text="the answer"))
        # Asked once after the doomed run's writer fails: nothing else to try.
        server.when(
            lambda s: "Make ONE revised plan" in s.system,
            Reply(structured={"title": "-", "tasks": []}, input_tokens=15, output_tokens=3),
        )
        yield server


async def scrape(bot: Bot) -> Samples:
    async with bot.session.get(f"{bot.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """Every sample of one metric, by the values of `keys`, leaving out zeros."""
    found: dict[tuple[str, ...], float] = {}
    for (sample, labels), v in samples.items():
        if sample == name and v:
            by = dict(labels)
            found[tuple(by[k] for k in keys)] = v
    return found


async def test_metrics_after_scripted_runs_show_exactly_those_counts(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG)
    # Slack turns down the first answer once (HTTP 429); Baton waits and posts it.
    slack.ratelimit("chat.postMessage", times=1, retry_after=0)
    async with running_bot(
        slack,
        sqlite_url,
        limits=Limits(retry=RetryPolicy(max_attempts=2, base_delay=0.01), task_timeout=10),
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        baton_model="openai:gpt-4.1-mini",
        baton_agents_file=catalog,
    ) as bot:
        await bot.mention("count and summarise")
        await bot.idle()
        await bot.mention("the doomed request")
        await bot.idle()
        stored = [await runs.get_run(bot.baton.db, r.id) for r in await all_runs(bot)]
        samples = await scrape(bot)

    assert sorted(r.status.value for r in stored if r) == ["failed", "succeeded"]
    assert labelled(samples, "baton_runs_total", "status") == {("succeeded",): 1, ("failed",): 1}
    assert labelled(samples, "baton_runs_active", "status") == {}
    assert labelled(samples, "baton_tasks_total", "agent", "status") == {
        ("counter", "succeeded"): 1,
        ("writer", "succeeded"): 1,
        ("writer", "failed"): 1,
    }
    # Planning, the counter's two turns, the writer and the synthesis of the first run; the
    # doomed run's planning and its one request for a revised plan (its writer is refused,
    # and with nothing done there is nothing to synthesise: Baton's own reasons are the answer).
    tokens_in, tokens_out = 100 + 20 + 30 + 12 + 12 + 40 + 15, 50 + 5 + 7 + 5 + 5 + 10 + 3
    assert labelled(samples, "baton_model_tokens_total", "model", "kind") == {
        ("openai:gpt-4.1-mini", "input"): tokens_in,
        ("openai:gpt-4.1-mini", "output"): tokens_out,
    }
    assert sum(r.input_tokens for r in stored if r) == tokens_in
    assert value(samples, "baton_cost_usd_total", model="openai:gpt-4.1-mini") == pytest.approx(
        (tokens_in * 0.4 + tokens_out * 1.6) / 1_000_000
    )
    assert value(samples, "baton_run_duration_seconds_count", status="succeeded") == 1
    assert value(samples, "baton_run_duration_seconds_count", status="failed") == 1
    assert value(samples, "baton_approvals_waiting") == 0
    assert value(samples, "baton_database_up") == 1

    # Every Web API call the stand-in answered, and nothing else, by method and result.
    answered = Counter(
        (c.method, "ratelimited" if c.status == 429 else str(c.response.get("error") or "ok"))
        for c in slack.calls
        if c.method not in ("response_url", "command_ack")
    )
    counted = labelled(samples, "baton_slack_calls_total", "method", "result")
    assert counted == dict(answered)
    assert counted[("chat.postMessage", "ratelimited")] == 1


async def all_runs(bot: Bot) -> list[Any]:
    return await runs.runs_by_status(bot.baton.db, list(RunStatus))


async def test_waiting_approvals_and_schedule_fires_are_read_from_the_database(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(GATED_CATALOG)
    async with running_bot(
        slack, sqlite_url, baton_agents_file=catalog, baton_schedule_grace=2
    ) as bot:
        await bot.slash("run announce")
        await bot.idle()
        # Baton was "down" for three minutes of a one-minute schedule: the fire is missed.
        made = await add_schedule(
            bot.baton.db,
            f"check {site.url('/ok')}",
            seconds=60,
            created_at=utcnow() - timedelta(minutes=3, seconds=30),
        )
        await start_clock(bot)
        await bot.idle()
        await bot.slash(f"schedule run {made.id}")
        await bot.idle()
        before = await scrape(bot)

        [message] = approval_messages(slack)
        await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
        await bot.idle()
        after = await scrape(bot)
        outcomes = sorted(f.outcome.value for f in await fires(bot.baton.db, made.id))

    assert outcomes == ["missed", "started"]
    assert labelled(before, "baton_schedule_fires_total", "outcome") == {
        ("missed",): 1,
        ("started",): 1,
    }
    assert value(before, "baton_approvals_waiting") == 1
    assert labelled(before, "baton_runs_active", "status") == {("waiting",): 1}
    assert labelled(before, "baton_runs_total", "status") == {("succeeded",): 1}
    assert labelled(before, "baton_tasks_total", "agent", "status") == {
        ("web-checker", "succeeded"): 1
    }

    assert value(after, "baton_approvals_waiting") == 0
    assert labelled(after, "baton_runs_active", "status") == {}
    assert labelled(after, "baton_runs_total", "status") == {("succeeded",): 2}
    assert labelled(after, "baton_tasks_total", "agent", "status") == {
        ("web-checker", "succeeded"): 1,
        ("announcer", "succeeded"): 1,
    }


async def test_a_worker_that_stopped_beating_is_shown_stale_with_the_age_of_its_beat(
    slack: SlackStandIn, sqlite_url: str
) -> None:
    from storage import workers
    from storage.models import WorkerRow

    async with running_bot(slack, sqlite_url) as bot:
        beat = utcnow() - timedelta(hours=2)
        await workers.join(
            bot.baton.db,
            WorkerRow(id="host-1:4242:ab", host="host-1", pid=4242, last_beat_at=beat),
        )
        samples = await scrape(bot)

    assert value(samples, "baton_workers", state="live") == 0
    assert value(samples, "baton_workers", state="stale") == 1
    age = value(
        samples, "baton_worker_last_beat_age_seconds", worker="host-1:4242:ab", state="stale"
    )
    assert age >= 2 * 3600
    assert not labelled(samples, "baton_worker_runs_driving", "worker")


async def test_every_replica_reports_the_stored_counts_and_only_its_own_work(
    site: Site, pg_url: str
) -> None:
    async with (
        SlackStandIn() as slack,
        running_bot(slack, pg_url) as worker,
        running_bot(slack, pg_url) as idle,
    ):
        await worker.mention(f"is {site.url('/ok')} up?")
        await worker.idle()
        from_worker, from_idle = await scrape(worker), await scrape(idle)

    for samples in (from_worker, from_idle):
        assert labelled(samples, "baton_runs_total", "status") == {("succeeded",): 1}
        assert labelled(samples, "baton_tasks_total", "agent", "status") == {
            ("web-checker", "succeeded"): 1
        }
    assert value(from_worker, "baton_run_duration_seconds_count", status="succeeded") == 1
    assert value(from_idle, "baton_run_duration_seconds_count", status="succeeded") == 0
    assert value(from_worker, "baton_slack_calls_total", method="chat.postMessage", result="ok")
    # The idle replica only said who it is at start-up (auth.test): it did none of the work.
    assert labelled(from_idle, "baton_slack_calls_total", "method", "result") == {
        ("auth.test", "ok"): 1
    }


async def test_without_its_database_metrics_still_answer_with_what_the_process_counted(
    site: Site,
) -> None:
    async with (
        fresh_pg_database() as url,
        SlackStandIn() as slack,
        running_bot(slack, url) as bot,
    ):
        await bot.mention(f"is {site.url('/ok')} up?")
        await bot.idle()
        await drop_database(url)
        samples = await scrape(bot)
        async with bot.session.get(f"{bot.url}/healthz") as health:
            health_status = health.status

    assert value(samples, "baton_database_up") == 0
    assert value(samples, "baton_run_duration_seconds_count", status="succeeded") == 1
    assert not labelled(samples, "baton_runs_total", "status")
    assert health_status == 503


async def drop_database(url: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN.replace("postgresql://", "postgres://"))
    try:
        await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_socket_mode_can_serve_health_and_metrics_on_a_port_of_their_own(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        await bot.mention(f"is {site.url('/ok')} up?")
        await bot.idle()
        ops = await serve_operator_routes(bot.baton, host="127.0.0.1", port=0)
        root = f"http://127.0.0.1:{ops.addresses[0][1]}"
        try:
            async with bot.session.get(f"{root}/metrics") as resp:
                families = {f.name for f in text_string_to_metric_families(await resp.text())}
            async with bot.session.get(f"{root}/healthz") as resp:
                health = (resp.status, await resp.json())
            async with bot.session.post(f"{root}/slack/events", data=b"{}") as resp:
                events_status = resp.status
        finally:
            await ops.cleanup()

    assert {
        "baton_runs",
        "baton_slack_calls",
        "baton_approvals_waiting",
        "baton_event_loop_lag_seconds",
    } <= families
    assert health == (200, {"ok": True})
    assert events_status == 404

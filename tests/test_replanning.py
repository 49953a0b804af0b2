"""Replanning once: a task that fails leads to one revised plan, shown in the task list,
and the answer; a second failure is not replanned; offline, the run finishes honestly.

The planner, specialists and answer are the fake OpenAI server's; Slack is the stand-in;
the database is real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.retry import RetryPolicy
from bot import approval_blocks as ui
from bot.transports import resume_interrupted
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunStatus, TaskStatus
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.harness import running_bot

CATALOG = """
agents:
  - name: lookup
    description: Looks things up in the wiki.
    model: openai:lookup-model
  - name: researcher
    description: Researches a question from general knowledge.
    model: openai:research-model
"""
PLAN = {
    "title": "Find the owner",
    "tasks": [{"id": "wiki", "agent": "lookup", "instruction": "Find the service owner"}],
}
REVISED = {
    "title": "Ask around",
    "tasks": [{"id": "ask", "agent": "researcher", "instruction": "Find the owner another way"}],
}
FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01)
DOWN = Reply(status=503, error_message="the wiki model is down")


def planner(seen: Seen) -> bool:
    return "Turn the request into a plan" in seen.system


def reviser(seen: Seen) -> bool:
    return "Make ONE revised plan" in seen.system


def synthesis(seen: Seen) -> bool:
    return "Write the final answer" in seen.system


def model(name: str) -> Any:
    return lambda seen: seen.model == name


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


def bot_on(
    slack: SlackStandIn,
    server: FakeOpenAI,
    sqlite_url: str,
    tmp_path: Path,
    *,
    agents: str = CATALOG,
    **settings: Any,
) -> Any:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(agents)
    return running_bot(
        slack,
        sqlite_url,
        limits=Limits(retry=FAST_RETRY, task_timeout=10, run_deadline=30),
        openai_api_key="sk-test",
        openai_base_url=server.base_url,
        baton_agents_file=catalog,
        **{"baton_model": "openai:planner", **settings},
    )


def task_titles(slack: SlackStandIn) -> list[str]:
    """The tasks the streamed task list has shown, in order of first appearance: a run that
    ends within one edit interval shows its last tasks only in the stream's final state."""
    streamed = ("chat.startStream", "chat.appendStream", "chat.stopStream")
    calls = [call for call in slack.calls if call.method in streamed]
    shown = [
        c["title"]
        for call in calls
        for c in call.args.get("chunks") or []
        if c.get("type") == "task_update"
    ]
    return list(dict.fromkeys(shown))


async def test_a_failed_task_leads_to_one_revised_plan_whose_tasks_are_shown_and_answer(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=PLAN))
        server.when(reviser, Reply(structured=REVISED))
        server.when(model("lookup-model"), DOWN)
        server.when(model("research-model"), Reply(text="Dana owns it."))
        server.when(synthesis, Reply(text="*researcher* found that Dana owns it."))
        async with bot_on(slack, server, sqlite_url, tmp_path) as bot:
            msg = await bot.mention("who owns the billing service?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            tasks = {t.task_id: t for t in await runs.list_tasks(bot.baton.db, run.id)}
            events = [e.kind for e in await runs.events(bot.baton.db, run.id)]

    assert len([s for s in server.requests if reviser(s)]) == 1
    revise = next(s for s in server.requests if reviser(s))
    assert "lookup (task wiki, failed)" in revise.last_user_text
    assert {k: t.status for k, t in tasks.items()} == {
        "wiki": TaskStatus.FAILED,
        "ask": TaskStatus.SUCCEEDED,
    }
    assert tasks["ask"].output == "Dana owns it."
    assert events.count("plan_revised") == 1
    assert task_titles(slack) == [
        "lookup: Find the service owner",
        "researcher: Find the owner another way",
    ]
    answer = bot.thread(msg)[-1].text
    assert answer.startswith("*researcher* found that Dana owns it.")
    assert "*lookup* (`wiki`) failed" in answer  # Baton's reason stays under the summary
    assert run.status == RunStatus.PARTIAL


async def test_a_failure_after_the_revision_is_not_replanned_again(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=PLAN))
        server.when(reviser, Reply(structured=REVISED))
        server.when(model("lookup-model"), DOWN)
        server.when(model("research-model"), DOWN)
        async with bot_on(slack, server, sqlite_url, tmp_path) as bot:
            msg = await bot.mention("who owns the billing service?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            tasks = {t.task_id: t.status for t in await runs.list_tasks(bot.baton.db, run.id)}

    assert len([s for s in server.requests if reviser(s)]) == 1
    assert tasks == {"wiki": TaskStatus.FAILED, "ask": TaskStatus.FAILED}
    assert run.status == RunStatus.FAILED
    answer = bot.thread(msg)[-1].text
    assert "*lookup* (failed)" in answer and "*researcher* (failed)" in answer
    assert not [s for s in server.requests if synthesis(s)]  # nothing to summarise


async def test_a_model_that_sees_nothing_else_to_do_finishes_with_what_was_done(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=PLAN))
        server.when(reviser, Reply(structured={"title": "Nothing else", "tasks": []}))
        server.when(model("lookup-model"), DOWN)
        async with bot_on(slack, server, sqlite_url, tmp_path) as bot:
            msg = await bot.mention("who owns the billing service?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            tasks = await runs.list_tasks(bot.baton.db, run.id)

    assert [t.task_id for t in tasks] == ["wiki"]
    assert run.plan is not None and run.plan["revision"]["tasks"] == []
    assert run.status == RunStatus.FAILED
    assert "*lookup* (failed)" in bot.thread(msg)[-1].text


async def test_the_offline_planner_finishes_honestly_without_a_revision(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = CATALOG.replace(
        "description: Looks things up in the wiki.",
        "description: Looks things up in the wiki.\n    triggers: ['\\bowns\\b']",
    )
    async with FakeOpenAI() as server:
        server.when(model("lookup-model"), DOWN)
        async with bot_on(
            slack, server, sqlite_url, tmp_path, agents=catalog, baton_model="rules"
        ) as bot:
            msg = await bot.mention("who owns the billing service?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            tasks = await runs.list_tasks(bot.baton.db, run.id)

    assert [(t.agent, t.status) for t in tasks] == [("lookup", TaskStatus.FAILED)]
    assert [s.model for s in server.requests] == ["lookup-model"] * len(server.requests)
    assert run.status == RunStatus.FAILED
    assert run.plan is not None and run.plan["revision"]["tasks"] == []
    answer = bot.thread(msg)[-1].text
    assert "*lookup* (failed)" in answer and "(HTTP 503, 2 attempts)" in answer


async def test_a_revision_survives_a_restart_and_the_run_gets_one_answer(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    stuck = {"research": True}  # the revised task hangs until the process is replaced
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=PLAN))
        server.when(reviser, Reply(structured=REVISED))
        server.when(model("lookup-model"), DOWN)
        server.when(lambda s: model("research-model")(s) and stuck["research"], Reply(hang=True))
        server.when(model("research-model"), Reply(text="Dana owns it."))
        server.when(synthesis, Reply(text="*researcher* found that Dana owns it."))
        async with bot_on(slack, server, sqlite_url, tmp_path) as bot:
            await bot.mention("who owns the billing service?")
            while not [s for s in server.requests if model("research-model")(s)]:
                await server.received(len(server.requests) + 1)
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            await bot.baton.background.cancel_all()  # what a shutdown does
        stuck["research"] = False
        async with bot_on(slack, server, sqlite_url, tmp_path) as second:
            await resume_interrupted(second.baton)
            await second.idle()
            finished = await runs.get_run(second.baton.db, run.id)
            kinds = [e.kind for e in await runs.events(second.baton.db, run.id)]
            tasks = {t.task_id: t.status for t in await runs.list_tasks(second.baton.db, run.id)}

    assert len([s for s in server.requests if reviser(s)]) == 1
    assert kinds.count("plan_revised") == 1 and "task_requeued" in kinds
    assert tasks == {"wiki": TaskStatus.FAILED, "ask": TaskStatus.SUCCEEDED}
    assert finished is not None and finished.status == RunStatus.PARTIAL
    answers = [
        m
        for m in slack.messages("C0GENERAL")
        if m.text.startswith("*researcher* found that Dana owns it.")
    ]
    assert len(answers) == 1


async def test_a_rejected_step_is_replanned_once_without_doing_it(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    gated = {
        "title": "Find the owner",
        "tasks": [
            {
                "id": "wiki",
                "agent": "lookup",
                "instruction": "Find the service owner",
                "requires_approval": True,
            }
        ],
    }
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=gated))
        server.when(reviser, Reply(structured=REVISED))
        server.when(model("research-model"), Reply(text="Dana owns it."))
        server.when(synthesis, Reply(text="*researcher* found that Dana owns it."))
        async with bot_on(slack, server, sqlite_url, tmp_path) as bot:
            msg = await bot.mention("who owns the billing service?")
            await bot.idle()
            [gate] = [
                m
                for m in slack.messages("C0GENERAL")
                if any(str(b.get("block_id", "")).startswith("approval:") for b in m.blocks or [])
            ]
            value = next(
                str(b["elements"][0]["value"])
                for b in gate.blocks
                if str(b.get("block_id", "")).startswith("approval:")
            )
            await bot.click(ui.REJECT, value, user="U0ALICE", message=gate)
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            tasks = {t.task_id: t.status for t in await runs.list_tasks(bot.baton.db, run.id)}

    assert not [s for s in server.requests if model("lookup-model")(s)]  # never done
    [revise] = [s for s in server.requests if reviser(s)]
    assert "lookup (task wiki, rejected)" in revise.last_user_text
    assert "never redo by other means a step a person rejected" in revise.system
    assert tasks == {"wiki": TaskStatus.REJECTED, "ask": TaskStatus.SUCCEEDED}
    assert bot.thread(msg)[-1].text.startswith("*researcher* found that Dana owns it.")

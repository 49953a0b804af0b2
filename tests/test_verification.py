"""`verify: true`: the reviewer checks the answer against the task results before it is
posted, and the thread says what it found — a disputed answer is never shown as checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.retry import RetryPolicy
from agents.spec import CatalogError, parse_catalog
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import runs
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.harness import running_bot

CATALOG = """
agents:
  - name: counter
    description: Counts the open tickets.
    model: openai:gpt-4.1-mini
    verify: VERIFY
  - name: reviewer
    description: Reviews answers.
    model: openai:gpt-4.1-mini
"""
PLAN = {"title": "Count", "tasks": [{"id": "count", "agent": "counter", "instruction": "count"}]}
FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01)


def planner(seen: Seen) -> bool:
    return "Turn the request into a plan" in seen.system


def synthesis(seen: Seen) -> bool:
    return "Write the final answer" in seen.system


def reviewer(seen: Seen) -> bool:
    return seen.system.startswith("You are reviewer,")


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        fake.when(planner, Reply(structured=PLAN))
        fake.when(lambda s: s.system.startswith("You are counter,"), Reply(text="41 open tickets"))
        fake.when(synthesis, Reply(text="There are 42 open tickets."))
        yield fake


def bot_on(
    slack: SlackStandIn, server: FakeOpenAI, sqlite_url: str, tmp_path: Path, verify: bool
) -> Any:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG.replace("VERIFY", "true" if verify else "false"))
    return running_bot(
        slack,
        sqlite_url,
        limits=Limits(retry=FAST_RETRY, task_timeout=10, run_deadline=30),
        openai_api_key="sk-test",
        openai_base_url=server.base_url,
        baton_model="openai:gpt-4.1-mini",
        baton_agents_file=catalog,
    )


async def test_a_disputed_answer_is_posted_with_the_reviewers_problems_under_it(
    slack: SlackStandIn, server: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    problem = "The answer says 42 tickets; the counter found 41."
    server.when(reviewer, Reply(structured={"sound": False, "problems": [problem]}))
    async with bot_on(slack, server, sqlite_url, tmp_path, verify=True) as bot:
        msg = await bot.mention("how many tickets are open?")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None
        kinds = [e.kind for e in await runs.events(bot.baton.db, run.id)]

    [check] = [s for s in server.requests if reviewer(s)]
    assert "### counter (task count, succeeded)\n41 open tickets" in check.last_user_text
    assert "There are 42 open tickets." in check.last_user_text
    answer = bot.thread(msg)[-1].text
    assert answer.startswith("There are 42 open tickets.")
    assert "*reviewer* found problems with this answer" in answer and problem in answer
    assert "Checked by" not in answer
    assert "answer_disputed" in kinds


async def test_a_sound_answer_says_it_was_checked(
    slack: SlackStandIn, server: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    server.when(reviewer, Reply(structured={"sound": True, "problems": []}))
    async with bot_on(slack, server, sqlite_url, tmp_path, verify=True) as bot:
        msg = await bot.mention("how many tickets are open?")
        await bot.idle()

    answer = bot.thread(msg)[-1].text
    assert answer.startswith("There are 42 open tickets.")
    assert "Checked by *reviewer* against the task results." in answer


async def test_a_reviewer_that_cannot_answer_leaves_the_answer_marked_not_checked(
    slack: SlackStandIn, server: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    server.when(reviewer, Reply(status=400, error_message="bad request"))
    async with bot_on(slack, server, sqlite_url, tmp_path, verify=True) as bot:
        msg = await bot.mention("how many tickets are open?")
        await bot.idle()

    answer = bot.thread(msg)[-1].text
    assert answer.startswith("There are 42 open tickets.")
    assert "Not checked:" in answer and "Checked by" not in answer


async def test_without_verify_no_reviewer_is_asked(
    slack: SlackStandIn, server: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    async with bot_on(slack, server, sqlite_url, tmp_path, verify=False) as bot:
        msg = await bot.mention("how many tickets are open?")
        await bot.idle()

    assert not [s for s in server.requests if reviewer(s)]
    assert bot.thread(msg)[-1].text == "There are 42 open tickets."


def test_verify_without_a_reviewer_is_refused_with_the_entry_named() -> None:
    text = """
agents:
  - {name: counter, description: Counts., verify: true}
playbooks:
  - {name: count, description: Count., verify: true, tasks: [{id: c, agent: counter, instruction: count}]}
"""
    with pytest.raises(CatalogError) as e:
        parse_catalog(text, source="agents.yml", known_tools=set())
    assert str(e.value).splitlines() == [
        "agents.yml: agents (counter): verify: true needs a specialist named 'reviewer'",
        "agents.yml: playbooks (count): verify: true needs a specialist named 'reviewer'",
    ]

"""Runs planned and written by a model (the official SDKs against local model servers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.retry import RetryPolicy
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunStatus, TaskStatus
from testkit.fakes.model_servers import FakeAnthropic, FakeOpenAI, Reply, Seen
from testkit.harness import Bot, running_bot

CATALOG = """
agents:
  - name: counter
    description: Counts things exactly.
    model: openai:gpt-4.1-mini
    tools: [calculator]
  - name: checker
    description: Checks websites.
    model: openai:gpt-4.1-mini
    tools: [http_check]
  - name: writer
    description: Writes the summary.
    model: openai:gpt-4.1-mini
"""

THREE_TASKS = {
    "title": "Count, check, write",
    "tasks": [
        {"id": "count", "agent": "counter", "instruction": "Add 2 and 3", "depends_on": []},
        {"id": "check", "agent": "checker", "instruction": "Check the site", "depends_on": []},
        {
            "id": "write",
            "agent": "writer",
            "instruction": "Summarise both",
            "depends_on": ["count", "check"],
        },
    ],
}
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def planner(seen: Seen) -> bool:
    return "Turn the request into a plan" in seen.system


def synthesis(seen: Seen) -> bool:
    return "Write the final answer" in seen.system


def agent(name: str) -> Any:
    return lambda seen: seen.system.startswith(f"You are {name},")


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "agents.yml"
    path.write_text(CATALOG)
    return path


def bot_with(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path, **limits: Any
) -> Any:
    return running_bot(
        slack,
        sqlite_url,
        limits=Limits(retry=FAST_RETRY, **{"task_timeout": 10, "run_deadline": 20, **limits}),
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        baton_model="openai:gpt-4.1-mini",
        baton_agents_file=catalog_file,
    )


def answer_of(bot: Bot, msg: Any) -> str:
    return bot.thread(msg)[-1].text


async def test_three_tasks_two_in_parallel_end_with_one_answer(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    openai.when(planner, Reply(structured=THREE_TASKS, input_tokens=100, output_tokens=50))
    openai.when(agent("counter"), Reply(text="2 + 3 = 5", delay=0.3))
    openai.when(agent("checker"), Reply(text="the site is up", delay=0.3))
    openai.when(agent("writer"), Reply(text="Five, and the site is up."))
    openai.when(
        synthesis,
        Reply(text="*counter* found 5; *checker* says the site is up; *writer* summarised."),
    )

    async with bot_with(slack, openai, sqlite_url, catalog_file) as bot:
        msg = await bot.mention("count and check and summarise")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")

    counter = next(s for s in openai.requests if agent("counter")(s))
    checker = next(s for s in openai.requests if agent("checker")(s))
    writer = next(s for s in openai.requests if agent("writer")(s))
    assert counter.overlaps(checker), "independent tasks must run at the same time"
    assert writer.received_at >= max(counter.finished_at or 0, checker.finished_at or 0)
    # The writer sees its dependencies' outputs and nothing else of the run.
    assert "2 + 3 = 5" in writer.last_user_text and "the site is up" in writer.last_user_text
    assert "count and check" not in writer.last_user_text
    assert counter.tool_names == ["calculator"] and checker.tool_names == ["http_check"]

    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert run.input_tokens == 100 + 4 * 12 and run.output_tokens == 50 + 4 * 5
    assert run.cost_usd == pytest.approx((148 * 0.4 + 70 * 1.6) / 1_000_000)
    answer = bot.thread(msg)[-1]
    assert "counter* found 5" in answer.text
    footer = answer.blocks[-1]["elements"][0]["text"]
    assert "counter, checker, writer" in footer and "218 tokens" in footer
    stream = bot.thread(msg)[1]
    assert set(stream.tasks) == {"count", "check", "write"}
    assert all(t["status"] == "complete" for t in stream.tasks.values())


async def test_a_model_that_errors_twice_then_answers_is_retried(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    openai.when(
        planner,
        Reply(structured={"tasks": [{"id": "w", "agent": "writer", "instruction": "write"}]}),
    )
    openai.when(synthesis, Reply(text="done"))
    openai.queue(Reply(status=500), Reply(status=429, retry_after=0), Reply(text="written at last"))

    async with bot_with(slack, openai, sqlite_url, catalog_file) as bot:
        msg = await bot.mention("write something")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None
        task = (await runs.list_tasks(bot.baton.db, run.id))[0]
        trail = [
            e.data["detail"]
            for e in await runs.events(bot.baton.db, run.id)
            if e.kind == "task_progress" and e.data
        ]

    assert len([s for s in openai.requests if agent("writer")(s)]) == 3
    assert task.status == TaskStatus.SUCCEEDED and task.output == "written at last"
    assert answer_of(bot, msg) == "done"
    assert [d.split(";")[1].split(" in ")[0].strip() for d in trail if "retry" in d] == [
        "retry 1",
        "retry 2",
    ]
    shown = bot.thread(msg)[1].tasks["w"]["details"]
    assert "retry 2" in shown  # the person sees the retries in the task list


async def test_a_model_that_never_answers_ends_the_run_at_its_deadline(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    openai.when(
        planner,
        Reply(structured={"tasks": [{"id": "w", "agent": "writer", "instruction": "write"}]}),
    )
    openai.when(agent("writer"), Reply(hang=True))

    async with bot_with(slack, openai, sqlite_url, catalog_file, run_deadline=1.0) as bot:
        msg = await bot.mention("write something")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")

    assert run is not None and run.status == RunStatus.FAILED
    answer = answer_of(bot, msg)
    assert "deadline" in answer and "try again" in answer.lower()
    assert "Traceback" not in answer


async def test_a_tool_the_specialist_does_not_have_is_refused_and_the_run_goes_on(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    openai.when(
        planner,
        Reply(structured={"tasks": [{"id": "c", "agent": "counter", "instruction": "count"}]}),
    )
    openai.when(synthesis, Reply(text="final"))
    openai.queue(
        Reply(
            tool_calls=[
                ("post_message", {"channel": "C0RANDOM", "text": "hi"}),
                ("calculator", {"expression": "6*7"}),
            ]
        ),
        Reply(text="6*7 = 42"),
    )

    async with bot_with(slack, openai, sqlite_url, catalog_file) as bot:
        msg = await bot.mention("count")
        await bot.idle()

    second = [s for s in openai.requests if agent("counter")(s)][1]
    tool_messages = [m for m in second.body["messages"] if m["role"] == "tool"]
    assert "not available to you" in tool_messages[0]["content"]
    assert "42" in tool_messages[1]["content"]
    assert slack.messages("C0RANDOM") == []  # nothing was posted elsewhere
    assert answer_of(bot, msg) == "final"


async def test_an_invalid_plan_is_sent_back_once_and_repaired(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    bad = {"tasks": [{"id": "x", "agent": "astrologer", "instruction": "guess"}]}
    good = {"tasks": [{"id": "w", "agent": "writer", "instruction": "write"}]}
    openai.when(synthesis, Reply(text="repaired answer"))
    openai.when(agent("writer"), Reply(text="ok"))
    openai.queue(Reply(structured=bad), Reply(structured=good))

    async with bot_with(slack, openai, sqlite_url, catalog_file) as bot:
        msg = await bot.mention("do it")
        await bot.idle()

    plans = [s for s in openai.requests if planner(s)]
    assert len(plans) == 2
    assert "unknown agent 'astrologer'" in plans[1].body["messages"][-1]["content"]
    assert answer_of(bot, msg) == "repaired answer"


async def test_a_plan_invalid_twice_fails_with_what_was_wrong(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    cyclic = {
        "tasks": [
            {"id": "a", "agent": "writer", "instruction": "a", "depends_on": ["b"]},
            {"id": "b", "agent": "writer", "instruction": "b", "depends_on": ["a"]},
        ]
    }
    openai.when(planner, Reply(structured=cyclic))

    async with bot_with(slack, openai, sqlite_url, catalog_file) as bot:
        msg = await bot.mention("do it")
        await bot.idle()

    assert len([s for s in openai.requests if planner(s)]) == 2
    assert "could not make a valid plan" in answer_of(bot, msg) and "cycle" in answer_of(bot, msg)


async def test_an_answer_longer_than_one_message_is_split_in_order(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 80 for i in range(30)]
    long_answer = "\n\n".join(paragraphs)
    openai.when(
        planner,
        Reply(structured={"tasks": [{"id": "w", "agent": "writer", "instruction": "write"}]}),
    )
    openai.when(agent("writer"), Reply(text="draft"))
    openai.when(synthesis, Reply(text=long_answer))

    async with bot_with(slack, openai, sqlite_url, catalog_file) as bot:
        msg = await bot.mention("write a lot")
        await bot.idle()

    pieces = bot.thread(msg)[2:]
    assert len(pieces) >= 4
    assert all(len(p.text) <= 3000 for p in pieces)
    assert " ".join(" ".join(p.text.split()) for p in pieces) == " ".join(long_answer.split())
    assert pieces[-1].blocks[-1]["type"] == "context" and all(
        p.blocks[-1]["type"] == "section" for p in pieces[:-1]
    )


async def test_a_follow_up_in_the_thread_gives_the_supervisor_the_conversation(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, catalog_file: Path
) -> None:
    openai.when(
        planner,
        Reply(structured={"tasks": [{"id": "w", "agent": "writer", "instruction": "write"}]}),
    )
    openai.when(agent("writer"), Reply(text="ok"))
    openai.queue(Reply(text="The capital is Paris."), Reply(text="About 2.1 million people."))

    async with bot_with(slack, openai, sqlite_url, catalog_file) as bot:
        first = await bot.mention("what is the capital of France?")
        await bot.idle()
        await bot.mention("and how many people live there?", thread_ts=first.ts)
        await bot.idle()

    second_plan = [s for s in openai.requests if planner(s)][1]
    text = second_plan.last_user_text
    assert "Earlier in this conversation" in text and "The capital is Paris." in text
    assert "what is the capital of France?" in text
    assert bot.thread(first)[-1].text == "About 2.1 million people."


async def test_anthropic_plans_and_answers_through_its_messages_api(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG.replace("openai:gpt-4.1-mini", "anthropic:claude-sonnet-4-6"))
    async with FakeAnthropic() as anthropic:
        anthropic.when(
            lambda s: "Turn the request into a plan" in s.system,
            Reply(structured={"tasks": [{"id": "w", "agent": "writer", "instruction": "write"}]}),
        )
        anthropic.when(agent("writer"), Reply(text="drafted"))
        anthropic.when(synthesis, Reply(text="Claude's answer"))
        async with running_bot(
            slack,
            sqlite_url,
            limits=Limits(retry=FAST_RETRY),
            anthropic_api_key="sk-ant-test",
            anthropic_base_url=anthropic.base_url,
            baton_model="anthropic:claude-sonnet-4-6",
            baton_agents_file=catalog,
        ) as bot:
            msg = await bot.mention("write")
            await bot.idle()
        plan_request = anthropic.requests[0].body
    assert plan_request["tool_choice"] == {"type": "tool", "name": "plan"}
    assert answer_of(bot, msg) == "Claude's answer"

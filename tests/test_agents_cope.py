"""Whole runs against model servers that are not OpenAI, fail, or answer badly.

Slack is the stand-in, the models are the fake servers (with a real server's restrictions
where it matters), the database is real; assertions are on the thread and the rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from agents.retry import RetryPolicy
from orchestration.limits import Limits
from orchestration.supervisor import REPAIR_PROSE
from sandbox.web_api import SlackStandIn
from storage import approvals, runs, usage
from storage.models import RunStatus, TaskStatus
from testkit.databases import Site
from testkit.fakes import INVENTED, LLAMA_CPP_PYTHON, FakeOpenAI, Quirks, Reply, Seen
from testkit.harness import Bot, running_bot, wait_until

CATALOG = """
agents:
  - name: checker
    description: Checks websites.
    model: MODEL
    fallbacks: FALLBACKS
    tools: [http_check]
    triggers: ['https?://']
  - name: writer
    description: Writes the summary.
    model: default
    triggers: ['\\bsummari[sz]e\\b']
    runs_after: [checker]
"""
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)


def planner(seen: Seen) -> bool:
    return "Turn the request into a plan" in seen.system


def synthesis(seen: Seen) -> bool:
    return "Write the final answer" in seen.system


def agent(name: str) -> Callable[[Seen], bool]:
    return lambda seen: seen.system.startswith(f"You are {name},")


def first_turn(name: str) -> Callable[[Seen], bool]:
    """The specialist's first model call (no tool result yet)."""
    return lambda seen: (
        agent(name)(seen)
        and not any(m.get("role") == "tool" for m in seen.body.get("messages", []))
    )


def check_then_write(url: str) -> dict[str, Any]:
    return {
        "title": "Check and write",
        "tasks": [
            {"id": "check", "agent": "checker", "instruction": f"Check {url}"},
            {"id": "write", "agent": "writer", "instruction": "Summarise", "depends_on": ["check"]},
        ],
    }


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


def catalog(tmp_path: Path, *, model: str = "default", fallbacks: str = "[]") -> Path:
    path = tmp_path / "agents.yml"
    path.write_text(CATALOG.replace("MODEL", model).replace("FALLBACKS", fallbacks))
    return path


def bot_on(
    slack: SlackStandIn,
    server: FakeOpenAI,
    sqlite_url: str,
    agents_file: Path,
    *,
    limits: Limits | None = None,
    **settings: Any,
) -> Any:
    return running_bot(
        slack,
        sqlite_url,
        limits=limits or Limits(retry=FAST_RETRY, task_timeout=10, run_deadline=30),
        openai_base_url=server.base_url,
        baton_model=settings.pop("baton_model", "openai:local-x"),
        baton_agents_file=agents_file,
        **settings,
    )


def footer_of(bot: Bot, msg: Any) -> str:
    return str(bot.thread(msg)[-1].blocks[-1]["elements"][0]["text"])


async def test_a_llama_cpp_like_server_plans_checks_and_answers_with_no_request_refused(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI(quirks=LLAMA_CPP_PYTHON) as server:
        server.when(planner, Reply(structured=check_then_write(site.url("/ok"))))
        server.when(
            first_turn("checker"), Reply(tool_calls=[("http_check", {"url": site.url("/ok")})])
        )
        server.when(agent("checker"), Reply(text="The site is up (200)."))
        server.when(agent("writer"), Reply(text="All good: the site is up."))
        server.when(synthesis, Reply(text="*checker* found the site up; *writer* summarised."))
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            msg = await bot.mention(f"check {site.url('/ok')} and summarise")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")

    assert {s.status for s in server.requests} == {200}  # nothing it refuses was sent
    plan = next(s for s in server.requests if planner(s))
    # llama-cpp-python holds the answer to a schema given with json_object: only known agents.
    fmt = plan.body["response_format"]
    assert fmt["type"] == "json_object"
    assert fmt["schema"]["properties"]["tasks"]["items"]["properties"]["agent"]["enum"] == [
        "checker",
        "writer",
    ]
    checks = [s for s in server.requests if agent("checker")(s)]
    assert checks[0].body["tool_choice"] == {"type": "function", "function": {"name": "http_check"}}
    assert checks[1].body["messages"][2]["content"] == ""  # the tool-call turn, as a string
    assert site.hits == {"/ok": 1}
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert bot.thread(msg)[-1].text == "*checker* found the site up; *writer* summarised."


async def test_a_specialist_whose_tools_never_reach_the_model_is_unverified_not_done(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI(quirks=LLAMA_CPP_PYTHON) as server:
        server.default = Reply(tool_calls=[("http_check", {"url": site.url("/ok")})])
        async with bot_on(
            slack, server, sqlite_url, catalog(tmp_path), openai_compat="tool_choice=false"
        ) as bot:
            msg = await bot.mention(f"is {site.url('/ok')} up?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            [task] = await runs.list_tasks(bot.baton.db, run.id)

    assert site.hits == {}  # the "answer" came from nowhere
    assert task.status == TaskStatus.UNVERIFIED
    assert run.status == RunStatus.FAILED
    answer = bot.thread(msg)[-1].text
    assert "unverified: answered without calling `http_check`" in answer
    assert INVENTED not in answer
    assert not any(synthesis(s) for s in server.requests)
    stream = next(m for m in bot.thread(msg) if m.tasks)
    assert stream.tasks["checker"]["status"] == "error"  # never a ✓


async def test_one_certain_trigger_match_needs_no_planning_model(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI() as server:
        server.when(
            first_turn("checker"), Reply(tool_calls=[("http_check", {"url": site.url("/ok")})])
        )
        server.when(agent("checker"), Reply(text="up"))
        server.when(planner, Reply(structured=check_then_write(site.url("/ok"))))
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            await bot.mention(f"is {site.url('/ok')} up?")
            await bot.idle()
            certain = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert certain is not None
            routed = [
                e.data
                for e in await runs.events(bot.baton.db, certain.id)
                if e.kind == "plan_routed"
            ]
            await bot.mention(f"check {site.url('/ok')} and summarise it")
            await bot.idle()

    plans = [s for s in server.requests if planner(s)]
    assert routed == [{"by": "triggers"}]
    assert len(plans) == 1  # only the second request, which two specialists match, was planned
    assert "Hint from the catalog's triggers" in plans[0].system
    assert "checker, writer" in plans[0].system


async def test_a_fallback_chain_ending_in_rules_finishes_the_run(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI() as server:
        server.default = Reply(status=503)
        async with bot_on(
            slack, server, sqlite_url, catalog(tmp_path), baton_fallback_models=["rules"]
        ) as bot:
            msg = await bot.mention(f"check {site.url('/ok')} and summarise")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            tasks = {t.task_id: t for t in await runs.list_tasks(bot.baton.db, run.id)}

    assert run.status == RunStatus.SUCCEEDED
    assert {t.model for t in tasks.values()} == {"rules"}
    assert site.hits == {"/ok": 1}
    # Each model call was retried within its budget, then the next model took over.
    assert len(server.requests) == 4 * FAST_RETRY.max_attempts  # plan, check, write, answer
    stream = next(m for m in bot.thread(msg) if m.tasks)
    assert "openai:local-x failed (server error (HTTP 503)); rules takes over" in str(
        stream.tasks["checker"]["details"]
    )
    footer = footer_of(bot, msg)
    assert "model `rules`" in footer and "fallback after `openai:local-x` failed" in footer
    assert "/ok → 200" in bot.thread(msg)[-1].text


async def test_an_agents_own_fallback_answers_after_a_permanent_error_without_retries(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    agents_file = catalog(tmp_path, model="openai:primary", fallbacks="[openai:backup]")
    async with FakeOpenAI() as server:
        server.when(lambda s: s.model == "primary", Reply(status=401))
        server.when(
            lambda s: first_turn("checker")(s) and s.model == "backup",
            Reply(tool_calls=[("http_check", {"url": site.url("/ok")})]),
        )
        server.default = Reply(text="The site is up.")
        async with bot_on(slack, server, sqlite_url, agents_file, openai_api_key="sk-x") as bot:
            await bot.mention(f"is {site.url('/ok')} up?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            [task] = await runs.list_tasks(bot.baton.db, run.id)
            _, status = await bot.slash(f"status {run.id}")
            _, team = await bot.slash("agents")

    assert team is not None
    assert "`openai:primary` → `openai:backup`" in json.dumps(team["blocks"], ensure_ascii=False)
    assert [s.model for s in server.requests if agent("checker")(s)] == [
        "primary",  # 401: not worth a retry
        "backup",
        "backup",
    ]
    assert task.status == TaskStatus.SUCCEEDED and task.model == "openai:backup"
    assert status is not None and "`openai:backup`" in json.dumps(status["blocks"])


async def test_a_refused_request_is_not_retried_and_people_get_one_sentence(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server_text = (
        "1 validation error for CreateChatCompletionRequest\nresponse_format\n  Input should be "
        "a valid dictionary [type=dict_type] File /opt/llama/lib/python3.11/site-packages/app.py"
    )
    async with FakeOpenAI(quirks=LLAMA_CPP_PYTHON) as server:
        server.default = Reply(status=500, error_message=server_text)
        async with bot_on(
            slack, server, sqlite_url, catalog(tmp_path), openai_compat="llama-cpp-python"
        ) as bot:
            with caplog.at_level(logging.WARNING):
                msg = await bot.mention("write me a haiku about deploys")
                await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")

    assert len(server.requests) == 1
    answer = bot.thread(msg)[-1].text
    host = server.base_url.split("/")[2]
    assert answer == (
        f":warning: I could not plan this: The OpenAI-compatible server at {host} refused "
        "Baton's request (HTTP 500); it may not support something Baton asked for — set "
        "OPENAI_COMPAT (see the README) or choose another model."
    )
    thread = " ".join(m.text for m in bot.thread(msg))
    assert "validation" not in thread and "site-packages" not in thread
    assert run is not None
    logged = [
        r for r in caplog.records if r.levelno == logging.WARNING and run.id in r.getMessage()
    ]
    assert logged and "site-packages/app.py" in logged[0].getMessage()


async def test_a_plan_written_as_prose_is_sent_back_once_and_repaired(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with FakeOpenAI(quirks=LLAMA_CPP_PYTHON) as server:
        plan = {"tasks": [{"id": "w", "agent": "writer", "instruction": "write"}]}
        server.queue(Reply(text="First I will ask the writer to write."), Reply(structured=plan))
        server.when(agent("writer"), Reply(text="a haiku"))
        server.when(synthesis, Reply(text="Here is your haiku."))
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            msg = await bot.mention("write me a haiku")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            spent = await usage.calls(bot.baton.db, run.id)

    plans = server.requests[:2]
    assert all(planner(s) for s in plans)
    assert plans[1].body["messages"][-1] == {"role": "user", "content": REPAIR_PROSE}
    assert bot.thread(msg)[-1].text == "Here is your haiku."
    # The unusable first reply was paid for, so it is counted: both plans, the writer, and
    # the streamed answer (this server reports no usage in a stream: an estimate).
    assert [c.input_tokens + c.output_tokens for c in spent[:3]] == [17, 17, 17]
    assert len(spent) == 4 and f"{run.input_tokens + run.output_tokens:,} tokens" in footer_of(
        bot, msg
    )


async def test_a_planner_that_never_writes_json_falls_back_to_the_triggers(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI(quirks=LLAMA_CPP_PYTHON) as server:
        server.when(planner, Reply(text="Sure, let me think about that."))
        server.when(
            first_turn("checker"), Reply(tool_calls=[("http_check", {"url": site.url("/ok")})])
        )
        server.default = Reply(text="done")
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            await bot.mention(f"check {site.url('/ok')} and summarise")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            tasks = await runs.list_tasks(bot.baton.db, run.id)

    assert len([s for s in server.requests if planner(s)]) == 2  # the reply, and one repair
    assert run.plan is not None and run.plan["title"].endswith("(planned by triggers)")
    assert [t.agent for t in tasks] == ["checker", "writer"] and site.hits == {"/ok": 1}


async def test_when_every_task_fails_the_answer_is_batons_reasons_not_a_summary(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=check_then_write(site.url("/ok"))))
        server.when(agent("checker"), Reply(status=503))
        server.when(synthesis, Reply(text="Everything went great!"))
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            msg = await bot.mention(f"check {site.url('/ok')} and summarise")
            await bot.idle()

    host = server.base_url.split("/")[2]
    assert not any(synthesis(s) for s in server.requests)
    assert bot.thread(msg)[-1].text == (
        ":warning: *writer* (skipped)\nskipped: needs check, which did not succeed\n\n"
        f"*checker* (failed)\nThe OpenAI-compatible server at {host} had a temporary problem "
        "(HTTP 503, 3 attempts); try again in a minute."
    )


async def test_a_partial_answer_keeps_batons_reasons_under_the_models_summary(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    plan = {
        "tasks": [
            {"id": "a", "agent": "checker", "instruction": f"Check {site.url('/ok')}"},
            {"id": "b", "agent": "writer", "instruction": "Write a line"},
        ]
    }
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=plan))
        server.when(agent("checker"), Reply(text="It is surely up."))  # never calls its tool
        server.when(agent("writer"), Reply(text="A line."))
        server.when(synthesis, Reply(text="The site is up and here is a line."))
        async with bot_on(
            slack, server, sqlite_url, catalog(tmp_path), openai_compat="tool_choice=false"
        ) as bot:
            msg = await bot.mention(f"check {site.url('/ok')} and summarise it in a line")
            await bot.idle()

    synth = next(s for s in server.requests if synthesis(s))
    assert "(task a, unverified)" in synth.last_user_text  # the model is told each status
    assert bot.thread(msg)[-1].text == (
        "The site is up and here is a line.\n\n"
        "❔ *checker* (`a`) unverified: answered without calling `http_check`, "
        "so nothing it says was checked"
    )
    assert "done, with problems" in footer_of(bot, msg)


async def test_unpriced_models_are_named_and_costs_roll_up_per_agent_and_model(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=check_then_write(site.url("/ok"))))
        server.when(
            first_turn("checker"), Reply(tool_calls=[("http_check", {"url": site.url("/ok")})])
        )
        server.default = Reply(text="fine", input_tokens=100, output_tokens=10)

        def titles() -> list[str]:
            return [
                c["title"]
                for call in slack.calls_to("chat.startStream") + slack.calls_to("chat.appendStream")
                for c in call.args.get("chunks") or []
                if c.get("type") == "plan_update"
            ]

        def estimated() -> bool:
            return any(
                "estimated ≈" in t and "price unknown for openai:local-x" in t for t in titles()
            )

        # The check is held until the list has shown the plan: a run that ended within one
        # edit interval would show only its final title, which has no estimate.
        site.gate = gate = asyncio.Event()
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            msg = await bot.mention(f"check {site.url('/ok')} and summarise")
            try:
                await wait_until(estimated)
            finally:
                gate.set()
                site.gate = None
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            _, status = await bot.slash(f"status {run.id}")

    footer = footer_of(bot, msg)
    assert "model `openai:local-x`" in footer and "price unknown for `openai:local-x`" in footer
    assert estimated()
    assert status is not None
    shown = json.dumps(status["blocks"], ensure_ascii=False)
    assert "*Cost by agent*" in shown and "*Cost by model*" in shown
    assert "• *supervisor* · 2 calls · 127 tokens · price unknown" in shown
    assert "• *checker* · 2 calls · 127 tokens · price unknown" in shown
    assert "• `openai:local-x` · 5 calls · 364 tokens · price unknown" in shown
    assert "Total: 364 tokens · $0.0000 · price unknown for `openai:local-x`" in shown


async def test_a_token_budget_asks_before_going_on(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=check_then_write(site.url("/ok")), output_tokens=40))
        async with bot_on(
            slack,
            server,
            sqlite_url,
            catalog(tmp_path),
            limits=Limits(retry=FAST_RETRY, budget_tokens=50),
        ) as bot:
            await bot.mention(f"check {site.url('/ok')} and summarise")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            [approval] = await approvals.for_run(bot.baton.db, run.id)

    assert run.status == RunStatus.WAITING and site.hits == {}
    assert approval.kind == "budget" and approval.extra_budget_tokens == 50
    assert approval.summary == (
        "This run has used 52 tokens of its 50-token budget. Continue for up to 50 more?"
    )


async def test_quirks_of_the_fake_match_what_baton_is_told_about_them() -> None:
    # The fake refuses what it says it refuses: a guard on the tests above.
    async with FakeOpenAI(quirks=Quirks(json_schema=False)) as server:
        client = openai.AsyncOpenAI(api_key="x", base_url=server.base_url, max_retries=0)
        with pytest.raises(openai.InternalServerError, match="validation error"):
            await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            )
        await client.close()


async def test_an_answer_cut_off_at_the_limit_goes_to_the_next_model_and_still_counts(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    agents_file = catalog(tmp_path, model="openai:primary", fallbacks="[openai:backup]")
    async with FakeOpenAI() as server:
        server.when(
            lambda s: first_turn("checker")(s),
            Reply(tool_calls=[("http_check", {"url": site.url("/ok")})]),
        )
        server.when(
            lambda s: agent("checker")(s) and s.model == "primary",
            Reply(text="The site is", cut_off=True, output_tokens=40),
        )
        server.default = Reply(text="The site is up.")
        async with bot_on(slack, server, sqlite_url, agents_file, openai_api_key="sk-x") as bot:
            await bot.mention(f"is {site.url('/ok')} up?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            [task] = await runs.list_tasks(bot.baton.db, run.id)

    assert (task.output, task.model) == ("The site is up.", "openai:backup")
    assert task.output_tokens == 5 + 40 + 5  # the call, the cut-off answer, the whole one


async def test_a_server_without_a_working_auto_is_asked_for_each_call_the_task_names(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    ok, status = site.url("/ok"), site.url("/status")
    async with FakeOpenAI(quirks=LLAMA_CPP_PYTHON) as server:
        # The model checks only one of the two pages at first.
        server.when(
            planner,
            Reply(
                structured={
                    "title": "Check",
                    "tasks": [
                        {
                            "id": "check",
                            "agent": "checker",
                            "instruction": f"Check {ok} and {status}",
                        }
                    ],
                }
            ),
        )
        server.queue(
            Reply(tool_calls=[("http_check", {"url": ok})]),
            Reply(tool_calls=[("http_check", {"url": status})]),
            Reply(text="Both are up."),
        )
        server.when(synthesis, Reply(text="Both pages are up."))
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            await bot.mention(f"are {ok} and {status} up?")
            await bot.idle()

    first, second, third = [s for s in server.requests if agent("checker")(s)]

    def url_enum(seen: Seen) -> Any:
        return seen.body["tools"][0]["function"]["parameters"]["properties"]["url"].get("enum")

    named = {"type": "function", "function": {"name": "http_check"}}
    assert (first.body["tool_choice"], url_enum(first)) == (named, [ok, status])
    assert (second.body["tool_choice"], url_enum(second)) == (named, [status])
    assert "tools" not in third.body and "tool_choice" not in third.body
    assert site.hits == {"/ok": 1, "/status": 1}


async def test_a_server_with_a_working_auto_chooses_its_calls_and_is_not_forced(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    ok, status = site.url("/ok"), site.url("/status")
    async with FakeOpenAI() as server:
        server.queue(
            Reply(tool_calls=[("http_check", {"url": ok})]),
            Reply(tool_calls=[("http_check", {"url": status})]),
            Reply(text="Both are up."),
        )
        server.when(synthesis, Reply(text="Both pages are up."))
        async with bot_on(slack, server, sqlite_url, catalog(tmp_path)) as bot:
            msg = await bot.mention(f"are {ok} and {status} up?")
            await bot.idle()

    calls = [s for s in server.requests if agent("checker")(s)]
    assert [s.body["tool_choice"] for s in calls] == ["auto", "auto", "auto"]
    sent = [s.body["tools"][0]["function"]["parameters"]["properties"]["url"] for s in calls]
    assert all("enum" not in url for url in sent)  # the model's own choice, not held
    assert site.hits == {"/ok": 1, "/status": 1}
    assert bot.thread(msg)[-1].text == "Both pages are up."

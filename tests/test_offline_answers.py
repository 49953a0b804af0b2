"""What a newcomer sees first: the offline `rules` model's arithmetic and answers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from agents.errors import ToolError
from agents.messages import CallOutcome, Message
from agents.providers.rules import condense, report
from agents.runner import first_prompt
from agents.tools.calculator import Calculator, evaluate, format_number
from sandbox.web_api import SlackStandIn
from storage import Database, runs
from storage.models import RunStatus
from testkit.harness import running_bot
from testkit.sinks import RecordingSink
from tests.test_orchestration_offline import offline, start

# --- arithmetic ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expressions", "values"),
    [
        ("17% of 2340 plus 12.5", ["17% of 2340 plus 12.5"], ["410.3"]),
        ("what is 3 times 4 divided by 2?", ["3 times 4 divided by 2"], ["6"]),
        ("12 multiplied by 3 minus 1", ["12 multiplied by 3 minus 1"], ["35"]),
        ("what is 2 plus 2 and 3 minus 1", ["2 plus 2", "3 minus 1"], ["4", "2"]),
        (
            "How much is (120 + 80) * 1.2, and 15% of 80?",
            ["(120 + 80) * 1.2", "15% of 80"],
            ["240", "12"],
        ),
        ("in 2024 we had 3 outages", [], []),
        ("is 5 - the answer?", [], []),
    ],
)
def test_the_calculator_reads_whole_expressions_from_a_sentence(
    text: str, expressions: list[str], values: list[str]
) -> None:
    found = [a.model_dump()["expression"] for a in Calculator().args_from_text(text)]

    assert found == expressions
    assert [format_number(evaluate(e)) for e in found] == values


@pytest.mark.parametrize(
    ("text", "expression", "unread"),
    [
        ("what is 17% of 2340 plus twelve?", "17% of 2340 plus twelve", "'twelve'"),
        ("compute 5 + 3 + the tip", "5 + 3 + the tip", "'the'"),
        (
            "calculate 100 divided by 4 times",
            "100 divided by 4 times",
            "not an arithmetic expression",
        ),
    ],
)
def test_an_expression_that_stops_half_way_is_reported_not_cut_short(
    text: str, expression: str, unread: str
) -> None:
    [args] = Calculator().args_from_text(text)

    assert args.model_dump()["expression"] == expression
    with pytest.raises(ToolError, match=unread):
        evaluate(expression)


# --- the wording of results -------------------------------------------------------------


def result(line: str, outcome: CallOutcome, tool: str = "http_check") -> Message:
    return Message(role="tool", name=tool, tool_call_id="c", content=line, outcome=outcome)


OK, PROBLEM, ERROR = CallOutcome.OK, CallOutcome.PROBLEM, CallOutcome.ERROR


@pytest.mark.parametrize(
    ("results", "text"),
    [
        ([result("a → 200", OK)], "• a → 200\n✅ The check looks fine."),
        (
            [result("a → 200", OK), result("b → 200", OK)],
            "• a → 200\n• b → 200\n✅ Both checks look fine.",
        ),
        (
            [result("a → 200", OK), result("b → 200", OK), result("c → 200", OK)],
            "• a → 200\n• b → 200\n• c → 200\n✅ All 3 checks look fine.",
        ),
        ([result("a → 503", PROBLEM)], "❌ a → 503\n⚠️ The check has a problem."),
        (
            # A healthy page whose address says "down" or "error" is not a problem.
            [
                result("https://x/down-detector → 200", OK),
                result("https://x/errors → 200", OK),
                result("https://x/pay → 503", PROBLEM),
            ],
            "• https://x/down-detector → 200\n• https://x/errors → 200\n❌ https://x/pay → 503\n"
            "⚠️ 1 of 3 checks has a problem.",
        ),
        (
            [result("a → 503", PROBLEM), result("Error: b: timed out", ERROR)],
            "❌ a → 503\n❌ b: timed out\n⚠️ Both checks have a problem.",
        ),
        ([result("2 + 2 = 4", OK, "calculator")], "• 2 + 2 = 4"),
        (
            [result("2 + 2 = 4", OK, "calculator"), result("Error: '2 +' …", ERROR, "calculator")],
            "• 2 + 2 = 4\n❌ '2 +' …\n⚠️ 1 of 2 calculations has a problem.",
        ),
    ],
    ids=["one", "two", "three", "one-bad", "words-in-urls", "all-bad", "sum", "sum-and-error"],
)
def test_tool_results_are_listed_once_and_counted_in_english(
    results: list[Message], text: str
) -> None:
    assert report(results) == text


def test_a_summary_of_one_specialist_keeps_its_count_and_puts_problems_first() -> None:
    checked = "• a → 200\n❌ b → 503\n⚠️ 1 of 2 checks has a problem."
    prompt = first_prompt("Write a digest.", {"check (web-checker)": checked})

    assert condense(prompt) == (
        "⚠️ 1 of 2 checks has a problem.\n\n*check (web-checker)*\n❌ b → 503\n• a → 200"
    )


def test_a_summary_of_several_inputs_counts_their_results() -> None:
    prompt = first_prompt(
        "Summarise.",
        {
            "web-checker (web-checker)": "• a → 200\n✅ The check looks fine.",
            "m (metrics)": "q = 3",
        },
    )

    assert condense(prompt).splitlines()[:4] == [
        "✅ Both results look fine.",
        "",
        "*web-checker*",
        "• a → 200",
    ]


# --- whole offline runs ------------------------------------------------------------------


@pytest.fixture
async def pages() -> AsyncIterator[str]:
    """Pages whose addresses contain words that sound bad, though they are fine."""

    async def fine(_: web.Request) -> web.Response:
        return web.Response(text="fine")

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=503, text="broken")

    app = web.Application()
    app.router.add_get("/down-detector", fine)
    app.router.add_get("/errors", fine)
    app.router.add_get("/payments", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def steady(text: str) -> str:
    return re.sub(r"\d+ ms", "N ms", text)


async def test_an_offline_check_and_summary_lists_each_result_once(
    db: Database, pages: str
) -> None:
    run_id = await start(
        db,
        f"check {pages}/down-detector, {pages}/errors and {pages}/payments and summarise",
    )

    await offline(db, RecordingSink()).execute(run_id)

    run = await runs.get_run(db, run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert steady(run.answer or "") == (
        "**writer**\n"
        "⚠️ 1 of 3 checks has a problem.\n\n"
        "*web-checker*\n"
        f"❌ {pages}/payments → 503 in N ms, failed (expected 2xx/3xx)\n"
        f"• {pages}/down-detector → 200 in N ms\n"
        f"• {pages}/errors → 200 in N ms"
    )


@pytest.mark.parametrize(
    ("request_text", "status", "answer"),
    [
        (
            "17% of 2340 plus 12.5",
            RunStatus.SUCCEEDED,
            "**calculator**\n• 17% of 2340 plus 12.5 = 410.3",
        ),
        (
            "what is 17% of 2340 plus twelve?",
            RunStatus.FAILED,
            "**calculator** (failed)\n`calculator` failed: 'twelve' is not allowed: write numbers "
            "in digits; the only names I know are abs, round, min, max, sqrt, floor, ceil, log, "
            "log10, exp, pi, e",
        ),
    ],
)
async def test_offline_arithmetic_answers_the_whole_sum_or_says_what_it_could_not_read(
    db: Database, request_text: str, status: RunStatus, answer: str
) -> None:
    run_id = await start(db, request_text)

    await offline(db, RecordingSink()).execute(run_id)

    run = await runs.get_run(db, run_id)
    assert run is not None and (run.status, run.answer) == (status, answer)


async def test_mentioning_run_with_an_unknown_playbook_names_the_playbooks(
    sqlite_url: str,
) -> None:
    async with SlackStandIn() as slack, running_bot(slack, sqlite_url) as bot:
        asked = await bot.mention("run nosuchplaybook now")
        await bot.idle()
        _, slash = await bot.slash("run nosuchplaybook")
        made = await runs.count_runs(bot.baton.db)

    [reply] = bot.thread(asked)[1:]
    assert slash is not None and reply.text == slash["text"]
    assert reply.text.startswith("There is no playbook called `nosuchplaybook`. Playbooks: ")
    assert "`status-check`" in reply.text and made == 0

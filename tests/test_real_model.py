"""Baton against a real OpenAI-compatible server: llama-cpp-python with SmolLM2-135M.

A 135M model plans and writes poorly; these tests assert what Baton does with whatever
comes back — requests the server accepts, statuses that follow what happened, answers
that say what failed, fallbacks — never the quality of the model's reasoning. Answers are
kept short (`max_output_tokens`) and repeatable (`temperature=0`) through OPENAI_COMPAT.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from agents.messages import Message, ModelRequest
from agents.providers.capabilities import parse_compat
from agents.providers.openai_provider import OpenAIProvider
from agents.retry import RetryPolicy
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message as SlackMessage
from storage import runs
from storage.models import Event, Run, RunStatus, TaskRow, TaskStatus
from testkit.harness import running_bot
from testkit.real_model import CATALOG, COMPAT, RealServer, missing, serving

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUICK_RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2)


@pytest.fixture(scope="module")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with serving(tmp_path_factory.mktemp("llama")) as server:
        yield server


@dataclass
class Page:
    url: str
    hits: dict[str, int]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page() -> AsyncIterator[Page]:
    hits: dict[str, int] = {}

    async def ok(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        return web.Response(text="All systems operational")

    app = web.Application()
    app.router.add_get("/ok", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield Page(f"http://127.0.0.1:{runner.addresses[0][1]}/ok", hits)
    await runner.cleanup()


@dataclass
class Outcome:
    """One request through Slack to a finished (or failed) run, and what the server saw."""

    run: Run
    tasks: list[TaskRow]
    events: list[Event]
    thread: list[SlackMessage]
    statuses: list[int]  # of the chat completions the server answered during the run

    @property
    def answer(self) -> str:
        return self.thread[-1].text

    def routed(self) -> str:
        return next(str((e.data or {})["by"]) for e in self.events if e.kind == "plan_routed")


async def ask(
    server: RealServer, tmp_path: Path, text: str, *, compat: str = COMPAT, **settings: Any
) -> Outcome:
    agents = tmp_path / "agents.yml"
    agents.write_text(CATALOG)
    mark = server.mark()
    async with (
        SlackStandIn() as slack,
        running_bot(
            slack,
            f"sqlite:///{tmp_path}/baton.db",
            limits=Limits(retry=QUICK_RETRY, task_timeout=120, run_deadline=240),
            openai_base_url=server.base_url,
            baton_model=f"openai:{server.model}",
            baton_agents_file=agents,
            openai_compat=compat,
            **settings,
        ) as bot,
    ):
        asked = await bot.mention(text)
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None
        return Outcome(
            run=run,
            tasks=await runs.list_tasks(bot.baton.db, run.id),
            events=await runs.events(bot.baton.db, run.id),
            thread=bot.thread(asked),
            statuses=server.chat_statuses(since=mark),
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def free_form(
    real_model: RealServer, page: Page, tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    """Two specialists match, so the model plans (or, failing that, the triggers do)."""
    return await ask(
        real_model, tmp_path_factory.mktemp("free"), f"check {page.url} and summarise it"
    )


async def test_the_real_server_accepts_every_request_shape_baton_sends(
    free_form: Outcome, real_model: RealServer
) -> None:
    # Planning (json_object with the plan's schema), a named tool call, its result handed
    # back, answers: none refused. A streamed answer too, which runs do not use yet.
    assert free_form.statuses and set(free_form.statuses) == {200}
    provider = OpenAIProvider(api_key="", base_url=real_model.base_url, compat=parse_compat(COMPAT))
    mark = real_model.mark()
    pieces: list[str] = []

    async def sink(text: str) -> None:
        pieces.append(text)

    try:
        streamed = await provider.complete(
            ModelRequest(
                model=real_model.model,
                system="Answer in one word.",
                messages=[Message(role="user", content="Is the sky blue?")],
                max_tokens=4,
            ),
            on_text=sink,
        )
    finally:
        await provider.aclose()
    assert real_model.chat_statuses(since=mark) == [200]
    assert "".join(pieces) == streamed.text
    # The server sends no usage when streaming: Baton counts about four characters a token.
    assert streamed.usage.input_tokens > 0


async def test_a_free_form_request_plans_or_falls_back_and_ends_with_an_honest_answer(
    free_form: Outcome, page: Page
) -> None:
    assert free_form.routed() in ("model", "triggers after the model failed")
    assert free_form.run.status.is_final and free_form.thread[-1].user == "U0BATON"
    assert "Traceback" not in free_form.answer and "site-packages" not in free_form.answer
    for task in free_form.tasks:
        assert task.status.is_final, task
        if task.status == TaskStatus.SUCCEEDED:
            continue
        # Whatever did not succeed is named in the answer, with Baton's reason.
        assert task.error
        reason = task.error.splitlines()[0].removeprefix(f"{task.status.value}:").strip()
        assert reason[:60] in free_form.answer
    checks = [e.data for e in free_form.events if e.kind == "tool_result" and e.data is not None]
    for task in free_form.tasks:
        if task.agent == "checker" and task.status == TaskStatus.SUCCEEDED:
            assert checks, "a check shown as done must have been made"
    if not any(t.status == TaskStatus.SUCCEEDED for t in free_form.tasks):
        assert free_form.run.status == RunStatus.FAILED


async def test_a_specialist_calls_http_check_against_a_local_endpoint(
    real_model: RealServer, page: Page, tmp_path: Path
) -> None:
    before = page.hits.get("/ok", 0)

    outcome = await ask(real_model, tmp_path, f"is {page.url} up?")

    assert outcome.routed() == "triggers"  # one certain match: no planning call
    [task] = outcome.tasks
    calls = [e.data for e in outcome.events if e.kind == "tool_result" and e.data]
    assert [c["tool"] for c in calls] == ["http_check"]
    assert calls[0]["data"]["url"] == page.url and page.hits["/ok"] == before + 1
    assert task.status == TaskStatus.SUCCEEDED and task.model == f"openai:{real_model.model}"
    assert set(outcome.statuses) == {200}


async def test_a_permanent_error_is_not_retried(real_model: RealServer, tmp_path: Path) -> None:
    # Told the server takes json_schema (it does not), Baton sends it; the refusal is a
    # validation error that no retry can change.
    outcome = await ask(
        real_model, tmp_path, "write me a haiku about deploys", compat=f"{COMPAT},json_schema=true"
    )

    assert outcome.statuses == [500]
    assert outcome.run.status == RunStatus.FAILED
    assert outcome.answer.startswith(
        ":warning: I could not plan this: The OpenAI-compatible server"
    )
    assert "refused Baton's request (HTTP 500)" in outcome.answer
    assert "validation" not in outcome.answer


async def test_a_fallback_chain_ending_in_rules_finishes_the_run(
    page: Page, tmp_path: Path
) -> None:
    # A second server whose context is too small for Baton's requests: it refuses each one
    # (mostly HTTP 400, before thinking), and `rules` takes over everywhere.
    before = page.hits.get("/ok", 0)
    with serving(tmp_path, n_ctx=64) as cramped:
        outcome = await ask(
            cramped, tmp_path, f"check {page.url} and summarise it", baton_fallback_models=["rules"]
        )

    assert outcome.run.status == RunStatus.SUCCEEDED
    # Every request is refused: with a status, or — for the answer, which streams — inside a
    # stream the server had already begun with 200 (so nothing of the model's reaches the
    # footer below, which names `rules` alone).
    assert [status for status in outcome.statuses if status >= 400]
    assert {t.model for t in outcome.tasks} == {"rules"}
    assert page.hits["/ok"] == before + 1
    footer = json.dumps(outcome.thread[-1].blocks[-1])
    assert "model `rules`" in footer and f"fallback after `openai:{cramped.model}` failed" in footer


async def test_a_missing_model_file_fails_with_what_to_run(tmp_path: Path) -> None:
    assert missing() is None  # everything is installed here (make test saw to it)
    assert missing(tmp_path / "nowhere.gguf") == (
        f"The real-model tests need the model file {tmp_path / 'nowhere.gguf'}: "
        "run `make real-model`."
    )

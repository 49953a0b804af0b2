"""The answer streams into the thread as the model writes it, and still arrives once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.transports import resume_interrupted
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunStatus
from testkit.databases import Site
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.harness import running_bot
from tests.trust_helpers import answers

CATALOG = """
agents:
  - name: web-checker
    description: Checks HTTP endpoints.
    model: rules
    tools: [http_check]
playbooks:
  - name: check
    description: Check the endpoints given after the name.
    tasks:
      - {id: check, agent: web-checker, instruction: Check the endpoints in the request.}
"""
ANSWER = "The shop is up: the health page answered 200 and nothing else needs a look today."


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def markdown_streamed(slack: SlackStandIn) -> list[str]:
    """The answer's text as it went to Slack: the stream's first chunk, each append, and the
    rest with the stop."""
    sent: list[str] = []
    for call in slack.calls:
        if call.method not in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
            continue
        sent += [
            str(chunk.get("text"))
            for chunk in call.args.get("chunks") or []
            if chunk.get("type") == "markdown_text"
        ]
        if call.method == "chat.stopStream" and call.args.get("markdown_text"):
            sent.append(str(call.args["markdown_text"]))
    return sent


async def test_the_answer_streams_after_the_task_list_and_is_posted_once(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    openai.default = Reply(text=ANSWER)
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG)
    async with running_bot(
        slack,
        sqlite_url,
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        baton_model="openai:gpt-4.1-mini",
        baton_agents_file=catalog,
    ) as bot:
        await bot.mention(f"run check {site.url('/ok')}")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.SUCCEEDED
    [synthesis] = openai.requests
    assert synthesis.stream  # the providers' streaming API, not one blocking call

    # Every piece the model wrote reached the thread, in order, in fewer calls than pieces.
    task_list, start = slack.calls_to("chat.startStream")  # the task list's, then the answer's
    assert task_list.response["ts"] == run.status_message_ts
    streamed = markdown_streamed(slack)
    assert "".join(streamed) == ANSWER
    assert 1 <= len(streamed) < len(ANSWER.split())

    # The message it streamed into became the answer: one message, with feedback and footer.
    assert run.answer_preview_ts == start.response["ts"]
    [answer] = [m for m in slack.messages("C0GENERAL") if "nothing else needs a look" in m.text]
    assert answer.ts == run.answer_preview_ts and not answer.streaming
    assert answer in answers(slack, run.id)
    assert [b["type"] for b in answer.blocks] == ["section", "context_actions", "context"]

    # The task card names the page the check read.
    [stop] = [c for c in slack.calls_to("chat.stopStream") if c.args["ts"] == run.status_message_ts]
    cards = [c for c in stop.args["chunks"] if c.get("type") == "task_update"]
    assert [s["url"] for s in cards[0]["sources"]] == [site.url("/ok")]


async def test_a_restart_mid_stream_neither_loses_nor_doubles_the_answer(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    openai.default = Reply(text="Half of an answer that never ends", hang_after_events=4)
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG)
    settings = {
        "openai_api_key": "sk-test",
        "openai_base_url": openai.base_url,
        "baton_model": "openai:gpt-4.1-mini",
        "baton_agents_file": catalog,
    }
    async with running_bot(slack, sqlite_url, **settings) as bot:
        await bot.mention(f"run check {site.url('/ok')}")
        # The answer has started to stream into its own message when the process stops.
        await slack.wait_for(lambda: len(slack.calls_to("chat.startStream")) == 2, timeout=20)
        # ...and Baton has noted where (Slack's answer to that call, stored right after it).
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        for _ in range(400):
            if run is not None and run.answer_preview_ts is not None:
                break
            await asyncio.sleep(0.05)
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        await bot.baton.background.cancel_all()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and not run.status.is_final
    preview_ts = run.answer_preview_ts
    assert preview_ts is not None
    assert "Half of" in "".join(markdown_streamed(slack))

    openai.default = Reply(text=ANSWER)
    async with running_bot(slack, sqlite_url, **settings) as second:
        await resume_interrupted(second.baton)
        await second.idle()
        finished = await runs.get_run(second.baton.db, run.id)
    assert finished is not None and finished.status == RunStatus.SUCCEEDED
    # One answer, in the message the first process streamed into; the half answer is gone.
    [answer] = answers(slack, run.id)
    assert answer.ts == preview_ts and ANSWER in answer.text
    assert not [m for m in slack.messages("C0GENERAL") if "Half of" in m.text]

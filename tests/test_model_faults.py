"""A model server that misbehaves: every run still ends with a sentence a person can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.retry import RetryPolicy
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunStatus, TaskStatus
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.harness import running_bot
from tests.trust_helpers import answers, model_settings, write_catalog

FAULTS = {
    "an HTML page with status 200": Reply(
        raw_body="<html>Bad gateway</html>", raw_content_type="text/html"
    ),
    "broken JSON with status 200": Reply(raw_body='{"choices": [{"mess'),
    "HTTP 500": Reply(status=500),
    "HTTP 429": Reply(status=429, retry_after=0),
}
QUICK_RETRIES = Limits(retry=RetryPolicy(max_attempts=2, base_delay=0.01, jitter=False))


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_planner_that_answers_nonsense_ends_the_run_with_a_sentence(
    sqlite_url: str, tmp_path: Path, fault: str
) -> None:
    async with SlackStandIn() as slack, FakeOpenAI() as openai:
        openai.default = FAULTS[fault]
        settings = {**model_settings(openai.base_url), "baton_model": "openai:gpt-4.1-mini"}
        async with running_bot(
            slack,
            sqlite_url,
            baton_agents_file=write_catalog(tmp_path),
            limits=QUICK_RETRIES,
            **settings,
        ) as bot:
            await bot.mention("what changed in the shop yesterday?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.FAILED
    [answer] = answers(slack, run.id)
    # One sentence naming the server and what to do: never the server's own text.
    assert answer.text.startswith(":warning: I could not plan this: The OpenAI-compatible server")
    assert "try again in a minute" in answer.text
    assert "Something went wrong inside Baton" not in answer.text and "<html>" not in answer.text


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_specialist_whose_model_answers_nonsense_fails_its_step_with_the_reason(
    sqlite_url: str, tmp_path: Path, fault: str
) -> None:
    async with SlackStandIn() as slack, FakeOpenAI() as openai:
        openai.default = FAULTS[fault]
        async with running_bot(
            slack,
            sqlite_url,
            baton_agents_file=write_catalog(tmp_path),
            limits=QUICK_RETRIES,
            **model_settings(openai.base_url),
        ) as bot:
            await bot.mention("run think")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            [task] = await runs.list_tasks(bot.baton.db, run.id)
    assert run.status == RunStatus.FAILED and task.status == TaskStatus.FAILED
    error = task.error or ""
    assert error.startswith("The OpenAI-compatible server at 127.0.0.1:")
    assert "2 attempts); try again in a minute." in error
    [answer] = answers(slack, run.id)
    assert error in answer.text and "internal error" not in answer.text

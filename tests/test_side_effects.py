"""A side effect is keyed by what it does, not by the id a model gave the call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import approval_blocks as ui
from sandbox.web_api import SlackStandIn
from storage import approvals, runs, tool_calls
from storage.models import ApprovalStatus, RunStatus
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.fakes.webhook_receiver import WebhookReceiver
from testkit.harness import Bot, running_bot
from tests.trust_helpers import approval_requests, approval_value, model_settings

CATALOG = """
agents:
  - name: releaser
    description: Calls the deploys webhook as often as the task needs.
    model: 'openai:gpt-4.1-mini'
    tools: [webhook_post]
playbooks:
  - name: release
    description: Two webhook calls.
    tasks:
      - {id: release, agent: releaser, instruction: release both}
webhooks:
  deploys: WEBHOOK
approvals:
  approvers: [U0ALICE]
"""


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


def call(payload: dict[str, int]) -> Reply:
    # The same call id every turn, as some OpenAI-compatible servers do.
    return Reply(
        tool_calls=[("webhook_post", {"name": "deploys", "payload": payload})],
        tool_call_ids=["call_0"],
    )


async def approve_each(bot: Bot, slack: SlackStandIn, count: int) -> None:
    """Approve the gates one by one, as they come; exactly `count` of them."""
    seen: set[str] = set()
    for _ in range(count):
        gate = await slack.wait_for(
            lambda: next((m for m in approval_requests(slack) if m.ts not in seen), None),
            timeout=20,
        )
        seen.add(gate.ts)
        await bot.click(ui.APPROVE, approval_value(gate), user="U0ALICE", message=gate)
        await bot.idle()


@pytest.mark.parametrize(
    "second",
    [{"v": 2}, {"v": 1}],
    ids=["a different call under the same id", "the same call made again on purpose"],
)
async def test_a_model_reusing_call_ids_gets_each_call_approved_and_made_once(
    sqlite_url: str, tmp_path: Path, hook: WebhookReceiver, second: dict[str, int]
) -> None:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG.replace("WEBHOOK", hook.url))
    async with SlackStandIn() as slack, FakeOpenAI() as openai:
        openai.queue(call({"v": 1}), call(second), Reply(text="both released"))
        async with running_bot(
            slack, sqlite_url, baton_agents_file=catalog, **model_settings(openai.base_url)
        ) as bot:
            await bot.slash("run release")
            await approve_each(bot, slack, 2)
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            gates = await approvals.for_run(bot.baton.db, run.id)
            claims = await tool_calls.for_run(bot.baton.db, run.id)
            # Driving the finished run again repeats nothing.
            await bot.baton.orchestrator.execute(run.id)
            await bot.idle()
    assert run.status == RunStatus.SUCCEEDED
    assert [g.status for g in gates] == [ApprovalStatus.APPROVED] * 2
    assert [g.tool_args for g in gates] == [
        {"name": "deploys", "payload": {"v": 1}},
        {"name": "deploys", "payload": second},
    ]
    assert [r.body for r in hook.received] == [{"v": 1}, second]
    keys = [r.idempotency_key for r in hook.received]
    assert len(set(keys)) == 2 and len(claims) == 2

"""Stop: from the command and the button, by whom, and what the thread says afterwards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import approval_blocks as ui
from bot.blocks import STOP
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import approvals, runs, tool_calls
from storage.models import ApprovalStatus, RunStatus, TaskStatus
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.fakes.webhook_receiver import WebhookReceiver
from testkit.harness import Bot, running_bot
from tests.trust_helpers import (
    answers,
    approval_requests,
    approval_value,
    model_settings,
    task_lists,
    write_catalog,
)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.when(lambda s: s.system.startswith("You are thinker"), Reply(hang=True))
        yield server


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
async def bot(
    slack: SlackStandIn,
    sqlite_url: str,
    tmp_path: Path,
    openai: FakeOpenAI,
    hook: WebhookReceiver,
) -> AsyncIterator[Bot]:
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(tmp_path, webhook=hook.url),
        **model_settings(openai.base_url),
    ) as b:
        yield b


async def slow_run(bot: Bot, openai: FakeOpenAI, playbook: str = "think-then-deploy") -> str:
    """A run whose first step is in its model call (which never answers)."""
    await bot.slash_ack(f"run {playbook}")
    await asyncio.wait_for(openai.received(len(openai.requests) + 1), timeout=20)
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.RUNNING
    return run.id


def ephemerals(slack: SlackStandIn, user: str) -> list[str]:
    return [m.text for m in slack.messages("C0GENERAL") if m.ephemeral_for == user]


async def test_cancel_stops_a_running_step_and_nothing_after_it_starts(
    bot: Bot, slack: SlackStandIn, openai: FakeOpenAI, hook: WebhookReceiver
) -> None:
    run_id = await slow_run(bot, openai)

    reply = await bot.command("cancel")
    await bot.idle()

    assert f"Stopped run `{run_id}`" in reply["text"]
    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status == RunStatus.CANCELLED
    tasks = {t.task_id: t for t in await runs.list_tasks(bot.baton.db, run_id)}
    assert tasks["think"].status == TaskStatus.CANCELLED
    assert tasks["deploy"].status == TaskStatus.SKIPPED
    assert tasks["deploy"].started_at is None and hook.received == []
    [answer] = answers(slack, run_id)
    assert answer.text.startswith("⏹️ Stopped by <@U0ALICE>.")
    assert "Nothing was finished before the stop." in answer.text
    assert "stopped" in json.dumps(answer.blocks, ensure_ascii=False)
    _, status = await bot.slash(f"status {run_id}")
    assert status is not None and status["text"] == f"Run {run_id}: cancelled"
    shown = json.dumps(status["blocks"], ensure_ascii=False)
    assert "`think` *thinker* · cancelled" in shown and "`deploy` *deployer* · skipped" in shown
    kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
    assert "cancel_requested" in kinds and kinds[-2:] == ["run_cancelled", "answer_delivered"]


async def test_the_stop_button_on_the_task_list_stops_the_run(
    bot: Bot, slack: SlackStandIn, openai: FakeOpenAI
) -> None:
    run_id = await slow_run(bot, openai, "think")
    [task_list] = task_lists(slack, run_id)

    assert await bot.click(STOP, run_id, user="U0ALICE", message=task_list) == 200
    await bot.idle()

    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status == RunStatus.CANCELLED
    assert ephemerals(slack, "U0ALICE") == [
        f"Stopped run `{run_id}`; its thread says what was done before the stop."
    ]
    # The same message shows the final state: the step was cancelled, not done.
    [shown] = task_lists(slack, run_id)
    assert shown.ts == task_list.ts and shown.tasks["think"]["status"] == "error"
    assert "stopped by <@U0ALICE> while it ran" in shown.tasks["think"]["output"]
    assert len(answers(slack, run_id)) == 1

    # A second click, on a run that has finished, says so and changes nothing.
    await bot.click(STOP, run_id, user="U0ALICE", message=task_list)
    await bot.idle()
    assert "has already finished (stopped)" in ephemerals(slack, "U0ALICE")[-1]
    assert len(answers(slack, run_id)) == 1


async def test_only_the_requester_an_approver_or_an_admin_may_stop(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    slack.workspace.usergroups["S0ADMINS"] = ["U0CAROL"]
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(tmp_path, approvers="U0BOB"),
        **model_settings(openai.base_url),
    ) as bot:
        run_id = await slow_run(bot, openai, "think")
        refused = await bot.command(f"cancel {run_id}", user="U0CAROL")
        assert "You cannot stop run" in refused["text"]
        running = await runs.get_run(bot.baton.db, run_id)
        assert running is not None and running.status == RunStatus.RUNNING

        by_approver = await bot.command(f"cancel {run_id}", user="U0BOB")
        assert "Stopped run" in by_approver["text"]
        await bot.idle()
        run = await runs.get_run(bot.baton.db, run_id)
        assert run is not None and run.status == RunStatus.CANCELLED
        assert (run.answer or "").startswith("⏹️ Stopped by <@U0BOB>.")

    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(tmp_path, approvers="U0BOB"),
        baton_admins="S0ADMINS",
        **model_settings(openai.base_url),
    ) as bot:
        run_id = await slow_run(bot, openai, "think")
        by_admin = await bot.command("cancel", user="U0CAROL")
        await bot.idle()
        assert f"Stopped run `{run_id}`" in by_admin["text"]


async def test_stopping_a_run_at_a_gate_withdraws_the_approval(
    bot: Bot, slack: SlackStandIn, hook: WebhookReceiver
) -> None:
    await bot.slash("run deploy")
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.WAITING
    [gate] = approval_requests(slack)
    value = approval_value(gate)

    _, reply = await bot.slash(f"cancel {run.id}")
    await bot.idle()

    assert reply is not None and "Stopped run" in reply["text"]
    [approval] = await approvals.for_run(bot.baton.db, run.id)
    assert approval.status == ApprovalStatus.WITHDRAWN and approval.decided_by == "U0ALICE"
    edited = slack.workspace.message("C0GENERAL", gate.ts)
    assert "Withdrawn: run stopped by <@U0ALICE>" in json.dumps(edited.blocks, ensure_ascii=False)
    assert approval_requests(slack) == []
    # A late click on the old buttons records nothing and says why.
    await bot.click(ui.APPROVE, value, user="U0ALICE", message=gate)
    await bot.idle()
    assert hook.received == []
    assert "withdrawn" in ephemerals(slack, "U0ALICE")[-1]
    done = await runs.get_run(bot.baton.db, run.id)
    assert done is not None and done.status == RunStatus.CANCELLED
    [task] = await runs.list_tasks(bot.baton.db, run.id)
    assert task.status == TaskStatus.CANCELLED and "before anyone decided" in (task.error or "")


async def test_a_side_effect_in_flight_when_stopped_is_reported_as_maybe_done_and_not_repeated(
    bot: Bot, slack: SlackStandIn, hook: WebhookReceiver
) -> None:
    await bot.slash("run deploy")
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    [gate] = approval_requests(slack)
    hook.hold()
    await bot.click(ui.APPROVE, approval_value(gate), user="U0ALICE", message=gate)
    await asyncio.wait_for(hook.arrived.wait(), timeout=20)

    await bot.command(f"cancel {run.id}")
    hook.release()
    await bot.idle()

    done = await runs.get_run(bot.baton.db, run.id)
    assert done is not None and done.status == RunStatus.CANCELLED
    assert (
        "`webhook_post` (task `deploy`) had started when the run was stopped and may have happened"
        in (done.answer or "")
    )
    assert len(hook.received) == 1
    [claimed] = await tool_calls.for_run(bot.baton.db, run.id)
    assert claimed.tool == "webhook_post"
    # Nothing repeats it: another drive of the stopped run does nothing.
    await bot.baton.orchestrator.execute(run.id)
    await bot.idle()
    assert len(hook.received) == 1 and len(answers(slack, run.id)) == 1


async def test_a_stop_asked_in_another_process_reaches_the_one_driving(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    catalog = write_catalog(tmp_path)
    fast = Limits(lease_seconds=1.5)
    async with (
        running_bot(
            slack,
            sqlite_url,
            baton_agents_file=catalog,
            limits=fast,
            **model_settings(openai.base_url),
        ) as driver,
        running_bot(
            slack,
            sqlite_url,
            baton_agents_file=catalog,
            limits=fast,
            **model_settings(openai.base_url),
        ) as other,
    ):
        run_id = await slow_run(driver, openai, "think")
        assert driver.baton.orchestrator.driving(run_id)

        reply = await other.command(f"cancel {run_id}")
        assert "Stopped run" in reply["text"]
        await slack.wait_for(lambda: not driver.baton.orchestrator.driving(run_id), timeout=10)
        await driver.idle()

        run = await runs.get_run(driver.baton.db, run_id)
        assert run is not None and run.status == RunStatus.CANCELLED
        assert len(answers(slack, run_id)) == 1

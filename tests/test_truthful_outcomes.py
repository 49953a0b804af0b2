"""The thread tells the truth: a step that did not happen is never shown as done, the task
list is one message for the whole run, and words meant for a model never reach a person."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot import approval_blocks as ui
from bot.approval_clicks import expire_and_resume
from bot.progress import ProgressOptions
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.db import utcnow
from storage.models import Approval, RunStatus, TaskStatus
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

FOR_THE_MODEL = ("Do not try it again", "finish without it", "A person rejected this call")


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
async def bot(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, hook: WebhookReceiver
) -> AsyncIterator[Bot]:
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(tmp_path, webhook=hook.url),
        **model_settings(),
    ) as b:
        yield b


def everything_said(slack: SlackStandIn) -> str:
    return json.dumps(
        [(m.text, m.blocks, list(m.tasks.values())) for m in slack.messages("C0GENERAL")],
        ensure_ascii=False,
    )


async def home_of(bot: Bot, user: str) -> str:
    before = len(bot.slack.calls_to("views.publish"))
    await bot.event({"type": "app_home_opened", "user": user, "channel": "D0ALICE", "tab": "home"})
    await bot.idle()
    [published] = bot.slack.calls_to("views.publish")[before:]
    view: dict[str, Any] = published.args["view"]
    return json.dumps(view, ensure_ascii=False)


async def test_a_rejected_action_is_rejected_everywhere_and_the_answer_says_it_did_not_happen(
    bot: Bot, slack: SlackStandIn, hook: WebhookReceiver
) -> None:
    await bot.slash("run deploy")
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    [gate] = approval_requests(slack)

    await bot.click(ui.REJECT, approval_value(gate), user="U0ALICE", message=gate)
    await bot.idle()

    assert hook.received == []
    [task] = await runs.list_tasks(bot.baton.db, run.id)
    assert task.status == TaskStatus.REJECTED
    assert task.error == "`webhook_post` was not called: rejected by <@U0ALICE>"
    done = await runs.get_run(bot.baton.db, run.id)
    assert done is not None and done.status == RunStatus.FAILED
    # The task list: the step is marked as an error with the reason, never complete.
    [task_list] = task_lists(slack, run.id)
    shown = json.dumps(task_list.blocks, ensure_ascii=False) + json.dumps(task_list.tasks)
    assert "🚫" in shown or '"status": "error"' in shown
    assert "✅" not in json.dumps(task_list.blocks, ensure_ascii=False)
    # The answer says plainly that it did not happen, and why.
    [answer] = answers(slack, run.id)
    assert "`webhook_post` was not called: rejected by <@U0ALICE>" in answer.text
    # /baton status, the audit trail and the Home tab agree.
    _, status = await bot.slash(f"status {run.id}")
    assert status is not None and "`deploy` *deployer* · rejected" in json.dumps(
        status["blocks"], ensure_ascii=False
    )
    kinds = [e.kind for e in await runs.events(bot.baton.db, run.id)]
    assert "task_rejected" in kinds and "task_succeeded" not in kinds
    assert "failed (1 rejected)" in await home_of(bot, "U0ALICE")
    said = everything_said(slack)
    assert not any(words in said for words in FOR_THE_MODEL)


async def test_an_expired_approval_is_reported_as_not_done_because_it_expired(
    bot: Bot, slack: SlackStandIn, hook: WebhookReceiver
) -> None:
    await bot.slash("run deploy")
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    # Time passes (the approval's expiry is moved into the past, instead of waiting for it).
    async with bot.baton.db.session() as s:
        await s.exec(
            update(Approval)
            .where(Approval.run_id == run.id)  # type: ignore[arg-type]
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )

    assert await expire_and_resume(bot.baton) == 1
    await bot.idle()

    assert hook.received == []
    [task] = await runs.list_tasks(bot.baton.db, run.id)
    assert task.status == TaskStatus.REJECTED
    assert "the approval expired without a decision" in (task.error or "")
    [answer] = answers(slack, run.id)
    assert "`webhook_post` was not called: the approval expired without a decision" in answer.text
    thread = [m.text for m in bot.thread(slack.messages("C0GENERAL")[0])]
    assert any("expired without a decision, so it counts as rejected" in t for t in thread)
    assert approval_requests(slack) == []


async def test_the_task_list_is_one_message_from_the_plan_to_the_end_across_an_approval(
    bot: Bot, slack: SlackStandIn, hook: WebhookReceiver
) -> None:
    await bot.slash("run deploy")
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    [before] = task_lists(slack, run.id)
    [gate] = approval_requests(slack)

    await bot.click(ui.APPROVE, approval_value(gate), user="U0ALICE", message=gate)
    await bot.idle()

    assert len(hook.received) == 1
    [after] = task_lists(slack, run.id)
    stored = await runs.get_run(bot.baton.db, run.id)
    assert after.ts == before.ts and stored is not None and stored.status_message_ts == after.ts
    final = json.dumps(after.blocks, ensure_ascii=False)
    assert "✅ *deployer*" in final and "waiting for approval" not in final
    assert "· done" in final and f"run:{run.id}" not in final  # finished: no Stop button


async def test_a_status_message_that_is_gone_is_posted_again_once_not_on_every_update(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, hook: WebhookReceiver
) -> None:
    async with running_bot(
        slack,
        sqlite_url,
        progress=ProgressOptions(streaming=False, update_interval=0.01),
        baton_agents_file=write_catalog(tmp_path, webhook=hook.url),
        **model_settings(),
    ) as bot:
        slack.fail("chat.update", "message_not_found", times=1000)
        await bot.slash("run two-posts")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None
        lists = task_lists(slack, run.id)
        updates = slack.calls_to("chat.update")
    # The first edit failed: the list was posted again; that one failing too, edits stopped.
    assert len(lists) == 2 and len(updates) == 2
    assert len(approval_requests(slack)) == 2

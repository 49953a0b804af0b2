"""Slack gets its answer within 3 s even when every Web API call is throttled; the work follows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlmodel import select

from bot import approval_blocks as ui
from sandbox.web_api import SlackStandIn
from storage import approvals, runs
from storage.models import ApprovalStatus, Run, RunStatus
from testkit.databases import Site
from testkit.harness import running_bot
from tests.trust_helpers import (
    answers,
    approval_requests,
    approval_value,
    model_settings,
    write_catalog,
)

# Slack shows "operation_timeout" and retries when it has no answer within this.
SLACKS_LIMIT = 3.0


async def test_acks_arrive_in_time_while_slack_throttles_every_call(
    sqlite_url: str, tmp_path: Path, site: Site
) -> None:
    async with (
        SlackStandIn() as slack,
        running_bot(
            slack, sqlite_url, baton_agents_file=write_catalog(tmp_path), **model_settings()
        ) as bot,
    ):
        await bot.slash("run two-posts")
        waiting = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert waiting is not None
        gates = approval_requests(slack)
        # The two steps ask in parallel: tell their messages apart by what they would post.
        [to_approve] = [m for m in gates if "*text*: one" in json.dumps(m.blocks)]
        [to_reject] = [m for m in gates if "*text*: two" in json.dumps(m.blocks)]
        reject_id = approval_value(to_reject)
        before = len(slack.calls)

        slack.throttle(retry_after=4)
        status, ack = await asyncio.wait_for(
            bot.slash_ack(f"check {site.url('/ok')}", user="U0BOB"), SLACKS_LIMIT
        )
        assert status == 200 and not ack
        question = await slack.post_as_user(
            "C0GENERAL", "U0ALICE", f"<@U0BATON> is {site.url('/status')} up?"
        )
        mention = {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": question.text,
            "ts": question.ts,
            "channel": "C0GENERAL",
            "event_ts": question.ts,
        }
        assert await asyncio.wait_for(bot.event(mention), SLACKS_LIMIT) == 200
        click = bot.click(
            ui.APPROVE, approval_value(to_approve), user="U0ALICE", message=to_approve
        )
        assert await asyncio.wait_for(click, SLACKS_LIMIT) == 200
        submitted = bot.submit(
            user="U0ALICE",
            view={"callback_id": ui.REASON_CALLBACK, "private_metadata": reject_id},
            values={
                ui.REASON_BLOCK: {ui.REASON_INPUT: {"type": "plain_text_input", "value": "not now"}}
            },
        )
        status, body = await asyncio.wait_for(submitted, SLACKS_LIMIT)
        assert status == 200 and body is None
        # The work behind each request meets the throttling too (after its ack), and waits.
        throttled = await slack.wait_for(
            lambda: [c for c in slack.calls[before:] if c.status == 429][3:], timeout=20
        )
        assert throttled and {
            c.status for c in slack.calls[before:] if c.method != "response_url"
        } == {429}

        slack.unthrottle()
        await bot.idle()

        decided = {a.id: a for a in await approvals.for_run(bot.baton.db, waiting.id)}
        assert decided[reject_id].status == ApprovalStatus.REJECTED
        assert decided[reject_id].reason == "not now"
        assert [m.text for m in slack.messages("C0RANDOM")] == ["one"]
        done = await runs.get_run(bot.baton.db, waiting.id)
        assert done is not None and done.status == RunStatus.PARTIAL
        assert len(answers(slack, waiting.id)) == 1
        # The slash request and the mention were both answered in their threads.
        for source, path in (("command", "/ok"), ("mention", "/status")):
            async with bot.baton.db.session() as s:
                found = (await s.exec(select(Run).where(Run.source == source))).all()
            [run] = [r for r in found if site.url(path) in r.request]
            assert run.status == RunStatus.SUCCEEDED
            assert len(answers(slack, run.id)) == 1
        # And the approval messages show who decided, without buttons.
        shown = json.dumps(
            [slack.workspace.message("C0GENERAL", m.ts).blocks for m in (to_approve, to_reject)]
        )
        assert "Approved by <@U0ALICE>" in shown and "Rejected by <@U0ALICE>" in shown
        assert approval_requests(slack) == []

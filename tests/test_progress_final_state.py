"""The streamed task list ends right, even when a task finishes while an update is in flight."""

from __future__ import annotations

from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.progress import ProgressOptions, SlackProgress
from orchestration.run_events import (
    PlanReady,
    RunAccepted,
    RunFinished,
    TaskFinished,
    TaskStarted,
    TaskView,
)
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Change
from storage import Database, runs
from storage.models import Run


async def nothing_to_deliver(run_id: str) -> None:
    raise AssertionError("this run asks for no approval")


async def test_a_task_finishing_during_an_append_is_complete_in_the_final_list(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path}/progress.db")
    await db.create_all()
    async with SlackStandIn() as slack:
        question = await slack.post_as_user("C0GENERAL", "U0ALICE", "check the shop")
        run = await runs.create_run(
            db,
            Run(
                id=runs.new_id(),
                request="check the shop",
                team_id="T0BATON",
                channel_id="C0GENERAL",
                thread_ts=question.ts,
                user_id="U0ALICE",
            ),
        )
        progress = SlackProgress(
            client=AsyncWebClient(token=slack.token, base_url=slack.api_url),
            db=db,
            run=run,
            options=ProgressOptions(stream_interval=0.0),
            deliver=nothing_to_deliver,
        )
        finished: list[str] = []

        async def finish_while_appending(change: Change) -> None:
            # Runs while Slack is still answering the append: the client is waiting.
            if change["type"] == "message_streamed" and not finished:
                finished.append("a")
                await progress.publish(TaskFinished(run.id, "a", "succeeded", "200 in 3 ms"))

        slack.subscribe(finish_while_appending)
        await progress.publish(RunAccepted(run.id, "check the shop"))
        await progress.publish(PlanReady(run.id, "Check", (TaskView("a", "web-checker", "Check"),)))
        await progress.publish(TaskStarted(run.id, "a"))
        await slack.wait_for(lambda: finished)
        await progress.publish(RunFinished(run.id, "succeeded", "The shop is up."))

        [stream] = [m for m in slack.messages("C0GENERAL") if m.tasks]
    await db.dispose()

    assert not stream.streaming
    assert stream.tasks["a"]["status"] == "complete"
    assert stream.tasks["a"]["output"] == "200 in 3 ms"

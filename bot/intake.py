"""Where a request from Slack becomes a run: dedupe, store, hand to the orchestrator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage import runs, slack_events
from storage.models import Run

if TYPE_CHECKING:
    from bot.app import Baton


async def start_run(
    baton: Baton,
    *,
    source: str,
    request: str,
    team_id: str | None,
    channel_id: str | None,
    thread_ts: str | None,
    user_id: str | None,
    playbook: str | None = None,
    event_id: str | None = None,
    context: str | None = None,
    schedule_id: str | None = None,
) -> Run | None:
    """Create the run and start it in the background. None when `event_id` was seen before."""
    if event_id is not None and not await slack_events.first_sighting(baton.db, event_id):
        return None
    run = await runs.create_run(
        baton.db,
        Run(
            id=runs.new_id(),
            source=source,
            request=request,
            team_id=team_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            user_id=user_id,
            playbook=playbook,
            context=context,
            schedule_id=schedule_id,
        ),
    )
    baton.background.spawn(baton.orchestrator.execute(run.id), name=f"run-{run.id}")
    return run


async def reply_once(
    baton: Baton, event_id: str | None, channel: str, thread_ts: str, text: str
) -> None:
    """Answer in the thread, unless Slack is delivering this event again."""
    from bot.slack_ops import post_text

    if event_id is not None and not await slack_events.first_sighting(baton.db, event_id):
        return
    await post_text(baton.client, channel=channel, thread_ts=thread_ts, text=text)

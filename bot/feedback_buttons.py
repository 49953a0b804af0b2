"""👍 / 👎 under an answer: stored once per person and run, acknowledged quietly."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.blocks import parse_feedback
from bot.interactions import first_action, team_of, where
from bot.slack_ops import slack_error
from storage import feedback, runs

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

THANKS = {
    True: "Thanks — glad it helped. Your 👍 is counted for this answer.",
    False: "Thanks for saying so — your 👎 is counted, and it helps tune the specialists.",
}


async def on_feedback(baton: Baton, body: dict[str, Any]) -> None:
    """Store the vote; only a vote that changed something gets a (private) thank-you."""
    channel, user = where(body)
    parsed = parse_feedback(str(first_action(body).get("value") or ""))
    if parsed is None or not user:
        log.info("ignored a feedback click without a run or a person")
        return
    run_id, positive = parsed
    run = baton.own(await runs.get_run(baton.db, run_id), team_of(body))
    if run is None:
        log.info("feedback for unknown run %s ignored", run_id)
        return
    if await feedback.record(baton.db, run_id, user, positive=positive) and channel:
        # Only the clicker sees it, in the answer's thread.
        thread = (body.get("container") or {}).get("thread_ts")
        try:
            await baton.client_for(run.team_id).chat_postEphemeral(
                channel=channel, user=user, text=THANKS[positive], thread_ts=thread
            )
        except SlackApiError as e:
            log.info("could not thank %s for feedback: %s", user, slack_error(e))

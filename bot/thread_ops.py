"""What people wrote in a thread between their requests to Baton, read after the ack.

Baton's own database has every earlier request and answer of a thread; the messages people
wrote to each other in between are only in Slack. They are read once per follow-up with
`conversations.replies` (after the ack, before the run is planned) and kept with the run, so
a restarted process plans with the same conversation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.slack_ops import slack_error
from bot.text import strip_mentions
from orchestration.planning import CONTEXT_ENTRIES, THREAD_MESSAGES
from storage import run_states, runs
from storage.models import Run

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

# One page of a thread is enough: only the newest messages are given to the models.
PAGE = 100


def people_messages(
    messages: list[dict[str, Any]], *, before_ts: str, bot_user_id: str | None, requests: set[str]
) -> list[dict[str, str]]:
    """The people's messages older than `before_ts` that were not requests to Baton, newest
    `CONTEXT_ENTRIES` of them, oldest first."""
    kept: list[dict[str, str]] = []
    for m in messages:
        ts = str(m.get("ts") or "")
        text = str(m.get("text") or "").strip()
        if not ts or not text or float(ts) >= float(before_ts):
            continue
        if m.get("bot_id") or m.get("subtype") or not m.get("user"):
            continue
        if bot_user_id and m.get("user") == bot_user_id:
            continue
        if strip_mentions(text, bot_user_id) in requests:
            continue  # a request: Baton's database has it, with its answer
        kept.append({"ts": ts, "user": str(m["user"]), "text": text})
    return kept[-CONTEXT_ENTRIES:]


async def gather(baton: Baton, run: Run, *, request_ts: str, bot_user_id: str | None) -> None:
    """Keep with `run` what people wrote in its thread before `request_ts` (best effort)."""
    if not (run.channel_id and run.thread_ts):
        return
    try:
        resp = await baton.client_for(run.team_id).conversations_replies(
            channel=run.channel_id, ts=run.thread_ts, limit=PAGE
        )
    except SlackApiError as e:
        log.info("run %s: could not read its thread (%s)", run.id, slack_error(e))
        return
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        log.info("run %s: could not read its thread (%s)", run.id, e)
        return
    earlier = await runs.thread_runs(
        baton.db, channel_id=run.channel_id, thread_ts=run.thread_ts, before=run.id
    )
    found = people_messages(
        list(resp.get("messages") or []),
        before_ts=request_ts,
        bot_user_id=bot_user_id,
        requests={r.request.strip() for r in earlier} | {run.request.strip()},
    )
    if found:
        await run_states.note(baton.db, run.id, THREAD_MESSAGES, data={"messages": found})

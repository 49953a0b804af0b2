"""@-mentions, DMs and the App Home.

An event is acked by returning: before that, only the run is stored (with the event id, so a
retry is dropped); if that write fails, Slack gets a 503 and retries. Everything else —
posting, planning — happens after the ack.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError

from bot.commands import HELP, Ask, Help, RunPlaybook, parse, unknown_playbook
from bot.home import home_view
from bot.intake import IntakeFailed, accept_message, begin, clean, reply_once
from bot.slack_ops import post_text, slack_error
from bot.text import strip_mentions

if TYPE_CHECKING:
    from bot.app import Baton

log = logging.getLogger(__name__)


def register(baton: Baton) -> None:
    app = baton.app

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        return await handle_message(baton, event, body, context, source="mention")

    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        # Only people's own messages in DMs with Baton; edits, joins and bots are ignored.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return None
        return await handle_message(baton, event, body, context, source="dm")

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            team = str(body.get("team_id") or "") or None
            baton.background.spawn(_publish_home(baton, str(event["user"]), team))


async def _publish_home(baton: Baton, user: str, team_id: str | None) -> None:
    try:
        await baton.client_for(team_id).views_publish(
            user_id=user, view=await home_view(baton.db, user)
        )
    except SlackApiError as e:
        log.warning("could not publish the App Home for %s: %s", user, slack_error(e))


async def handle_message(
    baton: Baton,
    event: dict[str, Any],
    body: dict[str, Any],
    context: AsyncBoltContext,
    *,
    source: str,
) -> BoltResponse | None:
    """A mention or DM: a request, a playbook, or a question about Baton itself."""
    channel = event.get("channel")
    ts = event.get("thread_ts") or event.get("ts")
    if not isinstance(channel, str) or not channel or not isinstance(ts, str) or not ts:
        log.warning("ignored a %s event without its channel or timestamp", source)
        return None
    thread_ts = ts
    text = strip_mentions(clean(str(event.get("text") or "")), context.bot_user_id)
    command = parse(text)
    if isinstance(command, Help) or not text:
        baton.background.spawn(
            post_text(
                baton.client_for(context.team_id), channel=channel, thread_ts=thread_ts, text=HELP
            )
        )
        return None
    playbook = None
    request = text
    if isinstance(command, RunPlaybook) and baton.catalog.playbook(command.name) is None:
        answer = unknown_playbook(command.name, baton.catalog)
        event_id = str(body["event_id"]) if body.get("event_id") else None
        baton.background.spawn(
            reply_once(baton, event_id, channel, thread_ts, answer, team_id=context.team_id)
        )
        return None
    if isinstance(command, RunPlaybook):
        playbook, request = command.name, command.extra
    elif not isinstance(command, Ask):
        # Other subcommands are slash-command only; in a conversation, treat it as a request.
        request = text
    try:
        pending = await accept_message(
            baton,
            source=source,
            request=request,
            playbook=playbook,
            team_id=str(body.get("team_id") or event.get("team") or "") or None,
            channel_id=channel,
            thread_ts=thread_ts,
            user_id=str(event.get("user") or "") or None,
            event_id=str(body["event_id"]) if body.get("event_id") else None,
        )
    except IntakeFailed as e:
        # Not stored, not marked seen: Slack retries the event (in a minute, then five).
        log.warning("a %s was not stored (%s); Slack will retry it", source, e)
        return BoltResponse(status=503, body="")
    baton.background.spawn(
        begin(baton, pending, channel=channel, thread_ts=thread_ts, team_id=context.team_id),
        name="begin-run",
    )
    return None

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

from bot.command_parsing import HELP, Ask, Help, RunPlaybook, parse, unknown_playbook
from bot.home_tab import publish
from bot.intake import IntakeFailed, accept_message, begin, clean, reply_once
from bot.slack_ops import post_text
from bot.text import strip_mentions
from storage.models import RunSource

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)


def register(baton: Baton) -> None:
    app = baton.app

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        return await handle_message(baton, event, body, context, source=RunSource.MENTION)

    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        # Only people's own messages; edits, joins, bots and Baton's own posts are ignored.
        if event.get("subtype") or event.get("bot_id") or not event.get("user"):
            return None
        if event.get("user") == context.bot_user_id:
            return None
        if event.get("channel_type") == "im":
            return await handle_message(baton, event, body, context, source=RunSource.DM)
        if is_follow_up(event, context.bot_user_id):
            return await handle_message(
                baton, event, body, context, source=RunSource.FOLLOW_UP, follow_up_only=True
            )
        return None

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            team = str(body.get("team_id") or "") or None
            baton.background.spawn(publish(baton, str(event["user"]), team_id=team), name="home")


def is_follow_up(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """A reply in a channel thread that does not mention Baton (a mention comes as
    `app_mention` too, and must not start a second run); whether Baton has spoken in the
    thread is decided when it is stored."""
    if event.get("channel_type") not in ("channel", "group"):
        return False
    thread_ts, ts = event.get("thread_ts"), event.get("ts")
    if not thread_ts or thread_ts == ts:
        return False
    if not bot_user_id:
        return False  # without its own id Baton cannot tell a mention (answered as such)
    return f"<@{bot_user_id}" not in str(event.get("text") or "")


async def handle_message(
    baton: Baton,
    event: dict[str, Any],
    body: dict[str, Any],
    context: AsyncBoltContext,
    *,
    source: RunSource,
    follow_up_only: bool = False,
) -> BoltResponse | None:
    """A mention, DM or follow-up: a request, a playbook, or a question about Baton itself.

    With `follow_up_only` (a reply in a channel thread without a mention) nothing is said or
    stored unless Baton has a run in that thread.
    """
    channel = event.get("channel")
    ts = event.get("thread_ts") or event.get("ts")
    if not isinstance(channel, str) or not channel or not isinstance(ts, str) or not ts:
        log.warning("ignored a %s event without its channel or timestamp", source)
        return None
    thread_ts = ts
    text = strip_mentions(clean(str(event.get("text") or "")), context.bot_user_id)
    command = parse(text)
    if follow_up_only:
        # Whatever it says, it is a request only in a thread Baton has spoken in.
        command = Ask(text) if text else command
    if isinstance(command, Help) or not text:
        if follow_up_only:
            return None
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
    in_thread = event.get("thread_ts") not in (None, event.get("ts"))
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
            follow_up_only=follow_up_only,
            reply=in_thread,
            new_thread=not in_thread,
        )
    except IntakeFailed as e:
        # Not stored, not marked seen: Slack retries the event (in a minute, then five).
        log.warning("a %s was not stored (%s); Slack will retry it", source, e)
        return BoltResponse(status=503, body="")
    begin(
        baton,
        pending,
        # A reply that could not be stored is not answered: the thread may not be Baton's.
        channel=None if follow_up_only else channel,
        thread_ts=thread_ts,
        team_id=context.team_id,
        reply_ts=str(event["ts"]) if in_thread else None,
        bot_user_id=context.bot_user_id,
    )
    return None

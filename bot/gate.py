"""The requests that come most — `/baton` and @-mentions — taken in before Bolt's dispatch.

For every request, Bolt builds a request object, a context with a Web API client of its own,
and runs a chain of middleware before a listener sees it: about a third of what an ack cost
the web process. These two kinds need none of that. Here their signature is checked as Bolt checks it
(`SignatureVerifier`), and the listener functions Bolt would call (`commands.handle`,
`mentions.handle_message`) are called with Bolt's own `ack` and `respond`, so what they store,
answer and start is the same either way.

Everything else goes on to Bolt unchanged: clicks, forms, other events, a request whose
signature fails (Bolt answers it), and every request in OAuth mode, where Bolt authorises each
from its workspace's installation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.config import secret
from bot.listeners import commands, mentions
from bot.manifest import EVENTS_PATH
from bot.request_checks import PAYLOAD
from storage.models import RunSource

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"


def gate(baton: Baton) -> Middleware:
    """aiohttp middleware for /slack/events, inside `refuse_malformed` (whose JSON it reads):
    `/baton` and mentions answered here, the rest (and everything in OAuth mode) handed to
    Bolt."""
    verifier = SignatureVerifier(secret(baton.settings.slack_signing_secret) or "")

    @web.middleware
    async def take_in(request: web.Request, handler: Handler) -> web.StreamResponse:
        me = baton.identity
        if me is None or request.method != "POST" or request.path != EVENTS_PATH:
            return await handler(request)
        body = await request.text()
        headers = request.headers
        hot = _command(body) if headers.get("Content-Type", "").startswith(FORM) else None
        mention = None if hot is not None else _mention(request.get(PAYLOAD))
        stamp, signature = (
            headers.get("X-Slack-Request-Timestamp"),
            headers.get("X-Slack-Signature"),
        )
        if (
            (hot is None and mention is None)
            or not stamp
            or not signature
            or not verifier.is_valid(body, stamp, signature)
        ):
            return await handler(request)  # Bolt answers what it would not take
        try:
            if hot is not None:
                ack = AsyncAck()  # type: ignore[no-untyped-call]
                respond = AsyncRespond(response_url=hot.get("response_url"))
                await commands.handle(baton, ack, respond, hot)
                answer = ack.response or BoltResponse(status=200, body="")
            else:
                assert mention is not None
                event = mention["event"]
                if event.get("user") == me.bot_user_id:
                    return web.Response(status=200)  # Baton's own words, as Bolt ignores them
                # As Bolt gives it: the workspace the event came from, Baton's own user there.
                team = str(mention.get("team_id") or "") or me.team_id
                context = AsyncBoltContext(team_id=team, bot_user_id=me.bot_user_id)
                answer = await mentions.handle_message(
                    baton, event, mention, context, source=RunSource.MENTION
                ) or BoltResponse(status=200, body="")
        except Exception:
            log.exception("a request to %s failed", EVENTS_PATH)
            return web.Response(status=500)
        return await to_aiohttp_response(answer)

    return take_in


def _command(body: str) -> dict[str, Any] | None:
    """A `/baton` slash command's fields, as Bolt gives them to its listener; else None."""
    if "command=%2Fbaton&" not in body and not body.endswith("command=%2Fbaton"):
        return None
    fields = dict(parse_qsl(body, keep_blank_values=True))
    return fields if fields.get("command") == "/baton" else None


def _mention(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON body `refuse_malformed` read (`PAYLOAD`) when it is an `app_mention` event's;
    else None."""
    if payload is None or payload.get("type") != "event_callback":
        return None
    event = payload.get("event")
    return payload if isinstance(event, dict) and event.get("type") == "app_mention" else None

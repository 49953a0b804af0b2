"""The sandbox page's server: the static page, its state, live updates, and what people do.

GET  /                    the page (sandbox/page/, no build step)
GET  /api/state?user=U…   everything that person sees, for a first draw or a reload
GET  /ws?user=U…          live changes for that person (see `live.py`)
POST /api/messages        {user, channel, text, thread_ts?}: a message or a slash command
POST /api/actions         {user, channel, ts, action_id, block_index} (a message button)
                          or {user, view_id, action_id, block_index, values} (in a modal)
                          or {user, home: true, action_id, block_index} (on the Home tab)
                          (`feedback`: positive or negative, for a `feedback_buttons` pair)
POST /api/views/submit    {user, view_id, values}
POST /api/views/close     {user, view_id, values}
POST /api/home            {user}: open Baton's Home tab
POST /api/assistant/open  {user, context_channel?}: open the assistant container (a new thread)
POST /api/assistant/context {user, thread_ts, context_channel}: the person moved elsewhere
POST /api/faults          {method, times, retry_after?, error?}: make Slack misbehave
GET  /archives/C…/p…      a permalink: the page, at that message
GET  /emoji.js            the emoji names Slack knows, for the page's scripts
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode

from aiohttp import web

from sandbox.emoji import EMOJI
from sandbox.live import LiveHub
from sandbox.local_server import LocalServer
from sandbox.perspective import state_for
from sandbox.relay import Outcome, Relay
from sandbox.web_api import SlackStandIn
from sandbox.workspace import JSON, SlackError

PAGE = Path(__file__).with_name("page")
NO_STORE = {"Cache-Control": "no-store"}
# Slack's permalink path: /archives/C0GENERAL/p1700000000123456
_PERMALINK = re.compile(r"^p(\d{10})(\d{6})$")
FEEDBACK = ("positive", "negative")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """The page sent something that cannot be acted on."""


class SandboxPage(LocalServer):
    """The page server for one workspace, delivering to Baton through `relay`."""

    def __init__(self, slack: SlackStandIn, relay: Relay, *, info: JSON | None = None) -> None:
        super().__init__()
        self.slack = slack
        self.relay = relay
        self.info = info or {}
        self.hub = LiveHub(slack)

    @property
    def url(self) -> str:
        """The page's address, e.g. `http://127.0.0.1:8765/`."""
        return self.root + "/"

    def web_app(self) -> web.Application:
        app = web.Application(middlewares=[_errors])
        app.router.add_get("/", self._index)
        app.router.add_get("/emoji.js", self._emoji)
        app.router.add_get("/archives/{channel}/{message}", self._permalink)
        app.router.add_static("/static/", PAGE, append_version=False)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/ws", self._socket)
        app.router.add_post("/api/messages", self._message)
        app.router.add_post("/api/actions", self._action)
        app.router.add_post("/api/views/submit", self._submit)
        app.router.add_post("/api/views/close", self._close)
        app.router.add_post("/api/home", self._home)
        app.router.add_post("/api/assistant/open", self._assistant_open)
        app.router.add_post("/api/assistant/context", self._assistant_context)
        app.router.add_post("/api/faults", self._fault)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None
    ) -> Self:
        await super().start(host, port, sock=sock)
        # Permalinks and the workspace's address lead here, as Slack's lead to its client.
        self.slack.workspace.web_url = self.url
        return self

    async def stop(self) -> None:
        await self.hub.close()
        await super().stop()

    # reading

    async def _index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE / "index.html", headers=NO_STORE)

    async def _emoji(self, _: web.Request) -> web.Response:
        script = f"window.SLACK_EMOJI = {json.dumps(EMOJI, ensure_ascii=False)};\n"
        return web.Response(text=script, content_type="text/javascript", charset="utf-8")

    async def _permalink(self, request: web.Request) -> web.Response:
        """Slack's permalink, opened in the page: the channel, the thread, the message."""
        match = _PERMALINK.match(request.match_info["message"])
        if match is None:
            raise web.HTTPNotFound(text="Not a message link.")
        channel = request.match_info["channel"]
        ts = f"{match.group(1)}.{match.group(2)}"
        place = {"channel": channel}
        thread = request.query.get("thread_ts")
        if thread:
            place["thread"] = thread
        elif self.slack.workspace.replies(channel, ts):
            place["thread"] = ts
        place["message"] = ts
        raise web.HTTPFound("/?" + urlencode(place))

    async def _state(self, request: web.Request) -> web.Response:
        user = self._person(request.query.get("user"))
        state = state_for(
            self.slack.workspace,
            self.slack.snapshot(),
            user,
            seq=self.hub.seq,
            calls=self.slack.calls,
            info=self.info,
        )
        return web.json_response(state, headers=NO_STORE)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        return await self.hub.serve(request, self._person(request.query.get("user")))

    # acting

    async def _message(self, request: web.Request) -> web.Response:
        body = await _body(request)
        outcome = await self.relay.say(
            self._person(body.get("user")),
            _text(body, "channel"),
            str(body.get("text") or ""),
            thread_ts=_optional(body, "thread_ts"),
        )
        return _answer(outcome)

    async def _action(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self._person(body.get("user"))
        index = body.get("block_index")
        block_index = index if isinstance(index, int) else None
        if body.get("home") is True:
            try:
                outcome = await self.relay.click_in_home(
                    user, action_id=_text(body, "action_id"), block_index=block_index
                )
            except LookupError as e:
                raise BadRequest(str(e)) from e
        elif body.get("view_id"):
            outcome = await self.relay.click_in_view(
                user,
                _text(body, "view_id"),
                action_id=_text(body, "action_id"),
                block_index=block_index,
                values=_values(body),
            )
        else:
            feedback = body.get("feedback")
            if feedback is not None and feedback not in FEEDBACK:
                raise BadRequest("feedback must be positive or negative")
            outcome = await self.relay.click(
                user,
                _text(body, "channel"),
                _text(body, "ts"),
                action_id=_text(body, "action_id"),
                block_index=block_index,
                feedback=feedback,
            )
        return _answer(outcome)

    async def _submit(self, request: web.Request) -> web.Response:
        body = await _body(request)
        outcome = await self.relay.submit(
            self._person(body.get("user")), _text(body, "view_id"), _values(body)
        )
        return _answer(outcome)

    async def _close(self, request: web.Request) -> web.Response:
        body = await _body(request)
        outcome = await self.relay.close(
            self._person(body.get("user")), _text(body, "view_id"), _values(body)
        )
        return _answer(outcome)

    async def _home(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return _answer(await self.relay.open_home(self._person(body.get("user"))))

    async def _assistant_open(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self._person(body.get("user"))
        return _answer(await self.relay.open_assistant(user, _optional(body, "context_channel")))

    async def _assistant_context(self, request: web.Request) -> web.Response:
        body = await _body(request)
        outcome = await self.relay.change_context(
            self._person(body.get("user")),
            _text(body, "thread_ts"),
            _text(body, "context_channel"),
        )
        return _answer(outcome)

    async def _fault(self, request: web.Request) -> web.Response:
        body = await _body(request)
        method = _text(body, "method")
        times = _count(body.get("times"), default=1)
        if body.get("error"):
            self.slack.fail(method, str(body["error"]), times)
        else:
            self.slack.ratelimit(
                method, times, retry_after=_count(body.get("retry_after"), default=1)
            )
        return web.json_response({"ok": True})

    def _person(self, value: Any) -> str:
        user = self.slack.workspace.users.get(str(value or ""))
        if user is None or user.is_bot:
            raise BadRequest(f"no such person: {value!r}")
        return user.id


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Mistakes in a request become a 400 the page can show, never a stack trace."""
    try:
        return await handler(request)
    except BadRequest as e:
        return web.json_response({"ok": False, "detail": str(e)}, status=400)
    except SlackError as e:
        return web.json_response({"ok": False, "detail": e.error}, status=400)
    except LookupError as e:
        return web.json_response({"ok": False, "detail": str(e)}, status=400)


async def _body(request: web.Request) -> JSON:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("send a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object")
    return body


def _text(body: JSON, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"missing {key}")
    return value


def _optional(body: JSON, key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _values(body: JSON) -> dict[str, Any]:
    values = body.get("values") or {}
    if not isinstance(values, dict):
        raise BadRequest("values must be an object")
    return values


def _count(value: Any, *, default: int) -> int:
    try:
        return max(1, min(int(value), 100))
    except (TypeError, ValueError):
        return default


def _answer(outcome: Outcome) -> web.Response:
    return web.json_response(outcome.to_json())

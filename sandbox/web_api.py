"""A local stand-in for Slack's Web API that the real `AsyncWebClient` talks to over HTTP.

Point a client at it with `AsyncWebClient(token=slack.token, base_url=slack.api_url)`. It keeps
the workspace's state, records every call, and misbehaves on demand (rate limits, errors).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import json
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from aiohttp import web

from sandbox import methods
from sandbox.local_server import LocalServer
from sandbox.workspace import (
    DEFAULT_BOT,
    DEFAULT_CHANNELS,
    DEFAULT_USERS,
    JSON,
    Change,
    Channel,
    Message,
    SlackError,
    User,
    View,
    Workspace,
)

__all__ = ["Call", "Change", "Channel", "Message", "SlackStandIn", "User", "View"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[Change], Awaitable[None] | None]
CallWatcher = Callable[["Call"], None]

DEFAULT_TOKEN = "xoxb-0000-baton-sandbox"
# What a proxy or load balancer in front of Slack answers when something is wrong there.
HTML_PAGE = "<html><body><h1>Service temporarily unavailable</h1></body></html>"
# Fields slack_sdk sends as JSON text when a method goes out form-encoded.
JSON_FIELDS = ("blocks", "attachments", "chunks", "view", "metadata", "loading_messages", "prompts")


@dataclass(frozen=True)
class Call:
    """One request the stand-in answered."""

    method: str
    args: JSON
    status: int
    response: JSON
    at: float
    # The token it came with (the Authorization header, or the `token` argument).
    token: str | None = None


@dataclass(frozen=True)
class _Fault:
    error: str
    status: int
    retry_after: int | None = None
    html: bool = False  # an HTML page instead of JSON, as a proxy in front of Slack sends


class Hold:
    """A call kept waiting: `arrived` is set when it comes; `release()` answers it.

    `release(apply=False)` answers 503 without doing anything, like Slack failing before it
    acted; a client that went away meanwhile (its process killed) never sees the answer.
    """

    def __init__(self, method: str, when: Callable[[JSON], bool] | None) -> None:
        self.method = method
        self.when = when
        self.arrived = asyncio.Event()
        self.args: JSON = {}
        self._released = asyncio.Event()
        self.apply = True

    def matches(self, method: str, args: JSON) -> bool:
        return method == self.method and (self.when is None or bool(self.when(args)))

    def release(self, *, apply: bool = True) -> None:
        self.apply = apply
        self._released.set()

    async def wait(self) -> bool:
        await self._released.wait()
        return self.apply


class SlackStandIn(LocalServer):
    """Slack's Web API on 127.0.0.1, backed by an in-memory workspace."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        team_id: str = "T0BATON",
        bot: User = DEFAULT_BOT,
        users: Iterable[User] = DEFAULT_USERS,
        channels: Iterable[Channel] = DEFAULT_CHANNELS,
        stream_ttl: float = 300.0,
        trigger_ttl: float = 3.0,
    ) -> None:
        super().__init__()
        self.token = token
        self.workspace = Workspace(
            team_id=team_id,
            bot=bot,
            users=users,
            channels=channels,
            stream_ttl=stream_ttl,
            trigger_ttl=trigger_ttl,
        )
        self.calls: list[Call] = []
        # OAuth: the app's credentials, more workspaces by their bot tokens, and the codes
        # Slack hands a browser after someone allows an install.
        self.client_id = "0000000000.1111111111"
        self.client_secret = "standin-client-secret"
        self._workspaces: dict[str, Workspace] = {team_id: self.workspace}
        self._tokens: dict[str, str] = {token: team_id}  # token -> team id
        self._codes: dict[str, str] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._faults_everywhere: deque[_Fault] = deque()
        self._holds: list[Hold] = []
        self._held: list[Hold] = []
        self._throttle: int | None = None
        self._listeners: list[Listener] = []
        self._call_watchers: list[CallWatcher] = []

    # lifecycle

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:54321/`."""
        return self.root + "/"

    @property
    def api_url(self) -> str:
        """The Web API base URL, in the form `AsyncWebClient(base_url=...)` expects."""
        return self.url + "api/"

    def web_app(self) -> web.Application:
        """An aiohttp application serving `/api/<method>`, for mounting elsewhere."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/respond/{channel}/{user}", self._respond)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None
    ) -> Self:
        """Listen on `host:port` (port 0 picks a free one)."""
        await super().start(host, port, sock=sock)
        self.workspace.base_url = self.url
        return self

    async def stop(self) -> None:
        for held in self._held:
            held.release(apply=False)  # a stopping server answers what it still holds
        await super().stop()

    # misbehaviour on demand

    def ratelimit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429 and `Retry-After`."""
        self._faults.setdefault(method, deque()).extend(
            [_Fault("ratelimited", 429, retry_after)] * times
        )

    def ratelimit_all(self, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls, whatever the method, with HTTP 429."""
        self._faults_everywhere.extend([_Fault("ratelimited", 429, retry_after)] * times)

    def fail(self, method: str, error: str, times: int = 1, *, status: int = 200) -> None:
        """Answer the next `times` calls of `method` with Slack error `error`."""
        self._faults.setdefault(method, deque()).extend([_Fault(error, status)] * times)

    def html(self, method: str, times: int = 1, *, status: int = 200) -> None:
        """Answer the next `times` calls of `method` with an HTML page instead of JSON."""
        self._faults.setdefault(method, deque()).extend([_Fault("html", status, html=True)] * times)

    def throttle(self, retry_after: int = 4) -> None:
        """Answer every call with HTTP 429 and `Retry-After` until `unthrottle()`."""
        self._throttle = retry_after

    def unthrottle(self) -> None:
        self._throttle = None

    def hold(self, method: str, *, when: Callable[[JSON], bool] | None = None) -> Hold:
        """Keep the next call of `method` (that `when` accepts) waiting until released."""
        held = Hold(method, when)
        self._holds.append(held)
        return held

    # what happened

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of one method, oldest first."""
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str) -> list[Message]:
        """Every message in a channel (replies and ephemeral ones too), in ts order."""
        return self.workspace.all_messages(self.workspace.channel(channel).id)

    def thread(self, channel: str, ts: str) -> list[Message]:
        """A thread's parent (when known) followed by its replies."""
        channel_id = self.workspace.channel(channel).id
        root = self.workspace.thread_root(channel_id, ts) or ts
        return [
            m
            for m in self.workspace.all_messages(channel_id)
            if (m.ts == root or m.thread_ts == root) and m.ephemeral_for is None
        ]

    def snapshot(self) -> JSON:
        """The whole workspace as JSON: people, channels, messages, open views, statuses."""
        return self.workspace.state()

    def open_views(self, user: str) -> list[View]:
        """The modals open for `user`, bottom of the stack first."""
        return self.workspace.open_views(user)

    def status(self, channel: str, thread_ts: str) -> str | None:
        """The assistant status shown under a thread, if any."""
        return self.workspace.statuses.get((self.workspace.channel(channel).id, thread_ts))

    def add_team(self, team_id: str, *, token: str, team_name: str | None = None) -> Workspace:
        """Another workspace, with the same people and channels, reached with its own token."""
        ws = Workspace(
            team_id=team_id,
            team_name=team_name or f"Workspace {team_id}",
            bot=self.workspace.bot,
            users=DEFAULT_USERS,
            channels=DEFAULT_CHANNELS,
        )
        self._workspaces[team_id] = ws
        self._tokens[token] = team_id
        return ws

    def team(self, team_id: str) -> Workspace:
        return self._workspaces[team_id]

    def allow_install(self, team_id: str) -> str:
        """Someone clicked Allow on Slack's install page for `team_id`: the one-use code
        Slack puts in the redirect back to the app."""
        token = next(t for t, team in self._tokens.items() if team == team_id)
        code = f"code-{secrets.token_hex(8)}"
        self._codes[code] = token
        return code

    def revoke(self, team_id: str) -> None:
        """The workspace uninstalled the app: its token stops working."""
        for token in [t for t, team in self._tokens.items() if team == team_id]:
            del self._tokens[token]

    def trigger_id(self, user: str) -> str:
        """A trigger id for `user`, as a click of theirs would carry."""
        return self.workspace.new_trigger_id(user)

    async def post_as_user(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[JSON] | None = None,
    ) -> Message:
        """Leave a message from a person in the workspace (Slack's side of an incoming event)."""
        message = self.workspace.add_user_message(
            channel, user, text, thread_ts=thread_ts, blocks=blocks
        )
        await self.publish()
        return message

    async def respond(
        self, channel: str, user: str, args: JSON, *, via: str = "response_url"
    ) -> tuple[int, JSON]:
        """Show an app's reply to `user`'s command or click, as Slack shows a `response_url` post.

        Ephemeral unless `response_type` is `in_channel`. `via` names the call in `calls`
        (`response_url`, or `command_ack` for a reply in a slash command's HTTP answer).
        """
        args = {**args, "channel": channel}
        if args.get("response_type") == "in_channel":
            name = "chat.postMessage"
        else:
            name, args["user"] = "chat.postEphemeral", user
        try:
            methods.call(self.workspace, name, args)
            status, body = 200, {"ok": True}
        except SlackError as e:
            status, body = 404, e.body()
        self._record(Call(via, args, status, body, time.time()))
        await self.publish()
        return status, body

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain deadline reads better in tests
        *,
        interval: float = 0.01,
    ) -> T:
        """Wait until `predicate()` is truthy, and return what it returned."""
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() >= deadline:
                recent = ", ".join(f"{c.method}->{c.status}" for c in self.calls[-10:])
                raise TimeoutError(f"condition not met within {timeout}s; last calls: {recent}")
            # Polling, not a change signal: stream expiry is a matter of time, not of calls.
            await asyncio.sleep(interval)
        return result

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(change)` on every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def watch_calls(self, watcher: CallWatcher) -> Callable[[], None]:
        """Call `watcher(call)` once each request is answered; returns a function that stops it."""
        self._call_watchers.append(watcher)
        return lambda: self._call_watchers.remove(watcher)

    # HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        try:
            args = await _read_args(request)
        except SlackError as e:
            args, status, body = {}, 200, e.body()
            headers: dict[str, str] = {}
        else:
            token = _bearer(request) or args.pop("token", None)
            args.pop("token", None)
            if name == "oauth.v2.access":
                body = self._oauth_access(request, args)
                call = Call(name, args, 200, body, time.time(), token=None)
                self._record(call)
                return web.json_response(body)
            held = next((h for h in self._holds if h.matches(name, args)), None)
            if held is not None:
                self._holds.remove(held)
                self._held.append(held)
                held.args = args
                held.arrived.set()
                if not await held.wait():
                    body = {"ok": False, "error": "service_unavailable"}
                    self._record(Call(name, args, 503, body, time.time()))
                    return web.json_response(body, status=503)
            status, body, headers = self._answer(name, token, args)
        self._record(Call(name, args, status, body, time.time(), token=token))
        await self.publish()
        if body.get("error") == "html":
            return web.Response(status=status, text=HTML_PAGE, content_type="text/html")
        return web.json_response(body, status=status, headers=headers)

    def response_url(self, channel: str, user: str) -> str:
        """The `response_url` Slack would put in a slash command or click by `user` in `channel`."""
        return f"{self.url}respond/{channel}/{user}"

    async def _respond(self, request: web.Request) -> web.Response:
        """A reply through a `response_url`: ephemeral by default, like Slack's."""
        args = await _read_args(request)
        status, body = await self.respond(
            request.match_info["channel"], request.match_info["user"], args
        )
        return web.json_response(body, status=status)

    def _answer(self, name: str, token: Any, args: JSON) -> tuple[int, JSON, dict[str, str]]:
        if name not in methods.METHODS:
            return 200, {"ok": False, "error": "unknown_method", "req_method": name}, {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        team = self._tokens.get(str(token))
        if team is None:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        ws = self._workspaces[team]
        if self._throttle is not None:
            headers = {"Retry-After": str(self._throttle)}
            return 429, {"ok": False, "error": "ratelimited"}, headers
        fault = self._next_fault(name)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return fault.status, {"ok": False, "error": fault.error}, headers
        try:
            return 200, methods.call(ws, name, args), {}
        except SlackError as e:
            return 200, e.body(), {}

    def _oauth_access(self, request: web.Request, args: JSON) -> JSON:
        """`oauth.v2.access`: the app's credentials and a code it was given, once."""
        client_id, client_secret = _basic(request) or (
            args.get("client_id"),
            args.get("client_secret"),
        )
        if client_id != self.client_id or client_secret != self.client_secret:
            return {"ok": False, "error": "invalid_client_id"}
        token = self._codes.pop(str(args.get("code") or ""), None)
        team = self._tokens.get(token) if token else None
        if token is None or team is None:
            return {"ok": False, "error": "invalid_code"}
        ws = self._workspaces[team]
        return {
            "ok": True,
            "app_id": "A0BATON",
            "authed_user": {"id": "U0ALICE"},
            "scope": "app_mentions:read,chat:write,commands",
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": ws.bot.id,
            "team": {"id": ws.team_id, "name": ws.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _next_fault(self, name: str) -> _Fault | None:
        if self._faults_everywhere:
            return self._faults_everywhere.popleft()
        queue = self._faults.get(name)
        return queue.popleft() if queue else None

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        for watcher in list(self._call_watchers):
            try:
                watcher(call)
            except Exception:
                log.exception("Slack stand-in call watcher failed on %s", call.method)

    async def publish(self) -> None:
        """Hand the workspace's pending changes to the subscribers, oldest first."""
        for change in self.workspace.take_changes():
            for listener in list(self._listeners):
                try:
                    result = listener(change)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    # A broken live view must not break the API the bot is talking to.
                    log.exception("Slack stand-in listener failed on %s", change["type"])


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme == "Bearer" else None


def _basic(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


async def _read_args(request: web.Request) -> JSON:
    """Query parameters and body merged, as Slack reads them, with JSON-text fields decoded."""
    args: JSON = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise SlackError("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackError("invalid_json")
            args.update(body)
        else:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in JSON_FIELDS:
        if isinstance(args.get(key), str):
            # Undecodable text stays text; the method then answers with Slack's format error.
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args

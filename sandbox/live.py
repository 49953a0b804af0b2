"""Live updates for the sandbox page: every change in the stand-in, pushed over a WebSocket.

Each change and each recorded Web API call gets the next sequence number. The page loads
`/api/state` (which carries the number it is current to) and applies only later frames, so
nothing is missed or applied twice however the two race. Each socket belongs to one person
and is sent only what that person may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from sandbox.perspective import call_summary, sees_change
from sandbox.web_api import Call, SlackStandIn
from sandbox.workspace import Change

log = logging.getLogger(__name__)

HEARTBEAT = 20.0


@dataclass(eq=False)
class _Watcher:
    user: str
    socket: web.WebSocketResponse
    frames: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


class LiveHub:
    """Fans the stand-in's changes out to the open pages."""

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        self.seq = 0
        self._watchers: set[_Watcher] = set()
        self._stops = [slack.subscribe(self._on_change), slack.watch_calls(self._on_call)]

    async def close(self) -> None:
        """Stop listening to the stand-in and close the open pages' sockets (they reconnect)."""
        for stop in self._stops:
            stop()
        self._stops = []
        # An open socket would otherwise hold up the server's shutdown.
        for watcher in list(self._watchers):
            await watcher.socket.close(code=WSCloseCode.GOING_AWAY, message=b"sandbox stopping")

    @property
    def watching(self) -> int:
        """How many pages are connected."""
        return len(self._watchers)

    def _on_change(self, change: Change) -> None:
        self.seq += 1
        frame = json.dumps({"seq": self.seq, "change": change})
        for watcher in self._watchers:
            if sees_change(self.slack.workspace, change, watcher.user):
                watcher.frames.put_nowait(frame)

    def _on_call(self, call: Call) -> None:
        self.seq += 1
        frame = json.dumps({"seq": self.seq, "call": call_summary(call)})
        for watcher in self._watchers:
            watcher.frames.put_nowait(frame)

    async def serve(self, request: web.Request, user: str) -> web.WebSocketResponse:
        """One page's socket: frames out until it goes away (what it sends is ignored)."""
        socket = web.WebSocketResponse(heartbeat=HEARTBEAT)
        await socket.prepare(request)
        watcher = _Watcher(user, socket)
        self._watchers.add(watcher)
        sender = asyncio.create_task(self._send(socket, watcher))
        try:
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._watchers.discard(watcher)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return socket

    async def _send(self, socket: web.WebSocketResponse, watcher: _Watcher) -> None:
        while not socket.closed:
            frame = await watcher.frames.get()
            try:
                await socket.send_str(frame)
            except ConnectionError:
                return

"""A local webhook receiver: counts every POST (side effects are counted, never assumed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.local_server import LocalServer


@dataclass(frozen=True)
class Received:
    body: Any
    idempotency_key: str | None
    path: str = "/hook"


class WebhookReceiver(LocalServer):
    """POST /hook (or /hook/<name>) answers 202; `hold()` keeps the next one waiting until
    `release()`."""

    shutdown_timeout = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.arrived = asyncio.Event()
        self._holding = False
        self._released = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{self.root}/hook"

    def hold(self) -> None:
        """The next POST is counted when it arrives, and answered only after `release()`."""
        self._holding, self.arrived = True, asyncio.Event()
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/hook/{name}", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(Received(body, request.headers.get("Idempotency-Key"), request.path))
        self.arrived.set()
        if self._holding:
            self._holding = False
            await self._released.wait()
        return web.json_response({"accepted": True}, status=202)

    async def stop(self) -> None:
        self._released.set()
        await super().stop()

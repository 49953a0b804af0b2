"""The demo shop: a small local service for the sandbox's playbooks to check and deploy to.

`/health` is up, `/payments/health` is down (503), `/metrics` is JSON with a queue depth,
and `/hooks/deploys` is a webhook that remembers every call (see `/` or `/hooks/calls`).
`write_demo_catalog` writes the sandbox's agent catalog pointed at the shop's address.
"""

from __future__ import annotations

import asyncio
import html
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.local_server import LocalServer

CATALOG_TEMPLATE = Path(__file__).with_name("demo_catalog.yml")
PLACEHOLDER = "DEMO_URL"
PYTHON_PLACEHOLDER = "DEMO_PYTHON"

ENDPOINTS = (
    ("GET", "/health", "the shop: up"),
    ("GET", "/payments/health", "payments: down (503)"),
    ("GET", "/metrics", "JSON: queue.depth, errors.rate"),
    ("POST", "/hooks/deploys", "the deploys webhook"),
)


@dataclass(frozen=True)
class HookCall:
    """One request the webhook received."""

    at: float
    path: str
    idempotency_key: str | None
    body: Any
    duplicate: bool


class DemoShop(LocalServer):
    """The demo service on 127.0.0.1; port 0 picks a free port."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[HookCall] = []
        self.queue_depth = 17
        # When set: `/metrics` answers only once this is set (a check that takes a while).
        self.hold_metrics: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """Its address without a trailing slash, e.g. `http://127.0.0.1:54321`."""
        return self.root

    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/health", self._health)
        app.router.add_get("/payments/health", self._payments)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/hooks/{name}", self._hook)
        app.router.add_get("/hooks/calls", self._calls)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Demo shop: all systems operational</body></html>",
            content_type="text/html",
        )

    async def _payments(self, _: web.Request) -> web.Response:
        return web.Response(status=503, text="Payments: database connection refused")

    async def _metrics(self, _: web.Request) -> web.Response:
        if self.hold_metrics is not None:
            await self.hold_metrics.wait()
        return web.json_response(
            {"queue": {"depth": self.queue_depth}, "errors": {"rate": 0.02}, "orders_per_min": 42}
        )

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        key = request.headers.get("Idempotency-Key")
        duplicate = key is not None and any(c.idempotency_key == key for c in self.calls)
        self.calls.append(HookCall(time.time(), request.path, key, body, duplicate))
        if duplicate:
            return web.json_response({"ok": True, "duplicate": True})
        return web.json_response(
            {"ok": True, "deploy": "started", "id": len(self.calls)}, status=202
        )

    async def _calls(self, _: web.Request) -> web.Response:
        return web.json_response([asdict(c) for c in self.calls])

    async def _index(self, _: web.Request) -> web.Response:
        rows = "".join(
            f"<li><code>{method} {html.escape(self.url + path)}</code> — {html.escape(what)}</li>"
            for method, path, what in ENDPOINTS
        )
        calls = "".join(
            f"<li><code>{time.strftime('%H:%M:%S', time.localtime(c.at))} POST {html.escape(c.path)}"
            f"</code> {html.escape(json.dumps(c.body))}{' (duplicate, ignored)' if c.duplicate else ''}</li>"
            for c in self.calls
        )
        page = (
            "<!doctype html><meta charset=utf-8><title>Demo shop</title>"
            "<body style='font-family:sans-serif;max-width:46em;margin:2em auto'>"
            f"<h1>Demo shop</h1><p>What the sandbox's playbooks check:</p><ul>{rows}</ul>"
            f"<h2>Webhook calls received ({len(self.calls)})</h2>"
            f"<ul>{calls or '<li>none yet — approve a deploy in the sandbox</li>'}</ul>"
        )
        return web.Response(text=page, content_type="text/html")


def demo_catalog(base_url: str) -> str:
    """The sandbox's agent catalog, its playbooks aimed at the demo shop at `base_url`."""
    text = CATALOG_TEMPLATE.read_text(encoding="utf-8").replace(PLACEHOLDER, base_url.rstrip("/"))
    # The demo MCP server runs with the Python that runs Baton (JSON quoting is valid YAML).
    return text.replace(PYTHON_PLACEHOLDER, json.dumps(sys.executable))


def write_demo_catalog(directory: Path, base_url: str) -> Path:
    """Write the catalog for the shop at `base_url` into `directory`; returns its path."""
    path = directory / "sandbox-catalog.yml"
    path.write_text(demo_catalog(base_url), encoding="utf-8")
    return path

"""How Slack reaches Baton: Socket Mode, or HTTP on `POST /slack/events` (+ `GET /healthz`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import Baton
from bot.approvals import expire_and_resume
from bot.config import secret
from bot.manifest import EVENTS_PATH
from bot.metrics import metrics_route
from orchestration.engine import interrupted_runs
from storage import stats

log = logging.getLogger(__name__)


async def start_housekeeping(baton: Baton, *, every: float = 30.0) -> None:
    """Start the schedules' clock; resume what a stopped process left mid-way; expire approvals."""
    await baton.scheduler.start()
    baton.housekeeping = baton.background.spawn(
        housekeeping_loop(baton, every=every), name="housekeeping"
    )


async def housekeeping_loop(baton: Baton, *, every: float) -> None:
    """One sweep per interval for the whole process — never a timer per waiting run."""
    while not baton.stopping.is_set():
        try:
            await resume_interrupted(baton)
            await expire_and_resume(baton)
            # Schedules added, paused or deleted by another replica; fires it could not take.
            await baton.scheduler.sync()
        except Exception:
            log.exception("housekeeping sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(baton.stopping.wait(), timeout=every)


async def resume_interrupted(baton: Baton) -> None:
    """Runs whose process died (their lease lapses) are picked up here; live ones are left."""
    for run_id in await interrupted_runs(baton.db):
        baton.background.spawn(baton.orchestrator.execute(run_id), name=f"recover-{run_id}")


def web_app(baton: Baton) -> web.Application:
    """Bolt's aiohttp app (signature checks included), a health check and the metrics."""
    app = baton.app.web_app(path=EVENTS_PATH)
    add_operator_routes(app, baton)
    return app


def add_operator_routes(app: web.Application, baton: Baton) -> None:
    """`GET /healthz` (the database answers) and `GET /metrics` (Prometheus)."""

    async def healthz(_: web.Request) -> web.Response:
        try:
            await stats.reachable(baton.db)
        except Exception as e:
            return web.json_response({"ok": False, "database": str(e)}, status=503)
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_route(baton))


async def serve_operator_routes(baton: Baton, *, host: str = "0.0.0.0", port: int) -> web.AppRunner:
    """`/healthz` and `/metrics` on their own port: Socket Mode serves no HTTP otherwise."""
    app = web.Application()
    add_operator_routes(app, baton)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("Health and metrics on http://%s:%d/healthz and /metrics", host, bound)
    return runner


async def serve_http(baton: Baton, *, host: str = "0.0.0.0", port: int) -> web.AppRunner:
    """Start serving; returns the runner (call `cleanup()` to stop)."""
    runner = web.AppRunner(web_app(baton))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    await start_housekeeping(baton)
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("Baton is listening on http://%s:%d%s", host, bound, EVENTS_PATH)
    return runner


async def serve_socket(baton: Baton) -> AsyncSocketModeHandler:
    handler = AsyncSocketModeHandler(baton.app, secret(baton.settings.slack_app_token))
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await start_housekeeping(baton)
    log.info("Baton is connected to Slack over Socket Mode")
    return handler

"""How Slack reaches Baton: Socket Mode, or HTTP on `POST /slack/events` (+ `GET /healthz`).

Also the housekeeping sweep, one per process: it resumes runs whose process stopped, applies
decisions, expires approvals, delivers the outbox, and handles clicks a stopped process acked
but never handled.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from agents.counters import Metrics
from bot.app import Baton
from bot.approval_clicks import escalate_and_tell, expire_and_resume
from bot.clicks import handle_left_over
from bot.config import secret
from bot.gate import gate
from bot.manifest import EVENTS_PATH
from bot.metrics_endpoint import metrics_route
from bot.request_checks import refuse_malformed
from bot.work import drive, external
from orchestration.engine import runs_to_drive
from storage import inbox, slack_events, stats
from storage.db import is_unavailable

log = logging.getLogger(__name__)

# Seconds between two samples of the event loop's lag.
LAG_SAMPLE = 0.25


async def start_housekeeping(baton: Baton, *, every: float = 30.0, sweep: bool = True) -> None:
    """Start the schedules' clock; resume what a stopped process left mid-way; expire approvals.

    Without `sweep` (a web process whose runs `baton worker` processes drive), none of that
    runs here: the workers keep the schedules and sweep, and this process's event loop is
    left to the acks. A sweep is a dozen statements and tens of milliseconds of CPU; one that
    fell in a burst of requests held every ack behind it.
    """
    if sweep:
        await baton.scheduler.start()
        baton.housekeeping = baton.background.spawn(
            housekeeping_loop(baton, every=every), name="housekeeping"
        )
    if baton.telemetry.metrics is not None:
        baton.background.spawn(watch_loop(baton, baton.telemetry.metrics), name="loop-lag")


async def watch_loop(baton: Baton, metrics: Metrics, *, every: float = LAG_SAMPLE) -> None:
    """Sample how late the event loop runs what is due (`baton_event_loop_lag_seconds`)."""
    loop = asyncio.get_running_loop()
    while not baton.stopping.is_set():
        due = loop.time() + every
        await asyncio.sleep(every)
        metrics.loop_lag.observe(max(loop.time() - due, 0.0))


async def housekeeping_loop(baton: Baton, *, every: float) -> None:
    """One sweep at a time for the whole process — never a timer per waiting run. It comes
    back sooner when it knows something falls due (a lease lapses, a retry is due)."""
    while not baton.stopping.is_set():
        soonest: datetime | None = None
        try:
            soonest = await sweep(baton)
        except Exception as e:
            if is_unavailable(e):
                log.warning("housekeeping: the database is unavailable (%s)", e)
            else:
                log.exception("housekeeping sweep failed")
        wait = every
        if soonest is not None:
            wait = min(every, max((soonest - baton.db.clock()).total_seconds() + 0.05, 0.05))
        waits = [
            asyncio.create_task(baton.stopping.wait()),
            asyncio.create_task(baton.db.clock.sleep(wait)),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)


async def sweep(baton: Baton) -> datetime | None:
    """One pass of housekeeping; returns when the next thing it knows of falls due."""
    due = await resume_interrupted(baton)
    await expire_and_resume(baton)
    await escalate_and_tell(baton)
    next_click = await handle_left_over(baton)
    next_delivery = await baton.deliverer.sweep()
    await slack_events.forget_old(baton.db)
    await inbox.forget_old(baton.db)
    # Schedules added, paused or deleted by another replica; fires it could not take.
    await baton.scheduler.sync()
    times = [t for t in (due, next_click, next_delivery) if t is not None]
    return min(times) if times else None


async def resume_interrupted(baton: Baton) -> datetime | None:
    """Runs whose process stopped (their lease lapsed) and decided gates not yet applied.

    Left to the workers when they drive the runs (`BATON_WORKERS=external`)."""
    if external(baton):
        return None
    found = await runs_to_drive(baton.db)
    for run_id in found.run_ids:
        if not baton.orchestrator.driving(run_id):
            baton.background.spawn(drive(baton, run_id), name=f"recover-{run_id}")
    return found.next_check


def web_app(baton: Baton) -> web.Application:
    """Bolt's aiohttp app (signature checks included), a health check and the metrics."""
    app = baton.app.web_app(path=EVENTS_PATH)
    app.middlewares.append(refuse_malformed)
    app.middlewares.append(gate(baton))  # after the checks: `/baton` and mentions, taken in
    add_operator_routes(app, baton)
    return app


def add_operator_routes(app: web.Application, baton: Baton) -> None:
    """`GET /healthz` (the database answers) and `GET /metrics` (Prometheus)."""

    async def healthz(_: web.Request) -> web.Response:
        try:
            await stats.reachable(baton.db)
        except Exception as e:
            # The reason is for the operator's log; the caller (unauthenticated) learns only
            # that Baton is not healthy: no driver text, host or database name.
            log.warning("health check: the database is not reachable (%s)", type(e).__name__)
            return web.json_response({"ok": False}, status=503)
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
    await start_housekeeping(baton, sweep=not external(baton))
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("Baton is listening on http://%s:%d%s", host, bound, EVENTS_PATH)
    return runner


async def serve_socket(baton: Baton) -> AsyncSocketModeHandler:
    handler = AsyncSocketModeHandler(baton.app, secret(baton.settings.slack_app_token))
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await start_housekeeping(baton, sweep=not external(baton))
    log.info("Baton is connected to Slack over Socket Mode")
    return handler

"""Schedule fires claimed by two replicas at once: each fire must start exactly one run."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bench.figures import pct
from orchestration.scheduler import Fired, Scheduler
from storage import Database, schedules
from storage.db import utcnow
from storage.models import Schedule
from testkit.databases import fresh_pg_database

SCHEDULES = 40


async def fire_race() -> list[tuple[str, str, str]]:
    """40 schedules fall due together; two schedulers (as two replicas) tick each at once."""
    async with fresh_pg_database() as url:
        db = Database(url)
        await db.create_all()
        due_since = utcnow() - timedelta(seconds=61)
        made = [
            await schedules.create(
                db,
                Schedule(
                    id=schedules.new_schedule_id(),
                    created_at=due_since,
                    channel_id="C0GENERAL",
                    when_text="every 1m",
                    kind="interval",
                    interval_seconds=60,
                    request="check https://example.com",
                ),
            )
            for _ in range(SCHEDULES)
        ]

        def hand_over(run_id: str, *, name: str) -> None:
            """The runs are only counted here, never driven."""

        replicas = [
            Scheduler(db, hand_over, grace=timedelta(minutes=5), owner=f"replica-{i}")
            for i in range(2)
        ]
        timings: list[float] = []

        async def tick(scheduler: Scheduler, schedule_id: str) -> bool:
            t0 = time.perf_counter()
            result = await scheduler.tick(schedule_id)
            timings.append((time.perf_counter() - t0) * 1000)
            return result is not None and result.fired == Fired.STARTED

        started = await asyncio.gather(*(tick(r, s.id) for s in made for r in replicas))
        fires = [f for s in made for f in await schedules.recent_fires(db, s.id)]
        await db.dispose()
    per_fire = {len([f for f in fires if f.schedule_id == s.id]) for s in made}
    return [
        (
            f"schedule fires, {SCHEDULES} due × 2 replicas (PostgreSQL)",
            "runs started · rows per fire · p50 / p95 tick",
            f"{sum(started)} · {sorted(per_fire)} · "
            f"{pct(timings, 0.5):.1f} / {pct(timings, 0.95):.1f} ms",
        )
    ]

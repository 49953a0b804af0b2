"""A quorum under load: many approvals of one gate at once, some people clicking repeatedly.
Each person must count once, and the gate must be decided exactly once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bench.figures import pct
from storage import Database, approvals, run_states, runs
from storage.db import utcnow
from storage.models import Approval, ApprovalStatus, Run, TaskRow
from testkit.databases import fresh_pg_database

PEOPLE = 10
CLICKS_EACH = 5
QUORUM = 5


async def quorum_race() -> list[tuple[str, str, str]]:
    """50 approvals (10 people, 5 clicks each) at once on a quorum-5 gate in PostgreSQL."""
    async with fresh_pg_database() as url:
        db = Database(url)
        await db.create_all()
        run = await runs.create_run(db, Run(id=runs.new_id(), request="x"))
        assert run is not None
        await run_states.run_started(
            db, run.id, driver="bench", deadline_at=utcnow(), budget_usd=None
        )
        await run_states.plan_ready(
            db, run.id, {}, [TaskRow(run_id=run.id, task_id="t", agent="a", instruction="i")]
        )
        approval = await approvals.create(
            db,
            Approval(
                id=approvals.new_approval_id(),
                run_id=run.id,
                task_id="t",
                kind="tool",
                expires_at=utcnow() + timedelta(hours=1),
                quorum=QUORUM,
            ),
            task_fields={},
        )
        timings: list[float] = []

        async def click(i: int) -> bool:
            t0 = time.perf_counter()
            result = await approvals.decide(db, approval.id, approve=True, by=f"U{i % PEOPLE}")
            timings.append((time.perf_counter() - t0) * 1000)
            return bool(result and result.won)

        wins = await asyncio.gather(*(click(i) for i in range(PEOPLE * CLICKS_EACH)))
        voters = await approvals.votes(db, approval.id)
        final = await approvals.get(db, approval.id)
        await db.dispose()
    decided = final is not None and final.status == ApprovalStatus.APPROVED
    return [
        (
            f"quorum race, {PEOPLE * CLICKS_EACH} approvals by {PEOPLE} people (PostgreSQL)",
            "decisions · votes · p50/p95 click",
            f"{sum(wins)}{'' if decided else ' (undecided!)'} · {len(voters)} · "
            f"{pct(timings, 0.5):.1f}/{pct(timings, 0.95):.1f} ms",
        )
    ]

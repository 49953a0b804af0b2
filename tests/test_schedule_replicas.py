"""Two Baton processes on one PostgreSQL database: each fire of a schedule runs exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

from sqlmodel import col, select

from sandbox.web_api import SlackStandIn
from storage import schedules
from storage.db import Database, utcnow
from storage.models import (
    AlertMode,
    Delivery,
    DeliveryPurpose,
    DeliveryState,
    FireOutcome,
    Run,
    Schedule,
)
from testkit.databases import Site
from tests.test_approval_restart import baton_process
from tests.test_schedules import CHANNEL, digests, settled

CATALOG = Path(__file__).resolve().parents[1] / "agents" / "catalog.yml"


async def test_two_replicas_fire_each_time_once(pg_url: str, site: Site, tmp_path: Path) -> None:
    db = Database(pg_url)
    await db.create_all()
    made = await schedules.create(
        db,
        Schedule(
            id=schedules.new_schedule_id(),
            created_at=utcnow(),
            created_by="U0ALICE",
            team_id="T0BATON",
            channel_id=CHANNEL,
            when_text="every 1s",
            kind="interval",
            interval_seconds=1,
            request=f"check {site.url('/ok')}",
            alert=AlertMode.ALWAYS,
        ),
    )
    env = {"BATON_HTTP_ALLOW_HOSTS": "127.0.0.1"}
    try:
        async with SlackStandIn() as slack:
            async with (
                baton_process(slack, pg_url, CATALOG, tmp_path, env),
                baton_process(slack, pg_url, CATALOG, tmp_path, env),
            ):
                # Both replicas run until three fires have finished (whoever took them).
                await settled(db, made.id, 3)
            every = list(reversed(await schedules.recent_fires(db, made.id, limit=500)))
            async with db.session() as s:
                made_runs = (await s.exec(select(Run).where(Run.schedule_id == made.id))).all()
                waiting = (
                    await s.exec(
                        select(Delivery).where(
                            Delivery.purpose == DeliveryPurpose.DIGEST,
                            Delivery.state == DeliveryState.PENDING,
                            col(Delivery.run_id).in_([r.id for r in made_runs]),
                        )
                    )
                ).all()
            posted = digests(slack)

        started = [f for f in every if f.outcome == FireOutcome.STARTED]
        assert len(started) >= 3
        # One row per fire time (the unique key), one run per started fire, nothing lost.
        assert not [t for t, n in Counter(f.fire_time for f in every).items() if n > 1]
        assert sorted(r.id for r in made_runs) == sorted(str(f.run_id) for f in started)
        assert all(
            b.fire_time - a.fire_time == timedelta(seconds=1 + b.missed_before)
            for a, b in pairwise(every)
        )
        # Every finished run posted one digest, or left it in the outbox for the next process
        # when the replicas stopped; a run cut short posted none. A row stopped while its post
        # was under way is in doubt: its digest may be in Slack, and the next process looks
        # for it there before posting (`Deliverer`), so it counts either way.
        finished = [r for r in made_runs if r.finished_at is not None]
        unposted = [d for d in waiting if not d.posted]  # a row may stop after its digest
        sure = [d for d in unposted if not d.in_doubt]
        assert len(posted) + len(sure) <= len(finished) <= len(posted) + len(unposted)
        assert len(finished) >= sum(1 for f in every if f.settled)
        assert len({m.ts for m in posted}) == len(posted)
    finally:
        await db.dispose()

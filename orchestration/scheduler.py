"""Schedules start runs: APScheduler keeps the time, the database decides.

APScheduler (3.x, inside the bot's process) holds one job per active schedule and wakes
`tick(schedule_id)` at its fire times. A tick reads the schedule and its last claimed fire
from the database and works out which fire times are due by the database's clock (which
tests move), so a restart or a second replica neither loses nor invents a fire:

- the latest due fire is claimed by inserting its row (unique schedule id + fire time):
  of several processes waking for it, exactly one wins;
- due fires older than the grace period are recorded as missed, never run in a burst;
- a fire that finds the schedule's previous run still going is recorded as skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from orchestration.when import fire_times, trigger, when_of, zone
from storage import runs, schedules
from storage.db import Database
from storage.models import FireOutcome, Run, RunSource, Schedule, ScheduleFire

log = logging.getLogger(__name__)


class HandOver(Protocol):
    """Drives a stored run from here on, in the background (the bot's: in this process or
    by a worker); it returns at once."""

    def __call__(self, run_id: str, *, name: str) -> None: ...


class Fired(StrEnum):
    STARTED = "started"
    MISSED = "missed"
    BUSY = "busy"  # the previous run was still going: skipped


@dataclass(frozen=True)
class FireResult:
    fired: Fired
    fire: ScheduleFire
    run_id: str | None = None


class Scheduler:
    """The in-process clock for every active schedule in the database."""

    def __init__(
        self, db: Database, hand_over: HandOver, *, grace: timedelta, owner: str = "baton"
    ) -> None:
        self.db = db
        self.hand_over = hand_over
        self.grace = grace
        self.owner = owner
        self._aps = AsyncIOScheduler(timezone="UTC")
        self._jobs: dict[str, tuple[object, ...]] = {}

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    async def start(self) -> None:
        """Start the clock, load every schedule, and run what fell due while Baton was down."""
        if not self._aps.running:
            self._aps.start()
        await self.sync()

    def stop(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)
        self._jobs.clear()

    async def sync(self) -> None:
        """Mirror the schedules table (other replicas change it too), then catch up."""
        active = await schedules.active(self.db)
        for gone in set(self._jobs) - {s.id for s in active}:
            self.forget(gone)
        for schedule in active:
            self.watch(schedule)
            await self.tick(schedule.id)

    def watch(self, schedule: Schedule) -> None:
        """Add or replace the schedule's job (a no-op when it is unchanged)."""
        key = (schedule.kind, schedule.cron, schedule.interval_seconds, schedule.timezone)
        if self._jobs.get(schedule.id) == key or not self._aps.running:
            return
        self._aps.add_job(
            self.tick,
            trigger(when_of(schedule), zone(schedule.timezone), anchor=schedule.created_at),
            args=[schedule.id],
            id=schedule.id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            # The tick decides about lateness itself (from the database), so never drop one.
            misfire_grace_time=None,
        )
        self._jobs[schedule.id] = key

    def forget(self, schedule_id: str) -> None:
        if self._jobs.pop(schedule_id, None) is not None and self._aps.get_job(schedule_id):
            self._aps.remove_job(schedule_id)

    async def tick(self, schedule_id: str) -> FireResult | None:
        """Fire what is due for this schedule. Safe to call any time, from any process."""
        try:
            return await self._tick(schedule_id)
        except Exception:
            log.exception("schedule %s: tick failed", schedule_id)
            return None

    async def _tick(self, schedule_id: str) -> FireResult | None:
        schedule = await schedules.get(self.db, schedule_id)
        if schedule is None or schedule.paused:
            self.forget(schedule_id)
            return None
        now = self.db.clock()
        last = await schedules.last_fire_time(self.db, schedule_id) or schedule.created_at
        due = fire_times(
            when_of(schedule),
            zone(schedule.timezone),
            anchor=schedule.created_at,
            after=last,
            until=now,
        )
        if not due:
            return None
        latest, earlier = due[-1], len(due) - 1
        if now - latest > self.grace:
            missed = await schedules.claim(
                self.db, self._fire(schedule, latest, FireOutcome.MISSED, missed_before=earlier)
            )
            if missed is not None:
                log.info("schedule %s: %d fire(s) missed, none run", schedule_id, len(due))
                return FireResult(Fired.MISSED, missed)
            return None
        fire = await schedules.claim(
            self.db, self._fire(schedule, latest, FireOutcome.STARTED, missed_before=earlier)
        )
        if fire is None:
            return None  # another process (or an earlier tick) has it
        return await self._start(schedule, fire)

    async def run_now(self, schedule: Schedule, *, user_id: str | None) -> FireResult | None:
        """`/baton schedule run`: one fire now, outside the schedule's own times."""
        fire = self._fire(schedule, self.db.clock(), FireOutcome.STARTED, manual=True)
        fire.claimed_by = user_id or self.owner
        claimed = await schedules.claim(self.db, fire)
        if claimed is None:
            return None
        return await self._start(schedule, claimed)

    async def _start(self, schedule: Schedule, fire: ScheduleFire) -> FireResult:
        assert fire.id is not None
        busy = await self._running_run(schedule.id, fire.id)
        if busy is not None:
            await schedules.update_fire(self.db, fire.id, outcome=FireOutcome.SKIPPED_BUSY)
            fire.outcome = FireOutcome.SKIPPED_BUSY
            log.info("schedule %s: run %s still going, fire skipped", schedule.id, busy)
            return FireResult(Fired.BUSY, fire, run_id=busy)
        run_id = await launch(self.db, schedule, fire)
        self.hand_over(run_id, name=f"schedule-{run_id}")
        fire.run_id = run_id
        return FireResult(Fired.STARTED, fire, run_id=run_id)

    async def _running_run(self, schedule_id: str, this_fire: int) -> str | None:
        """The schedule's previous run, if it has not finished."""
        for fire in await schedules.recent_fires(self.db, schedule_id, limit=10):
            if fire.id == this_fire or not schedules.started(fire):
                continue
            assert fire.run_id is not None
            run = await runs.get_run(self.db, fire.run_id)
            return fire.run_id if run is not None and not run.status.is_final else None
        return None

    def _fire(
        self,
        schedule: Schedule,
        at: datetime,
        outcome: FireOutcome,
        *,
        missed_before: int = 0,
        manual: bool = False,
    ) -> ScheduleFire:
        return ScheduleFire(
            schedule_id=schedule.id,
            fire_time=at,
            manual=manual,
            outcome=outcome,
            missed_before=missed_before,
            claimed_by=self.owner,
        )


async def launch(db: Database, schedule: Schedule, fire: ScheduleFire) -> str:
    """Store the run for a claimed fire, as a request typed in Slack would be; its id."""
    assert fire.id is not None
    run = Run(
        id=runs.new_id(),
        source=RunSource.SCHEDULE,
        request=schedule.request,
        playbook=schedule.playbook,
        team_id=schedule.team_id,
        channel_id=schedule.channel_id,
        user_id=schedule.created_by,
        schedule_id=schedule.id,
    )
    await schedules.start_run(db, fire.id, run)
    return run.id

"""Who drives a run once it is stored: this process, or a `baton worker`.

With `BATON_WORKERS=inline` (the default) the process that took the request drives it, so one
command does everything. With `external`, the receiving process stores, acks and hands over:
it only wakes the workers (`storage.queue.notify`), and each `Worker` claims runs nobody
drives (`FOR UPDATE SKIP LOCKED` on PostgreSQL) up to its capacity and drives them under the
claimed leases. A worker that dies stops renewing its leases; they lapse, and another worker
claims those runs and finishes them (finished tasks are not run again, side effects are
claimed under idempotency keys).

Each worker records itself in the `workers` table (`storage/workers.py`) when it starts, beats
every few seconds with the count of runs it drives, and removes its row when it stops
cleanly: `baton doctor` and `/metrics` show the live ones, and flag those whose beat is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from bot.background import Background
from bot.text import truncate
from orchestration.driving import Beat, let_go, pause
from storage import outbox, queue, runs, workers
from storage.db import Database, is_unavailable, utcnow
from storage.models import DeliveryPurpose, Run, RunSource, WorkerRow
from storage.runs import Lease

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

# Without notifications (SQLite), a worker looks for work this often.
SQLITE_POLL_SECONDS = 0.5
# Runs a worker claims at a time (it looks again at once while there are more).
CLAIM_BATCH = 10
# A worker that hears of new runs claims once the wake-ups have paused for BURST_QUIET
# seconds, or BURST_MOST after the first: during a burst of requests the web process's acks
# get the CPU and the database first, and the burst is claimed in a few statements after.
BURST_QUIET = 0.02
BURST_MOST = 0.25
# A slash command's request is shown in its channel up to this many characters.
REQUEST_SHOWN_MOST = 2500


def external(baton: Baton) -> bool:
    """Whether runs are driven by `baton worker` processes rather than this one."""
    return baton.settings.baton_workers == "external"


async def hand_over(baton: Baton, run_id: str, *, woken: bool = False) -> None:
    """After the ack: drive the run here; otherwise wake the workers, who take it, unless
    the write that stored it `woken` them already (a group of new runs, `storage.new_runs`).
    A run stored by a process that stops before waking them is found at their next look."""
    if external(baton):
        if not woken:
            await baton.wake_workers()
    else:
        await drive(baton, run_id)


def handed_over(baton: Baton, *, woken: bool) -> bool:
    """Whether `hand_over` has nothing to do: the workers were told of the run as it was
    stored."""
    return woken and external(baton)


class Waker:
    """Wakes the workers, coalescing a burst: while one NOTIFY is on its way, the requests
    that come meanwhile share the one sent after it (a worker claims every run stored by then)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sending: asyncio.Task[None] | None = None
        self._again = False

    async def __call__(self) -> None:
        if self._sending is not None and not self._sending.done():
            self._again = True
            return
        self._sending = asyncio.create_task(self._send())
        await asyncio.shield(self._sending)

    async def _send(self) -> None:
        while True:
            self._again = False
            try:
                await queue.notify(self.db)
            except Exception as e:
                # The runs are stored: a worker finds them when it next looks.
                log.warning("could not wake the workers (%s)", e)
            if not self._again:
                return


class Later:
    """Continues a run that has its thread already (a decision, an expiry, a nudge, a
    schedule's fire): in the background here, or by a worker. The schedules' `HandOver`."""

    def __init__(
        self,
        background: Background,
        *,
        execute: Callable[[str], Coroutine[Any, Any, None]],
        wake_workers: Callable[[], Coroutine[Any, Any, None]],
        external: bool,
    ) -> None:
        self.background = background
        self.execute = execute
        self.wake_workers = wake_workers
        self.external = external

    def __call__(self, run_id: str, *, name: str) -> None:
        if self.external:
            self.background.spawn(self.wake_workers(), name=name)
        else:
            self.background.spawn(self.execute(run_id), name=name)


def hand_over_later(baton: Baton, run_id: str, *, name: str) -> None:
    """Continue a run that has its thread already: in the background here, or by a worker."""
    baton.later(run_id, name=name)


async def drive(baton: Baton, run_id: str) -> None:
    """Drive a run from Slack; a slash command's run first needs its request in the channel."""
    if await _with_thread(baton, run_id) is not None:
        await baton.orchestrator.execute(run_id)


async def drive_claimed(baton: Baton, lease: Lease, run: Run) -> None:
    """Drive a run a worker claimed, under the claimed lease (`run`: its row as claimed)."""
    with_thread = await _with_thread(baton, lease.run_id, lease, run)
    if with_thread is not None:
        await baton.orchestrator.execute_claimed(lease, with_thread)


async def _with_thread(
    baton: Baton, run_id: str, lease: Lease | None = None, run: Run | None = None
) -> Run | None:
    """The run as stored (`run`, when it was read under `lease`), once it has its thread: a
    slash command's request is posted first. None when it is gone, or Slack did not take
    the request yet (the outbox tries again when it is due, and the lease, if one is held,
    is let go) or refused it."""
    if run is None:
        run = await runs.get_run(baton.db, run_id)
    if run is None or not needs_thread(run):
        return run
    if lease is None:
        await post_request(baton, run)
    else:
        limits = baton.orchestrator.limits
        beat = Beat(functools.partial(keep_lease, lease, baton, limits.heartbeat_seconds))
        try:
            await post_request(baton, run, lease_held=True)
        finally:
            await beat.stop()
    run = await runs.get_run(baton.db, run_id)
    if run is not None and run.thread_ts:
        return run
    if lease is not None:
        await let_go(baton.db, lease)
    return None


def needs_thread(run: Run) -> bool:
    """A slash command's run whose request has not been posted yet to open its thread."""
    return run.source == RunSource.COMMAND and not run.thread_ts and not run.status.is_final


async def post_request(baton: Baton, run: Run, *, lease_held: bool = False) -> None:
    """Post a slash command's request in its channel, making the thread its run answers in.

    The request message is added to the outbox here, by whoever drives the run first, not
    before the command's ack: the ack waits only for the run itself. Added once (a driver
    that stopped part-way left it there already), and posted once (the outbox's rules).
    """
    shown = f"run `{run.playbook}` {run.request}".strip() if run.playbook else run.request
    request = outbox.new(
        run.id,
        DeliveryPurpose.REQUEST,
        data={
            "text": f"<@{run.user_id}> asked: {truncate(shown, REQUEST_SHOWN_MOST)}",
            "response_url": run.response_url,
        },
    )
    await outbox.add_once(baton.db, request)
    await baton.deliverer.deliver_run(run.id, lease_held=lease_held)


async def keep_lease(lease: Lease, baton: Baton, every: float, stop: asyncio.Event) -> None:
    """Renew a deliverer's lease while it posts (it may wait out Slack's rate limits)."""
    while not await pause(stop, every):
        with contextlib.suppress(Exception):
            await runs.renew_lease(baton.db, lease, seconds=baton.orchestrator.limits.lease_seconds)


def burst_wait(now: float, heard_at: float, first: float) -> float:
    """How long a worker about to claim at `now` waits first: until BURST_QUIET after the
    last wake-up it heard (`heard_at`), and no later than BURST_MOST after `first`, when it
    began to wait. 0: claim now."""
    return max(0.0, min(heard_at + BURST_QUIET, first + BURST_MOST) - now)


class Worker:
    """Claims runs nobody drives and drives them, up to `capacity` at once."""

    def __init__(
        self, baton: Baton, *, capacity: int, beat_seconds: float = workers.BEAT_SECONDS
    ) -> None:
        self.baton = baton
        self.capacity = capacity
        self.beat_seconds = beat_seconds
        self.wake = asyncio.Event()
        self._claims = queue.Claims(baton.orchestrator.owner)
        self._drives: set[asyncio.Task[None]] = set()

    @property
    def poll_seconds(self) -> float:
        """How long to wait without a notification: leases lapse without one."""
        if self.baton.db.is_sqlite:
            return SQLITE_POLL_SECONDS
        return min(self.baton.orchestrator.limits.lease_seconds, 10.0)

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and drive until `stopping` is set; then the drives are left to the caller
        (`Baton.close` cancels them, which hands their steps to the next driver)."""
        db, limits = self.baton.db, self.baton.orchestrator.limits
        listener = None if db.is_sqlite else queue.Listener(db, self.wake)
        heartbeat = asyncio.create_task(self._heartbeat(), name="worker-heartbeat")
        try:
            while not stopping.is_set():
                if listener is not None and not listener.listening:
                    await listener.start()
                self.wake.clear()
                room = min(self.capacity - len(self._drives), CLAIM_BATCH)
                if room > 0:
                    try:
                        claimed = await self._claims.claim(
                            db, limit=room, seconds=limits.lease_seconds
                        )
                    except Exception as e:
                        claimed = []
                        if is_unavailable(e):
                            log.warning("worker: the database is unavailable (%s)", e)
                        else:
                            log.exception("worker: could not claim runs")
                    for one in claimed:
                        self._start(one)
                    if len(claimed) == room:
                        # There may be more: look again once the runs just taken have made
                        # their first step. A worker busy with its own claims slower, so a
                        # burst spreads over the workers instead of filling the first awake.
                        await asyncio.sleep(0)
                        continue
                await self._pause(stopping)
                if listener is not None:
                    # Woken: let a burst pass, then claim its runs without waiting again.
                    await self._let_burst_pass(listener, stopping)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self._leave()
            if listener is not None:
                await listener.close()

    @property
    def id(self) -> str:
        """The name this worker drives runs under (host:pid:…), and its row's id."""
        return self.baton.orchestrator.owner

    async def _heartbeat(self) -> None:
        """Record this worker, then renew its beat every `beat_seconds` until cancelled."""
        started, joined = utcnow(), False
        while True:
            try:
                if joined:
                    joined = await workers.beat(
                        self.baton.db, self.id, runs_driving=len(self._drives)
                    )
                if not joined:  # the first beat, or its row was removed meanwhile
                    row = WorkerRow(
                        id=self.id,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        started_at=started,
                        runs_driving=len(self._drives),
                    )
                    await workers.join(self.baton.db, row)
                    joined = True
            except Exception as e:
                # The beat is for operators; the runs go on (the next beat tries again).
                log.warning("worker: could not record its heartbeat (%s)", type(e).__name__)
            await asyncio.sleep(self.beat_seconds)

    async def _leave(self) -> None:
        try:
            await workers.leave(self.baton.db, self.id)
        except Exception as e:
            # Its row goes stale instead, as a killed worker's does.
            log.warning("worker: could not remove its row (%s)", type(e).__name__)

    def _start(self, claimed: runs.Claimed) -> None:
        task = self.baton.background.spawn(
            drive_claimed(self.baton, claimed.lease, claimed.run),
            name=f"work-{claimed.lease.run_id}",
        )
        self._drives.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._drives.discard(task)
        self.wake.set()  # room for another run

    async def _let_burst_pass(self, listener: queue.Listener, stopping: asyncio.Event) -> None:
        """Wait while wake-ups keep coming (`burst_wait`)."""
        loop = asyncio.get_running_loop()
        first = loop.time()
        while (wait := burst_wait(loop.time(), listener.heard_at, first)) > 0:
            if await pause(stopping, wait):
                return

    async def _pause(self, stopping: asyncio.Event) -> None:
        waits = [asyncio.create_task(stopping.wait()), asyncio.create_task(self.wake.wait())]
        try:
            await asyncio.wait(
                waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

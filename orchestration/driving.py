"""One driver per run: a lease per drive, a heartbeat that keeps it, and why a drive stopped.

`Orchestrator.execute` may be called for one run from many places at once (a click, the
sweep, a Stop, another replica). Each call nudges the run, then tries to take its lease under
a token of its own: exactly one wins and drives; the others leave, and the winner — seeing
the nudge when it lets go — looks at the run again. The lease lives in the database, so the
same rule holds across processes (a worker process takes runs the same way).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestration.limits import Limits
from storage import runs
from storage.db import Database, is_unavailable
from storage.runs import Lease, Released

log = logging.getLogger(__name__)


class StopReason(StrEnum):
    PERSON = "person"  # someone asked to stop the run
    LEASE_LOST = "lease_lost"  # the lease lapsed (the database was unreachable too long)
    SHUTDOWN = "shutdown"  # this process is stopping


class Tokens:
    """Lease tokens: this process's name and a counter, unique for every drive."""

    def __init__(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._count = itertools.count(1)

    def next(self) -> str:
        """A token no other drive has."""
        return f"{self.owner}:{next(self._count)}"


@dataclass
class Drive:
    """One drive of one run in this process."""

    lease: Lease
    work: asyncio.Task[None]
    reason: StopReason | None = None
    stopped_by: str | None = None
    renewed_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def stop(self, reason: StopReason, by: str | None = None) -> None:
        """Cancel the work; the first reason given is the one acted on."""
        if self.reason is None:
            self.reason, self.stopped_by = reason, by
        self.work.cancel()


class Beat:
    """A loop that renews a lease until told to stop — between two renewals, never in the
    middle of one (a renewal cut off mid-query would leave its connection to clean up)."""

    def __init__(self, beat: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(beat(self._stop))

    async def stop(self, *, patience: float = 10.0) -> None:
        """Stop after the renewal in progress, if any; cancel only if it does not end."""
        self._stop.set()
        done, _ = await asyncio.wait([self._task], timeout=patience)
        if not done:
            await stopped(self._task)


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`; True when told to stop meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


class LeaseKeeper:
    """One heartbeat for every drive in this process: each beat renews all their leases at
    once, and stops a drive whose lease was lost or whose run someone asked to stop.

    A beat per drive would cost a worker holding 800 runs (each waiting on a model) 800
    transactions every few seconds, on the cores its acks and runs need.
    """

    def __init__(self, db: Database, limits: Limits) -> None:
        self.db, self.limits = db, limits
        self._drives: dict[str, Drive] = {}  # by lease token
        self._loop: asyncio.Task[None] | None = None
        self._renewing = False

    def keep(self, drive: Drive) -> None:
        """Renew the drive's lease from the next beat until `release`."""
        self._drives[drive.lease.token] = drive
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._beats(), name="lease-keeper")

    def release(self, drive: Drive) -> None:
        """The drive has ended: its lease is no longer renewed. The last one out stops the
        beats — between two renewals, never in the middle of one (a renewal cut off
        mid-query would leave its connection to clean up)."""
        self._drives.pop(drive.lease.token, None)
        if not self._drives and self._loop is not None and not self._renewing:
            self._loop.cancel()

    async def _beats(self) -> None:
        while self._drives:
            await asyncio.sleep(self.limits.heartbeat_seconds)
            self._renewing = True
            try:
                await self.beat()
            finally:
                self._renewing = False

    async def beat(self) -> None:
        """Renew every lease held; act on what the answer says."""
        drives = list(self._drives.values())
        if not drives:
            return
        now = asyncio.get_running_loop().time()
        try:
            checks = await runs.renew_leases(
                self.db, [d.lease for d in drives], seconds=self.limits.lease_seconds
            )
        except Exception as e:
            if not is_unavailable(e):
                log.exception("could not renew the leases of %d runs", len(drives))
            for drive in drives:
                if now - drive.renewed_at >= self.limits.lease_seconds:
                    # Another process may take the run over now: this one must not write to it.
                    drive.stop(StopReason.LEASE_LOST)
            return
        for drive in drives:
            check = checks.get(drive.lease.token)
            if check is None:
                drive.stop(StopReason.LEASE_LOST)
            elif check.cancel_requested_by:
                drive.stop(StopReason.PERSON, check.cancel_requested_by)
            else:
                drive.renewed_at = now


async def let_go(db: Database, lease: Lease) -> Released:
    """Release the lease: whether the run was nudged meanwhile, and its follower once it has
    ended (`runs.release_lease`). Never raises: a lease that cannot be released lapses, and
    the sweep takes the run (and any follower) up again."""
    try:
        return await runs.release_lease(db, lease)
    except Exception as e:
        if not is_unavailable(e):
            log.exception("run %s: could not release its lease", lease.run_id)
        return Released(nudged=False, follower=None)


async def stopped(task: asyncio.Task[None]) -> None:
    """Cancel a helper task and wait until it has really ended."""
    task.cancel()
    await asyncio.wait([task])


def leaves(error: BaseException) -> list[BaseException]:
    """The plain exceptions inside (possibly nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in leaves(e)]
    return [error]

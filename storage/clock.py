"""What time it is, and waiting for time to pass: one seam every layer reads time through.

A `Clock` is called for now (zone-aware UTC, as every stored time is) and is awaited to
sleep. Baton runs on `REAL`; a test hands in a `MovedClock` and moves it on, so an approval
expires, an escalation or a retry falls due without anyone waiting for it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> datetime:
        """Now, in UTC, with its zone."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...


class RealClock:
    """The machine's time; `asyncio.sleep` waits."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


REAL: Clock = RealClock()


class MovedClock:
    """The real clock, moved on by however much a test says; sleepers wake when their time
    comes either way.

    It never stands still: rows stamped with the machine's time (as much of storage does)
    stay in this clock's past.
    """

    def __init__(self) -> None:
        self.ahead = timedelta(0)
        self._moved: set[asyncio.Future[None]] = set()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    async def sleep(self, seconds: float) -> None:
        until = self() + timedelta(seconds=seconds)
        while (left := (until - self()).total_seconds()) > 0:
            moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._moved.add(moved)
            try:
                await asyncio.wait([moved], timeout=left)
            finally:
                self._moved.discard(moved)
        await asyncio.sleep(0)

    def move(self, by: timedelta) -> None:
        """Move on by `by`, waking every sleeper whose time has come."""
        self.ahead += by
        for moved in self._moved:
            if not moved.done():
                moved.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many are asleep on this clock now (a test waits for them before moving it)."""
        return sum(1 for moved in self._moved if not moved.done())

"""The clock every part reads time through: the real one, and the one tests move."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from storage.clock import REAL, MovedClock
from testkit.harness import wait_until


def test_the_real_clock_tells_utc_with_its_zone() -> None:
    before = datetime.now(UTC)
    now = REAL()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)


async def test_a_sleep_on_a_moved_clock_ends_once_the_clock_passes_its_time() -> None:
    clock = MovedClock()
    sleeper = asyncio.create_task(clock.sleep(3600))
    await wait_until(lambda: clock.sleepers == 1)

    clock.move(timedelta(minutes=59))
    await wait_until(lambda: clock.sleepers == 1)  # woken, it found its hour not over
    assert not sleeper.done()

    clock.move(timedelta(minutes=1))
    await asyncio.wait_for(sleeper, timeout=10)
    assert clock.sleepers == 0


def test_a_moved_clock_keeps_going_with_real_time_from_where_it_was_moved() -> None:
    clock = MovedClock()
    clock.move(timedelta(days=1))
    before = datetime.now(UTC)
    now = clock()
    assert before + timedelta(days=1) <= now <= datetime.now(UTC) + timedelta(days=1)

"""The machine the table was measured on, in two figures that carry over between machines:
the CPU time of a fixed piece of pure Python, and a PostgreSQL round trip. Figures in ms of
CPU (per task, per run, per request) scale with the first; set a table from another machine
against this one by it. Measured before the other benchmarks and after them: a shared
machine's speed may change meanwhile (seen here: the loop took 0.55 s and, an hour before,
1.5 s), and a table measured while it did is not one to compare."""

from __future__ import annotations

import os
import platform
import statistics
import time

import asyncpg

from bench.figures import Row, spread
from testkit.databases import PG_ADMIN


def python_loop() -> float:
    """CPU seconds for ten million additions in a Python loop."""
    start, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - start


async def pg_round_trips(n: int = 200) -> float:
    """Median ms of `SELECT 1` on one connection to the local PostgreSQL."""
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        timings = []
        for _ in range(n):
            start = time.perf_counter()
            await conn.fetchval("SELECT 1")
            timings.append((time.perf_counter() - start) * 1000)
    finally:
        await conn.close()
    return statistics.median(timings)


async def machine(when: str) -> list[Row]:
    """The two figures, measured `when` (before or after the other benchmarks: a shared
    machine's speed may change between the two)."""
    loops = [python_loop() for _ in range(5)]
    return [
        (
            f"this machine, {when}: {os.cpu_count()} cores, Python {platform.python_version()}",
            "CPU for 10M additions in a Python loop, median (range) of 5 · PostgreSQL SELECT 1",
            f"{spread(loops, '.2f')} s · {await pg_round_trips():.2f} ms",
        )
    ]

"""What storing a group of requests before their acks costs on PostgreSQL: the one statement
a group of new runs takes (`storage.new_runs`, slash commands and mentions outside threads)
against the transaction any other group takes, for the same requests. Wall time and the
process's CPU per group, medians of ROUNDS, each round a fresh set of requests."""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

from storage import Database, new_runs, runs
from storage.models import Run, RunSource
from storage.new_runs import NewRun
from storage.writes import new_row
from testkit.databases import fresh_pg_database

ROUNDS = 21
SIZES = (1, 30, 100)


def _request(kind: str, key: str) -> NewRun:
    if kind == "commands":
        row = new_row(
            Run,
            id=runs.new_id(),
            source=RunSource.COMMAND,
            request="go",
            channel_id="C1",
            response_url=f"https://hooks.slack.test/commands/{key}",
        )
        return NewRun(row, seen=f"command:{key}")
    row = new_row(
        Run,
        id=runs.new_id(),
        source=RunSource.MENTION,
        request="go",
        channel_id="C1",
        thread_ts=f"{key}.0",
    )
    return NewRun(row, seen=f"Ev{key}", in_thread=True, new_thread=True, notice="wait")


async def _timed(work: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await work
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


async def intake_groups() -> list[tuple[str, str, str]]:
    rows = []
    async with fresh_pg_database() as url:
        db = Database(url)
        await db.create_all()
        try:
            serial = 0
            for size in SIZES:
                for kind in ("commands", "mentions"):
                    figures: dict[str, list[tuple[float, float]]] = {"one": [], "tx": []}
                    for _ in range(ROUNDS):
                        for way in figures:  # taking turns
                            serial += size
                            group = [_request(kind, f"{serial}.{i}") for i in range(size)]
                            work = (
                                new_runs.store(db, group)
                                if way == "one"
                                else db.transact(
                                    functools.partial(
                                        new_runs._store_in, is_sqlite=False, requests=group
                                    ),
                                    eager=True,
                                )
                            )
                            figures[way].append(await _timed(work))
                    one, tx = (
                        tuple(statistics.median(f[i] for f in figures[w]) for i in (0, 1))
                        for w in ("one", "tx")
                    )
                    rows.append(
                        (
                            f"store {size} {kind} before their acks (PostgreSQL)",
                            "wall · CPU per group, one statement → a transaction",
                            f"{one[0]:.2f} · {one[1]:.2f} → {tx[0]:.2f} · {tx[1]:.2f} ms",
                        )
                    )
        finally:
            await db.dispose()
    return rows

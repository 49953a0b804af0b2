"""What the migrations cost a start: upgrading to head, and the check when there is nothing to do."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench.figures import pct
from storage import Database, schema
from testkit.databases import RELEASE_PG_DUMP, RELEASE_SQLITE, fresh_pg_database, psql

ROUNDS = 5


async def timed_upgrade(url: str) -> tuple[float, float]:
    """Milliseconds to upgrade to head, then to find it at head (start-up's check)."""
    db = Database(url)
    try:
        start = time.perf_counter()
        await schema.upgrade(db)
        upgraded = time.perf_counter()
        await schema.state(db)
        checked = time.perf_counter()
    finally:
        await db.dispose()
    return (upgraded - start) * 1000, (checked - upgraded) * 1000


async def sqlite_round(folder: Path, i: int, *, release: bool) -> tuple[float, float]:
    path = folder / f"{'release' if release else 'new'}-{i}.db"
    if release:
        shutil.copyfile(RELEASE_SQLITE, path)
    return await timed_upgrade(f"sqlite:///{path}")


async def pg_round(*, release: bool) -> tuple[float, float]:
    async with fresh_pg_database() as url:
        if release:
            await psql(url, "--file", str(RELEASE_PG_DUMP))
        return await timed_upgrade(url)


async def upgrades() -> list[tuple[str, str, str]]:
    rows = []
    checks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, release in (("new database", False), ("0.1.0 database", True)):
            for engine in ("SQLite", "PostgreSQL"):
                times = []
                for i in range(ROUNDS):
                    if engine == "SQLite":
                        took, check = await sqlite_round(Path(tmp), i, release=release)
                    else:
                        took, check = await pg_round(release=release)
                    times.append(took)
                    checks.append(check)
                rows.append(
                    (
                        f"schema upgrade to head, {label} ({engine})",
                        f"p50 / max of {ROUNDS}",
                        f"{pct(times, 0.5):.0f} / {max(times):.0f} ms",
                    )
                )
    rows.append(
        (
            "start-up schema check, database at head",
            "p50 / max",
            f"{pct(checks, 0.5):.1f} / {max(checks):.1f} ms",
        )
    )
    return rows


if __name__ == "__main__":
    for row in asyncio.run(upgrades()):
        print(*row, sep="  ")

"""SQLite's write-ahead log while runs go on: its largest size, and the database file's.

The run state machine commits on the event loop's thread on connections that never
checkpoint there; `Database` checkpoints off the loop every CHECKPOINT_EVERY of those
transactions. Without that, every change would stay in the log: it would grow by about half
a megabyte per ten-task run for as long as Baton runs, and the database file would stay as
it was created.

`python -m bench.sqlite_log`
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bench.figures import Row, print_table

RUNS, TASKS = 300, 10


async def sqlite_log() -> list[Row]:
    from bench.scale import _catalog_for
    from orchestration.limits import Limits
    from storage import Database, runs
    from storage.models import Run, RunStatus
    from testkit.offline import offline_orchestrator

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "agents.yml"
        catalog.write_text(_catalog_for("chain", TASKS))
        file = Path(tmp) / "baton.db"
        log = Path(tmp) / "baton.db-wal"
        db = Database(f"sqlite:///{file}")
        await db.create_all()
        orch = offline_orchestrator(db, catalog, limits=Limits(max_tasks=200))
        largest = 0
        for _ in range(RUNS):
            run = await runs.create_run(db, Run(id=runs.new_id(), request="go", playbook="shape"))
            assert run is not None
            await orch.execute(run.id)
            done = await runs.get_run(db, run.id)
            assert done is not None and done.status == RunStatus.SUCCEEDED
            largest = max(largest, log.stat().st_size)
        held = file.stat().st_size
        await db.dispose()
    return [
        (
            f"SQLite write-ahead log, {RUNS} runs of {TASKS} no-op tasks one after another",
            "largest log · database file at the end",
            f"{largest / 1e6:.1f} MB · {held / 1e6:.1f} MB",
        )
    ]


if __name__ == "__main__":
    print_table(asyncio.run(sqlite_log()))

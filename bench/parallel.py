"""Parallel efficiency: a run's wall time over its critical path, when every model call takes
MODEL_SECONDS (the fake model server answers after that long) and nothing else does.

The critical path is the longest chain of model calls that must follow one another: the plan
(for a request without a playbook), each level of tasks that wait for others, and the answer
written from their results. Everything Baton does around them — storing each move, starting
the next task as soon as what it needs is done, the answer's call after the last task — shows
as the wall time beyond it. In one process, on SQLite and PostgreSQL, as `overhead` in
`bench/scale.py` drives its runs.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.figures import Row, print_table, spread
from testkit.databases import fresh_pg_database

MODEL_SECONDS = 1.0
REPEATS = 2
MODEL = "openai:gpt-4.1-mini"


@dataclass(frozen=True)
class Shape:
    name: str
    # (id, depends on) of each task; a run without a playbook has them planned.
    tasks: tuple[tuple[str, tuple[str, ...]], ...]
    planned: bool = False

    @property
    def levels(self) -> int:
        """Tasks that must follow one another, at most."""
        depth: dict[str, int] = {}
        for task_id, after in self.tasks:  # listed after what they depend on
            depth[task_id] = 1 + max((depth[a] for a in after), default=0)
        return max(depth.values())

    @property
    def calls(self) -> int:
        """Model calls in a run: the plan, one per task, the answer."""
        return int(self.planned) + len(self.tasks) + 1

    @property
    def critical_path(self) -> float:
        return (int(self.planned) + self.levels + 1) * MODEL_SECONDS


def fan_out(n: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((f"t{i}", ()) for i in range(n))


DIAMOND: tuple[tuple[str, tuple[str, ...]], ...] = (("a", ()), ("b", ()), ("c", ("a", "b")))


def catalog(shapes: list[Shape]) -> str:
    lines = [
        "agents:",
        f"  - {{name: thinker, description: Thinks for a while., model: '{MODEL}'}}",
        "playbooks:",
    ]
    for shape in shapes:
        lines += [f"  - name: {shape.name}", "    description: A shape.", "    tasks:"]
        for task_id, after in shape.tasks:
            needs = f", depends_on: [{', '.join(after)}]" if after else ""
            lines.append(
                f"      - {{id: {task_id}, agent: thinker, instruction: {task_id}{needs}}}"
            )
    return "\n".join(lines) + "\n"


async def wall_over_path(
    url: str, shapes: list[Shape], max_parallel: int
) -> dict[str, list[float]]:
    """Each shape's wall time over its critical path, REPEATS times."""
    from agents.providers.registry import ModelSettings
    from orchestration.limits import Limits
    from storage import Database, runs
    from storage.models import Run, RunStatus
    from testkit.fakes.model_servers import FakeOpenAI, Reply
    from testkit.offline import offline_orchestrator

    ratios: dict[str, list[float]] = {s.name: [] for s in shapes}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agents.yml"
        path.write_text(catalog(shapes))
        async with FakeOpenAI() as server:
            server.default = Reply(text="Thought it through.", delay=MODEL_SECONDS)
            db = Database(url)
            await db.create_all()
            settings = ModelSettings(
                default_model=MODEL, openai_api_key="sk-test", openai_base_url=server.base_url
            )
            orch = offline_orchestrator(
                db, path, limits=Limits(max_parallel=max_parallel), models=settings
            )
            plans: list[dict[str, Any]] = [{}]
            server.when(
                lambda seen: "Turn the request into a plan" in seen.system,
                lambda seen: Reply(structured=plans[-1], delay=MODEL_SECONDS),
            )
            try:
                for shape in shapes:
                    plans.append(
                        {
                            "tasks": [
                                {
                                    "id": task_id,
                                    "agent": "thinker",
                                    "instruction": task_id,
                                    "depends_on": list(after),
                                }
                                for task_id, after in shape.tasks
                            ]
                        }
                    )
                    for _ in range(REPEATS + 1):  # the first warms up (connections, statements)
                        run = await runs.create_run(
                            db,
                            Run(
                                id=runs.new_id(),
                                request="think it through",
                                playbook=None if shape.planned else shape.name,
                            ),
                        )
                        assert run is not None
                        calls = len(server.requests)
                        start = time.perf_counter()
                        await orch.execute(run.id)
                        wall = time.perf_counter() - start
                        done = await runs.get_run(db, run.id)
                        made = len(server.requests) - calls
                        if (
                            done is None
                            or done.status != RunStatus.SUCCEEDED
                            or made != shape.calls
                        ):
                            raise RuntimeError(
                                f"{shape.name}: {done and done.status}, {made} model calls "
                                f"(expected {shape.calls})"
                            )
                        ratios[shape.name].append(wall / shape.critical_path)
                    ratios[shape.name].pop(0)
            finally:
                await db.dispose()
    return ratios


async def parallel_efficiency() -> list[Row]:
    from orchestration.limits import Limits

    most, wide = Limits().max_parallel, 8
    shapes = [
        Shape("diamond", DIAMOND),
        Shape("fan_out", fan_out(most)),
        Shape("wide_fan_out", fan_out(wide)),
        Shape("planned_diamond", DIAMOND, planned=True),
        Shape("planned_fan_out", fan_out(most), planned=True),
    ]
    described = {
        "diamond": "diamond of three tasks (a playbook)",
        "fan_out": f"fan-out of {most} tasks (the default BATON_MAX_PARALLEL; a playbook)",
        "wide_fan_out": f"fan-out of {wide} tasks (BATON_MAX_PARALLEL={wide}; a playbook)",
        "planned_diamond": "planned diamond of three tasks",
        "planned_fan_out": f"planned fan-out of {most} tasks",
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = {"SQLite": await wall_over_path(f"sqlite:///{tmp}/p.db", shapes, wide)}
    async with fresh_pg_database() as url:
        results["PostgreSQL"] = await wall_over_path(url, shapes, wide)
    for shape in shapes:
        for where, ratios in results.items():
            rows.append(
                (
                    f"parallel efficiency, {described[shape.name]} ({where})",
                    f"wall over critical path ({shape.critical_path:g} s of {MODEL_SECONDS:g}-s "
                    "model calls), median (range)",
                    f"{spread(ratios[shape.name], '.3f')}×",
                )
            )
    return rows


if __name__ == "__main__":
    import asyncio

    print_table(asyncio.run(parallel_efficiency()))

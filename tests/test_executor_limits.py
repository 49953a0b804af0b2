"""The executor's bounds: parallelism, per-task timeout, turn limit, failures that stay contained."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.providers.registry import Models, ModelSettings
from agents.retry import RetryPolicy
from agents.spec import parse_catalog
from agents.toolbox import Toolbox
from agents.tools.base import ToolContext
from agents.tools.registry import ALL_TOOLS, tool_names
from orchestration.deps import RunDeps
from orchestration.engine import Orchestrator
from orchestration.limits import Limits
from orchestration.run_events import RunFinished
from storage import Database, runs
from storage.models import Run, RunStatus, TaskStatus
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.sinks import RecordingSink

CATALOG = """
agents:
  - {name: worker, description: Works., model: 'openai:gpt-4.1-mini', tools: [calculator], max_turns: 2}
  - {name: writer, description: Writes., model: 'openai:gpt-4.1-mini'}
playbooks:
  - name: fan-out
    description: Four independent tasks and a summary.
    tasks:
      - {id: a, agent: worker, instruction: a}
      - {id: b, agent: worker, instruction: b}
      - {id: c, agent: worker, instruction: c}
      - {id: d, agent: worker, instruction: d}
      - {id: sum, agent: writer, instruction: sum, depends_on: [a, b, c, d]}
  - name: chain
    description: One fails, its dependent is skipped, the other finishes.
    tasks:
      - {id: bad, agent: worker, instruction: bad}
      - {id: good, agent: worker, instruction: good}
      - {id: after-bad, agent: writer, instruction: after, depends_on: [bad]}
"""


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.when(lambda s: "Write the final answer" in s.system, Reply(text="final"))
        yield server


def orchestrator(
    db: Database, openai: FakeOpenAI, sink: RecordingSink, **limits: Any
) -> Orchestrator:
    catalog = parse_catalog(CATALOG, source="test", known_tools=tool_names())
    models = Models(
        ModelSettings(
            default_model="openai:gpt-4.1-mini",
            openai_api_key="sk-test",
            openai_base_url=openai.base_url,
        ),
        ALL_TOOLS,
    )
    return Orchestrator(
        RunDeps(
            db=db,
            catalog=catalog,
            models=models,
            tools=Toolbox(ALL_TOOLS),
            tool_context=lambda r, t, k: ToolContext(run_id=r, task_id=t, idempotency_key=k),
            limits=Limits(retry=RetryPolicy(max_attempts=2, base_delay=0.01), **limits),
        ),
        sinks=lambda run: sink,
    )


async def run_playbook(db: Database, orch: Orchestrator, name: str) -> Run:
    run = await runs.create_run(db, Run(id=runs.new_id(), request="", playbook=name))
    try:
        await orch.execute(run.id)
    finally:
        await orch.models.aclose()
    stored = await runs.get_run(db, run.id)
    assert stored is not None
    return stored


def worker(seen: Seen) -> bool:
    return seen.system.startswith("You are worker,")


def max_overlap(requests: list[Seen]) -> int:
    points = sorted(
        [(s.received_at, 1) for s in requests] + [(s.finished_at or 0, -1) for s in requests]
    )
    current = peak = 0
    for _, step in points:
        current += step
        peak = max(peak, current)
    return peak


async def test_parallel_tasks_never_exceed_the_bound(db: Database, openai: FakeOpenAI) -> None:
    openai.when(worker, Reply(text="done", delay=0.2))
    run = await run_playbook(
        db, orchestrator(db, openai, RecordingSink(), max_parallel=2), "fan-out"
    )
    workers = [s for s in openai.requests if worker(s)]
    assert len(workers) == 4 and max_overlap(workers) == 2
    assert run.status == RunStatus.SUCCEEDED


async def test_a_slow_task_is_stopped_at_its_timeout_and_the_rest_finish(
    db: Database, openai: FakeOpenAI
) -> None:
    openai.when(lambda s: worker(s) and s.last_user_text == "bad", Reply(hang=True))
    openai.when(worker, Reply(text="fine"))
    sink = RecordingSink()
    run = await run_playbook(db, orchestrator(db, openai, sink, task_timeout=0.5), "chain")

    tasks = {t.task_id: t for t in await runs.list_tasks(db, run.id)}
    assert tasks["bad"].status == TaskStatus.FAILED and "longer than 0 s" not in (
        tasks["bad"].error or ""
    )
    assert "took longer than" in (tasks["bad"].error or "")
    assert tasks["good"].status == TaskStatus.SUCCEEDED
    assert tasks["after-bad"].status == TaskStatus.SKIPPED and "bad" in (
        tasks["after-bad"].error or ""
    )
    assert run.status == RunStatus.PARTIAL
    finished = sink.events[-1]
    assert isinstance(finished, RunFinished) and finished.contributors == ("worker",)


async def test_a_specialist_that_never_stops_calling_tools_hits_its_turn_limit(
    db: Database, openai: FakeOpenAI
) -> None:
    openai.when(worker, Reply(tool_calls=[("calculator", {"expression": "1+1"})]))
    run = await run_playbook(db, orchestrator(db, openai, RecordingSink()), "chain")
    tasks = {t.task_id: t for t in await runs.list_tasks(db, run.id)}
    assert "used all 2 of its turns" in (tasks["good"].error or "")
    assert len([s for s in openai.requests if worker(s) and s.last_user_text == "good"]) == 2


async def test_a_model_that_keeps_failing_fails_its_task_with_the_reason(
    db: Database, openai: FakeOpenAI
) -> None:
    openai.when(lambda s: worker(s) and s.last_user_text == "bad", Reply(status=503))
    openai.when(worker, Reply(text="fine"))
    run = await run_playbook(db, orchestrator(db, openai, RecordingSink()), "chain")
    tasks = {t.task_id: t for t in await runs.list_tasks(db, run.id)}
    assert tasks["bad"].error == (
        f"The OpenAI-compatible server at {openai.base_url.split('/')[2]} had a temporary "
        "problem (HTTP 503, 2 attempts); try again in a minute."
    )
    assert tasks["good"].status == TaskStatus.SUCCEEDED
    # The model's answer, and under it Baton's own reason for each task that did not succeed.
    assert (run.answer or "").split("\n") == [
        "final",
        "",
        f"❌ **worker** (`bad`) failed: {tasks['bad'].error}",
        "⏭️ **writer** (`after-bad`) skipped: needs bad, which did not succeed",
    ]

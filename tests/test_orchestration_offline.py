"""Runs driven with the offline `rules` provider: no model, no Slack, real tools and database."""

from __future__ import annotations

from agents.providers.registry import Models, ModelSettings
from agents.spec import load_catalog
from agents.toolbox import Toolbox
from agents.tools.base import ToolContext
from agents.tools.registry import ALL_TOOLS, tool_names
from orchestration.deps import RunDeps
from orchestration.engine import Orchestrator
from orchestration.limits import Limits
from orchestration.run_events import PlanReady, RunFinished, TaskFinished
from storage import Database, runs
from storage.models import Run, RunStatus, TaskStatus
from testkit.databases import Site
from testkit.sinks import RecordingSink


def offline(
    db: Database, sink: RecordingSink, *, allow: frozenset[str] = frozenset({"127.0.0.1"})
) -> Orchestrator:
    catalog = load_catalog(None, known_tools=tool_names())
    return Orchestrator(
        RunDeps(
            db=db,
            catalog=catalog,
            models=Models(ModelSettings(default_model="rules"), ALL_TOOLS),
            tools=Toolbox(ALL_TOOLS),
            tool_context=lambda run_id, task_id, key: ToolContext(
                run_id=run_id, task_id=task_id, http_allow_hosts=allow, idempotency_key=key
            ),
            limits=Limits(task_timeout=10, run_deadline=20),
        ),
        sinks=lambda run: sink,
    )


async def start(db: Database, request: str, *, playbook: str | None = None) -> str:
    run = await runs.create_run(db, Run(id=runs.new_id(), request=request, playbook=playbook))
    return run.id


async def test_rules_run_checks_sites_then_writes_a_summary(db: Database, site: Site) -> None:
    sink = RecordingSink()
    run_id = await start(db, f"check {site.url('/ok')} and {site.url('/down')} and summarise")

    await offline(db, sink).execute(run_id)

    run = await runs.get_run(db, run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    tasks = {t.task_id: t for t in await runs.list_tasks(db, run_id)}
    assert set(tasks) == {"web-checker", "writer"}
    assert tasks["writer"].depends_on == ["web-checker"]
    assert "503" in (tasks["web-checker"].output or "")
    assert "problem" in (run.answer or "")  # the writer flags the site that is down
    assert site.hits == {"/ok": 1, "/down": 1}
    plan = next(e for e in sink.events if isinstance(e, PlanReady))
    assert [t.id for t in plan.tasks] == ["web-checker", "writer"]
    finished = sink.events[-1]
    assert isinstance(finished, RunFinished) and finished.contributors == ("web-checker", "writer")


async def test_a_request_no_specialist_understands_ends_with_advice(db: Database) -> None:
    sink = RecordingSink()
    run_id = await start(db, "hello there")

    await offline(db, sink).execute(run_id)

    run = await runs.get_run(db, run_id)
    assert run is not None and run.status == RunStatus.FAILED
    assert "/baton agents" in (run.error or "")
    assert isinstance(sink.events[-1], RunFinished)


async def test_a_private_address_is_refused_without_an_allowlist(db: Database, site: Site) -> None:
    sink = RecordingSink()
    run_id = await start(db, f"is {site.url('/ok')} up?")

    await offline(db, sink, allow=frozenset()).execute(run_id)

    task = (await runs.list_tasks(db, run_id))[0]
    assert "private" in (task.output or "").lower() or "loopback" in (task.output or "").lower()
    assert site.hits == {}


async def test_an_unknown_playbook_names_the_ones_that_exist(db: Database) -> None:
    sink = RecordingSink()
    run_id = await start(db, "", playbook="nope")

    await offline(db, sink).execute(run_id)

    run = await runs.get_run(db, run_id)
    assert run is not None and run.status == RunStatus.FAILED
    assert "`status-check`" in (run.error or "")


async def test_a_playbook_runs_without_planning(db: Database, site: Site) -> None:
    sink = RecordingSink()
    run_id = await start(db, site.url("/ok"), playbook="status-check")

    await offline(db, sink).execute(run_id)

    tasks = await runs.list_tasks(db, run_id)
    assert [(t.task_id, t.status) for t in tasks] == [
        ("check", TaskStatus.SUCCEEDED),
        ("digest", TaskStatus.SUCCEEDED),
    ]
    assert [e.task_id for e in sink.events if isinstance(e, TaskFinished)] == ["check", "digest"]

"""The orchestrator: drives one run from the database until it finishes or waits for a person.

`execute(run_id)` is the only entry point. It can be called for a new run, after an approval
decision, after a restart, from any process: the database says where the run stands, a lease
makes sure one process drives it at a time, and finished tasks are never run again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta

from agents.errors import ModelError
from agents.explain import sentence
from agents.pricing import PriceTable
from agents.providers.registry import Models
from agents.spec import Catalog
from agents.telemetry import Telemetry
from agents.toolbox import Toolbox
from agents.tools.base import ToolContext
from agents.tools.extract import plain
from orchestration.costs import estimate
from orchestration.errors import PlanningError
from orchestration.events import (
    ApprovalDecided,
    EventSink,
    PlanReady,
    RunAccepted,
    RunEvent,
    RunFinished,
    RunWaiting,
    TaskFinished,
    TaskView,
)
from orchestration.gates import Gates, Show
from orchestration.limits import Limits
from orchestration.planning import failure_hook, plan_for, thread_context, usage_hook
from orchestration.supervisor import TaskOutcome, compose, synthesize
from orchestration.tasks import TaskRunner
from orchestration.telemetry import traced_run, with_run_id
from storage import approvals, runs
from storage.db import Database, utcnow
from storage.models import ApprovalStatus, Run, RunStatus, TaskRow, TaskStatus

log = logging.getLogger(__name__)

SinkFactory = Callable[[Run], EventSink]
ToolContextFactory = Callable[[str, str, str], ToolContext]  # run id, task id, idempotency key

BLOCKING = (TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.REJECTED, TaskStatus.UNVERIFIED)


class Orchestrator:
    """Plans, runs and finishes runs; the same code for Slack, schedules, the sandbox and tests."""

    def __init__(
        self,
        *,
        db: Database,
        catalog: Catalog,
        models: Models,
        tools: Toolbox,
        sinks: SinkFactory,
        tool_context: ToolContextFactory,
        limits: Limits | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.db = db
        self.telemetry = telemetry or Telemetry.off()
        self.catalog = catalog
        self.models = models
        self.limits = limits or Limits()
        self.prices = PriceTable(catalog.prices)
        self._sinks = sinks
        self._driving: set[str] = set()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.gates = Gates(
            db=db,
            catalog=catalog,
            limits=self.limits,
            tools=tools,
        )
        self.tasks = TaskRunner(
            db=db,
            catalog=catalog,
            models=models,
            tools=tools,
            prices=self.prices,
            limits=self.limits,
            gates=self.gates,
            tool_context=tool_context,
        )

    @with_run_id
    async def execute(self, run_id: str) -> None:
        """Start or continue a run. Returns when it is finished or waiting; never raises."""
        while True:
            if run_id in self._driving or not await runs.acquire_lease(
                self.db, run_id, self.owner, seconds=self.limits.lease_seconds
            ):
                return  # someone else is driving it and will see what changed
            self._driving.add(run_id)
            heartbeat = asyncio.create_task(self._keep_lease(run_id))
            try:
                await self._advance(run_id)
            except Exception:
                log.exception("run %s failed inside Baton", run_id)
                await self._fail(
                    run_id,
                    f"Something went wrong inside Baton while running this (run `{run_id}`). "
                    "The error is in the bot's log; try again, and tell your Baton admin if it repeats.",
                )
            finally:
                heartbeat.cancel()
                await runs.release_lease(self.db, run_id, self.owner)
                self._driving.discard(run_id)
            # A decision may have landed while we held the lease and could not act on it.
            if not await self._decided_while_busy(run_id):
                return

    async def _keep_lease(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(self.limits.lease_seconds / 3)
            await runs.acquire_lease(self.db, run_id, self.owner, seconds=self.limits.lease_seconds)

    @traced_run
    async def _advance(self, run_id: str) -> None:
        run = await runs.get_run(self.db, run_id)
        if run is None or run.status.is_final:
            return
        sink = self._sinks(run)
        deadline = utcnow() + timedelta(seconds=self.limits.run_deadline)
        if run.status in (RunStatus.QUEUED, RunStatus.PLANNING):
            await runs.record(
                self.db,
                run_id,
                "run_started",
                run={
                    "status": RunStatus.PLANNING,
                    "deadline_at": deadline,
                    "budget_usd": run.budget_usd
                    if run.budget_usd is not None
                    else self.limits.budget_usd,
                },
            )
            await self.publish(sink, RunAccepted(run_id=run_id, request=run.request))
            if not await self._plan(run, sink):
                return
        else:
            await runs.record(
                self.db,
                run_id,
                "run_resumed",
                run={"status": RunStatus.RUNNING, "deadline_at": deadline},
            )
            await self._requeue_orphans(run_id)
        await self._drive(run_id, sink)

    async def _requeue_orphans(self, run_id: str) -> None:
        """Tasks left running by a process that died go back to pending (we hold the lease)."""
        for t in await runs.list_tasks(self.db, run_id):
            if t.status == TaskStatus.RUNNING:
                await runs.record(
                    self.db,
                    run_id,
                    "task_requeued",
                    task_id=t.task_id,
                    task={"status": TaskStatus.PENDING},
                )

    async def _plan(self, run: Run, sink: EventSink) -> bool:
        try:
            async with asyncio.timeout(self.limits.run_deadline):
                plan = await plan_for(
                    run,
                    db=self.db,
                    catalog=self.catalog,
                    models=self.models,
                    limits=self.limits,
                    prices=self.prices,
                )
        except PlanningError as e:
            await self._fail(run.id, str(e), sink=sink)
            return False
        except ModelError as e:
            await self._fail(
                run.id,
                f"I could not plan this: {sentence(e)}",
                sink=sink,
            )
            return False
        except TimeoutError:
            await self._fail(
                run.id,
                f"Planning did not finish within the run's {self.limits.run_deadline:g} s deadline: "
                "the model did not answer in time. Try again in a minute.",
                sink=sink,
            )
            return False
        rows = [
            TaskRow(
                run_id=run.id,
                task_id=t.id,
                position=i,
                agent=t.agent,
                instruction=t.instruction,
                depends_on=list(t.depends_on),
                requires_approval=t.requires_approval,
            )
            for i, t in enumerate(plan.tasks)
        ]
        await runs.save_plan(self.db, run.id, plan.model_dump(), rows)
        views = tuple(
            TaskView(
                id=t.id,
                agent=t.agent,
                title=_title(t.agent, t.instruction),
                depends_on=tuple(t.depends_on),
                requires_approval=t.requires_approval,
            )
            for t in plan.tasks
        )
        cost = estimate(plan, self.catalog, self.models, self.prices)
        await self.publish(
            sink, PlanReady(run_id=run.id, title=plan.title, tasks=views, estimate=cost)
        )
        return True

    async def _drive(self, run_id: str, sink: EventSink) -> None:
        """Run every task whose dependencies are done, in parallel up to the bound."""
        run = await runs.get_run(self.db, run_id)
        assert run is not None and run.deadline_at is not None
        show: Show = functools.partial(self.publish, sink)
        running: dict[str, asyncio.Task[None]] = {}
        deadline_hit = False
        remaining = (run.deadline_at - utcnow()).total_seconds()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                while True:
                    tasks = await runs.list_tasks(self.db, run_id)
                    if await self._settle(run_id, tasks, show) or await self._skip_blocked(
                        run_id, tasks, show
                    ):
                        continue
                    run = await runs.get_run(self.db, run_id)
                    assert run is not None
                    for t in self._ready(tasks, running):
                        if len(running) >= self.limits.max_parallel:
                            break
                        if await self.gates.before_start(run, t, show):
                            continue
                        running[t.task_id] = asyncio.create_task(self.tasks.run(run, t, show))
                    if not running:
                        break
                    done, _ = await asyncio.wait(
                        running.values(), return_when=asyncio.FIRST_COMPLETED
                    )
                    for task_id in [k for k, v in running.items() if v in done]:
                        running.pop(task_id).result()
        except TimeoutError:
            deadline_hit = True
            await self._stop_at_deadline(run_id, running, show)
        tasks = await runs.list_tasks(self.db, run_id)
        waiting = [t for t in tasks if t.status == TaskStatus.WAITING]
        if waiting and not deadline_hit:
            pending = [
                a.id
                for a in await approvals.for_run(self.db, run_id)
                if a.status == ApprovalStatus.PENDING
            ]
            await runs.record(self.db, run_id, "run_waiting", run={"status": RunStatus.WAITING})
            await self.publish(sink, RunWaiting(run_id=run_id, pending=tuple(pending)))
            return
        await self._finish(run_id, tasks, sink, deadline_hit=deadline_hit)

    @staticmethod
    def _ready(tasks: list[TaskRow], running: dict[str, asyncio.Task[None]]) -> list[TaskRow]:
        done = {t.task_id for t in tasks if t.status == TaskStatus.SUCCEEDED}
        return [
            t
            for t in tasks
            if t.status == TaskStatus.PENDING
            and t.task_id not in running
            and all(d in done for d in t.depends_on)
        ]

    async def _settle(self, run_id: str, tasks: list[TaskRow], show: Show) -> bool:
        """Turn decided approvals into runnable or finished tasks. True if anything changed."""
        decided = []
        for t in tasks:
            if t.status == TaskStatus.WAITING:
                approval = await self.gates.settle(t)
                if approval is not None:
                    decided.append(approval)
        if not decided:
            return False
        for a in decided:
            await show(
                ApprovalDecided(
                    run_id=run_id, task_id=a.task_id, approval_id=a.id, status=a.status.value
                )
            )
        before = {t.task_id: t.status for t in tasks}
        for t in await runs.list_tasks(self.db, run_id):
            if t.status.is_final and before.get(t.task_id) != t.status:
                await show(
                    TaskFinished(
                        run_id=run_id,
                        task_id=t.task_id,
                        status=t.status.value,
                        summary=t.error or _first_line(t.output or ""),
                        output=t.output or "",
                    )
                )
        return True

    async def _skip_blocked(self, run_id: str, tasks: list[TaskRow], show: Show) -> bool:
        """Skip pending tasks whose dependencies failed, were skipped or rejected."""
        by_id = {t.task_id: t for t in tasks}
        changed = False
        for t in tasks:
            if t.status != TaskStatus.PENDING:
                continue
            blocked = [d for d in t.depends_on if d in by_id and by_id[d].status in BLOCKING]
            if blocked:
                reason = f"skipped: needs {', '.join(blocked)}, which did not succeed"
                await runs.record(
                    self.db,
                    run_id,
                    "task_skipped",
                    task_id=t.task_id,
                    task={"status": TaskStatus.SKIPPED, "error": reason, "finished_at": utcnow()},
                )
                await show(
                    TaskFinished(
                        run_id=run_id,
                        task_id=t.task_id,
                        status=TaskStatus.SKIPPED.value,
                        summary=reason,
                    )
                )
                changed = True
        return changed

    async def _stop_at_deadline(
        self, run_id: str, running: dict[str, asyncio.Task[None]], show: Show
    ) -> None:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        reason = f"stopped at the run's {self.limits.run_deadline:g} s deadline"
        for t in await runs.list_tasks(self.db, run_id):
            if t.status.is_final:
                continue
            status = TaskStatus.FAILED if t.status == TaskStatus.RUNNING else TaskStatus.SKIPPED
            await runs.record(
                self.db,
                run_id,
                "task_stopped",
                task_id=t.task_id,
                task={"status": status, "error": reason, "finished_at": utcnow()},
            )
            await show(
                TaskFinished(run_id=run_id, task_id=t.task_id, status=status.value, summary=reason)
            )

    async def _finish(
        self, run_id: str, tasks: list[TaskRow], sink: EventSink, *, deadline_hit: bool
    ) -> None:
        run = await runs.get_run(self.db, run_id)
        assert run is not None
        outcomes = [
            TaskOutcome(
                id=t.task_id,
                agent=t.agent,
                status=t.status.value,
                output=(t.output if t.status == TaskStatus.SUCCEEDED else t.error) or "",
            )
            for t in tasks
        ]
        succeeded = [t for t in tasks if t.status == TaskStatus.SUCCEEDED]
        if len(succeeded) == len(tasks):
            status = RunStatus.SUCCEEDED
        elif succeeded:
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.FAILED
        if deadline_hit:
            answer = (
                f"⏱️ This run reached its {self.limits.run_deadline:g} s deadline, so unfinished "
                "tasks were stopped. Here is what was done; try again later or narrow the request.\n\n"
                + compose(outcomes)
            )
        else:
            binding = self.models.resolve("default")
            try:
                async with asyncio.timeout(self.limits.task_timeout):
                    answer = await synthesize(
                        run.request or (run.playbook or ""),
                        outcomes,
                        context=await thread_context(self.db, run),
                        binding=binding,
                        retry=self.limits.retry,
                        usage=usage_hook(self.db, self.prices, run.id, None, binding.ref),
                        on_failure=failure_hook(self.db, run.id, "answer"),
                    )
            except TimeoutError:
                answer = compose(outcomes)
        await runs.record(
            self.db,
            run_id,
            "run_finished",
            data={"status": status.value},
            run={"status": status, "answer": answer, "finished_at": utcnow()},
        )
        final = await runs.get_run(self.db, run_id)
        assert final is not None
        await self.publish(
            sink,
            RunFinished(
                run_id=run_id,
                status=status.value,
                answer=answer,
                input_tokens=final.input_tokens,
                output_tokens=final.output_tokens,
                cost_usd=final.cost_usd,
                contributors=tuple(dict.fromkeys(t.agent for t in succeeded)),
            ),
        )

    async def _fail(self, run_id: str, message: str, *, sink: EventSink | None = None) -> None:
        """End the run as failed, with a sentence that says what happened and what to do."""
        run = await runs.get_run(self.db, run_id)
        if run is None or run.status.is_final:
            return
        await runs.record(
            self.db,
            run_id,
            "run_failed",
            data={"error": message},
            run={
                "status": RunStatus.FAILED,
                "error": message,
                "answer": message,
                "finished_at": utcnow(),
            },
        )
        final = await runs.get_run(self.db, run_id)
        assert final is not None
        await self.publish(
            sink or self._sinks(final),
            RunFinished(
                run_id=run_id,
                status=RunStatus.FAILED.value,
                answer=message,
                input_tokens=final.input_tokens,
                output_tokens=final.output_tokens,
                cost_usd=final.cost_usd,
            ),
        )

    async def _decided_while_busy(self, run_id: str) -> bool:
        return run_id in await interrupted_runs_of(self.db, [run_id])

    @staticmethod
    async def publish(sink: EventSink, event: RunEvent) -> None:
        """Show an event; a surface that fails must not stop the run (it is already stored)."""
        try:
            await sink.publish(event)
        except Exception:
            log.exception("could not show %s", type(event).__name__)


def _first_line(text: str, limit: int = 140) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _title(agent: str, instruction: str) -> str:
    """The task list's line: the instruction's first line as plain text (no Slack markup)."""
    first = plain(instruction).strip().splitlines()[0] if instruction.strip() else agent
    return first if len(first) <= 80 else first[:77] + "…"


async def interrupted_runs(db: Database) -> list[str]:
    """Runs a stopped process left mid-way (and waiting runs with a decision not yet applied)."""
    active = await runs.runs_by_status(
        db, [RunStatus.QUEUED, RunStatus.PLANNING, RunStatus.RUNNING]
    )
    waiting = await runs.runs_by_status(db, [RunStatus.WAITING])
    return [r.id for r in active] + await interrupted_runs_of(db, [r.id for r in waiting])


async def interrupted_runs_of(db: Database, run_ids: list[str]) -> list[str]:
    """Those of `run_ids` that wait at a gate already decided (the decision is not applied yet)."""
    found = []
    for run_id in run_ids:
        run = await runs.get_run(db, run_id)
        if run is None or run.status != RunStatus.WAITING:
            continue
        tasks = {t.task_id: t for t in await runs.list_tasks(db, run_id)}
        if any(
            a.status != ApprovalStatus.PENDING
            and a.task_id in tasks
            and tasks[a.task_id].status == TaskStatus.WAITING
            for a in await approvals.for_run(db, run_id)
        ):
            found.append(run_id)
    return found

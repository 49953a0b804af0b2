"""The orchestrator: drives one run from the database until it finishes or waits for a person.

`execute(run_id)` starts or continues a run; `stop(run_id, by)` stops one. Either can be
called for any run, from any process, any number of times at once: the database says where
the run stands, a lease (`driving.py`) lets exactly one drive drive it, and finished tasks
are never run again. Every task a drive starts belongs to it (an `asyncio.TaskGroup`):
stopping the drive — a Stop, a shutdown, the deadline, a lost lease — ends them all.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agents.errors import ModelError
from agents.explain import sentence
from agents.redact import redact
from agents.spec import REVIEWER
from agents.telemetry import RUN_ID
from agents.tools.extract import plain
from orchestration import endings, replanning, verification
from orchestration.costs import estimate
from orchestration.deps import RunDeps
from orchestration.driving import Drive, LeaseKeeper, StopReason, Tokens, leaves, let_go
from orchestration.errors import PlanningError
from orchestration.gates import Gates, Show
from orchestration.planning import failure_hook, plan_for, thread_context, usage_hook
from orchestration.run_events import (
    AnswerDelta,
    ApprovalDecided,
    EventSink,
    PlanReady,
    PlanRevised,
    RunAccepted,
    RunEvent,
    RunFinished,
    RunWaiting,
    TaskEnd,
    TaskFinished,
    TaskView,
)
from orchestration.step_tracing import traced_run, with_run_id
from orchestration.supervisor import TaskOutcome, compose, synthesize
from orchestration.tasks import TaskRunner
from storage import approvals, outbox, run_states, runs
from storage.db import Database, is_unavailable, utcnow
from storage.models import (
    ApprovalStatus,
    DeliveryPurpose,
    EventKind,
    Run,
    RunStatus,
    TaskRow,
    TaskStatus,
)
from storage.run_states import IllegalTransition
from storage.runs import Lease

log = logging.getLogger(__name__)

SinkFactory = Callable[[Run], EventSink]

BLOCKING = (
    TaskStatus.FAILED,
    TaskStatus.SKIPPED,
    TaskStatus.REJECTED,
    TaskStatus.UNVERIFIED,
    TaskStatus.CANCELLED,
)


class Orchestrator:
    """Plans, runs and finishes runs; the same code for Slack, schedules, the sandbox and tests."""

    def __init__(self, deps: RunDeps, *, sinks: SinkFactory) -> None:
        self.deps = deps
        self.db = deps.db
        self.telemetry = deps.telemetry
        self.catalog = deps.catalog
        self.models = deps.models
        self.limits = deps.limits
        self.prices = deps.prices
        self._sinks = sinks
        self._drives: dict[str, Drive] = {}
        self._tokens = Tokens()
        self._keeper = LeaseKeeper(deps.db, deps.limits)
        self.gates = Gates(deps)
        self.tasks = TaskRunner(deps, gates=self.gates)

    @with_run_id
    async def execute(self, run_id: str) -> None:
        """Start or continue a run, then any message that waited for it in its thread.

        Returns when the run has finished, waits for a person, or is driven elsewhere (that
        driver will see whatever changed). Never raises, but for cancellation.
        """
        await self._execute(run_id, None)

    async def execute_claimed(self, lease: Lease, run: Run) -> None:
        """`execute` for a run whose lease the caller has taken already (a worker's claim),
        and its row as read under that lease (the first drive need not read it again)."""
        token = RUN_ID.set(lease.run_id)
        try:
            await self._execute(lease.run_id, lease, run)
        finally:
            RUN_ID.reset(token)

    async def _execute(self, run_id: str, lease: Lease | None, run: Run | None = None) -> None:
        next_id: str | None = run_id
        while next_id is not None:
            try:
                next_id = await self._take_turns(next_id, lease, run)
                lease, run = None, None
            except Exception as e:
                if not is_unavailable(e):
                    log.exception("run %s could not be driven", next_id)
                else:
                    log.warning(
                        "run %s: the database is unavailable (%s); it will be resumed", next_id, e
                    )
                return

    async def stop(self, run_id: str, *, by: str) -> bool:
        """Stop a run (in whichever process drives it). False when it had finished already or
        a stop was asked before."""
        if not await runs.request_cancel(self.db, run_id, by):
            return False
        drive = self._drives.get(run_id)
        if drive is not None:
            drive.stop(StopReason.PERSON, by)
        else:
            # Waiting, queued, or driven elsewhere: whoever holds it sees the request.
            await self.execute(run_id)
        return True

    @property
    def owner(self) -> str:
        """This process's name in the leases it holds."""
        return self._tokens.owner

    def driving(self, run_id: str) -> bool:
        """Whether a drive of this run is going on in this process."""
        return run_id in self._drives

    async def _take_turns(
        self, run_id: str, lease: Lease | None = None, run: Run | None = None
    ) -> str | None:
        """Drive the run while it is nudged (under `lease` when one was claimed for it, and
        `run` its row as read under it); once it has finished, the message that waited for it
        in its thread (None: none, or the run has not finished)."""
        if lease is None:
            claimed = await runs.nudge_and_acquire(
                self.db, run_id, self._tokens.next(), seconds=self.limits.lease_seconds
            )
            lease, run = claimed or (None, None)
        while True:
            if lease is None:
                return None  # someone else is driving it and will see the nudge
            left = True
            try:
                left = await self._drive_under(lease, run)
            finally:
                released = await let_go(self.db, lease)
            run = None  # a drive after this one reads the run afresh
            if left or not released.nudged:
                return released.follower
            lease = await runs.acquire_lease(
                self.db, run_id, self._tokens.next(), seconds=self.limits.lease_seconds
            )

    async def _drive_under(self, lease: Lease, run: Run | None = None) -> bool:
        """One drive while the lease is held (`run`: the row read under it, if it was). True
        when the driver had to leave the run as it was (the database went away, the lease was
        lost): the sweep takes it up later."""
        run_id = lease.run_id
        if run is None:
            run = await runs.get_run(self.db, run_id)
        if run is None:
            return False
        sink = self._sinks(run)
        work = asyncio.create_task(self._advance(run, sink), name=f"drive-{run_id}")
        drive = Drive(lease=lease, work=work)
        self._drives[run_id] = drive
        self._keeper.keep(drive)
        try:
            try:
                await asyncio.wait([work])
            except asyncio.CancelledError:
                # This process is stopping: end the work, and leave its tasks for the next driver.
                drive.stop(StopReason.SHUTDOWN)
                await asyncio.wait([work])
                await self._leave_for_later(run_id)
                raise
        finally:
            self._keeper.release(drive)
            self._drives.pop(run_id, None)
        return await self._after(drive, sink)

    async def _after(self, drive: Drive, sink: EventSink) -> bool:
        """What a drive's end means for the run."""
        run_id = drive.lease.run_id
        if drive.work.cancelled():
            if drive.reason == StopReason.PERSON:
                await self._stop(run_id, drive.stopped_by or "someone", sink)
                return False
            log.warning("run %s: lease lost; leaving it to whoever takes it over", run_id)
            return True
        error = drive.work.exception()
        if error is None:
            return False
        if any(is_unavailable(e) for e in leaves(error)):
            log.warning(
                "run %s: the database is unavailable (%s); it will be resumed", run_id, error
            )
            return True
        if any(isinstance(e, IllegalTransition) for e in leaves(error)):
            # Someone else moved the run on (a driver that took it over after this one's
            # lease lapsed): theirs is the drive; this one writes nothing more.
            log.warning("run %s: moved on by another driver (%s); leaving it", run_id, error)
            return True
        log.error("run %s failed inside Baton", run_id, exc_info=error)
        await self._fail(
            run_id,
            f"Something went wrong inside Baton while running this (run `{run_id}`). "
            "The error is in the bot's log; try again, and tell your Baton admin if it repeats.",
            sink=sink,
        )
        return False

    async def _leave_for_later(self, run_id: str) -> None:
        """Tasks cut off by a shutdown go back to pending: the next driver runs them."""
        try:
            await self._requeue_orphans(run_id, why="Baton stopped while it ran")
        except Exception as e:
            if not is_unavailable(e):
                log.exception("run %s: could not requeue its tasks", run_id)

    @traced_run
    async def _advance(self, run: Run, sink: EventSink) -> None:
        run_id = run.id
        if run.status.is_final:
            return
        if run.cancel_requested_by:
            await self._stop(run_id, run.cancel_requested_by, sink)
            return
        if run.follows_run_id and not await self._predecessor_done(run):
            return  # it starts when the run before it in the thread has finished
        deadline = utcnow() + timedelta(seconds=self.limits.run_deadline)
        if run.status in (RunStatus.QUEUED, RunStatus.PLANNING):
            await run_states.run_started(
                self.db,
                run_id,
                driver=self.owner,
                deadline_at=deadline,
                budget_usd=run.budget_usd if run.budget_usd is not None else self.limits.budget_usd,
            )
            await self.publish(sink, RunAccepted(run_id=run_id, request=run.request))
            if not await self._plan(run, sink):
                return
        else:
            if run.status == RunStatus.WAITING and not await self._has_news(run_id):
                return  # nothing was decided: it keeps waiting, and nothing is shown again
            await run_states.run_resumed(self.db, run_id, driver=self.owner, deadline_at=deadline)
            await self._requeue_orphans(run_id)
        await self._drive(run, sink)

    async def _predecessor_done(self, run: Run) -> bool:
        assert run.follows_run_id is not None
        before = await runs.get_run(self.db, run.follows_run_id)
        return before is None or before.status.is_final

    async def _has_news(self, run_id: str) -> bool:
        """A waiting run has something to act on: a decided gate not applied yet."""
        waiting = {
            t.task_id
            for t in await runs.list_tasks(self.db, run_id)
            if t.status == TaskStatus.WAITING
        }
        latest: dict[str, ApprovalStatus] = {}
        for a in await approvals.for_run(self.db, run_id):
            latest[a.task_id] = a.status
        return any(latest.get(t, ApprovalStatus.PENDING) != ApprovalStatus.PENDING for t in waiting)

    async def _requeue_orphans(self, run_id: str, *, why: str | None = None) -> None:
        """Tasks left running (by a process that died, or cut off by a shutdown) go back to
        pending; we hold the lease."""
        for t in await runs.list_tasks(self.db, run_id):
            if t.status == TaskStatus.RUNNING:
                await run_states.task_requeued(self.db, run_id, t.task_id, why=why)

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
            run_states.new_task(
                run.id,
                t.id,
                position=i,
                agent=t.agent,
                instruction=t.instruction,
                depends_on=t.depends_on,
                requires_approval=t.requires_approval,
            )
            for i, t in enumerate(plan.tasks)
        ]
        await run_states.plan_ready(self.db, run.id, plan.model_dump(), rows)
        cost = estimate(plan, self.catalog, self.models, self.prices)
        views = tuple(
            _task_view(t.id, t.agent, t.instruction, t.depends_on, t.requires_approval)
            for t in plan.tasks
        )
        await self.publish(
            sink, PlanReady(run_id=run.id, title=plan.title, tasks=views, estimate=cost)
        )
        return True

    async def _drive(self, run: Run, sink: EventSink) -> None:
        """Run every task whose dependencies are done, in parallel up to the bound; when some
        failed, the plan may be revised once and its new tasks run the same way.

        `run` is the row the drive began with, read again (into the same object) each turn."""
        run_id = run.id
        show: Show = functools.partial(self.publish, sink)
        conversation: Conversation | None = None
        while True:
            found = await runs.refresh(self.db, run)
            assert found and run.deadline_at is not None
            conversation = conversation or Conversation(self.db, run)
            deadline_hit = False
            remaining = (run.deadline_at - utcnow()).total_seconds()
            try:
                async with asyncio.timeout(max(remaining, 0.0)), asyncio.TaskGroup() as group:
                    await self._run_tasks(run, group, show, conversation)
            except TimeoutError:
                # The group has cancelled and awaited every task it started.
                deadline_hit = True
                await self._stop_at_deadline(run_id, show)
            tasks = await runs.list_tasks(self.db, run_id)
            waiting = [t for t in tasks if t.status == TaskStatus.WAITING]
            if waiting and not deadline_hit:
                pending = [
                    a.id
                    for a in await approvals.for_run(self.db, run_id)
                    if a.status == ApprovalStatus.PENDING
                ]
                await run_states.run_waiting(self.db, run_id)
                await self.publish(sink, RunWaiting(run_id=run_id, pending=tuple(pending)))
                return
            if deadline_hit or not await self._revise(run, tasks, show):
                break
        await self._finish(run, tasks, sink, conversation, deadline_hit=deadline_hit)

    async def _revise(self, run: Run, tasks: list[TaskRow], show: Show) -> bool:
        """The run's one revision, when tasks failed: True when it added tasks to run."""
        # `run` was read before its tasks ran. What rules a revision out is mostly known
        # without reading it again (nothing failed, a playbook, revised once); what it has
        # spent only grows, so a figure read earlier cannot keep out a revision the fresh
        # one would allow.
        if replanning.reason_not_to(run, tasks, token_budget=self.gates.token_budget(run)):
            return False
        run_id = run.id
        run = await runs.get_run(self.db, run_id) or run
        revision = await replanning.revise(
            run,
            tasks,
            db=self.db,
            catalog=self.catalog,
            models=self.models,
            limits=self.limits,
            prices=self.prices,
            token_budget=self.gates.token_budget(run),
        )
        if revision is None:
            return False
        await show(
            PlanRevised(run_id=run_id, title=revision.title, tasks=_task_views(revision.tasks))
        )
        return True

    async def _run_tasks(
        self, run: Run, group: asyncio.TaskGroup, show: Show, conversation: Conversation
    ) -> None:
        """Start what is ready, wait for one to end, repeat; returns when nothing runs.

        The task rows are read once; a task that ends says how (its status, its output), and
        what a gate or a skip changes makes the next turn read them all."""
        run_id = run.id
        running: dict[str, asyncio.Task[TaskEnd]] = {}
        tasks: dict[str, TaskRow] = {}
        fresh = False  # whether `tasks` is as stored
        status: dict[str, TaskStatus] = {}
        while True:
            if not fresh:
                tasks = {t.task_id: t for t in await runs.list_tasks(self.db, run_id)}
                fresh = True
                # Each row's status, kept up to date as tasks end (a mapped attribute costs
                # more to read than a dict entry, and a chain of n tasks takes n turns).
                status = {t.task_id: t.status for t in tasks.values()}
            seen = set(status.values())
            rows = list(tasks.values())
            if (TaskStatus.WAITING in seen and await self._settle(run_id, rows, status, show)) or (
                not seen.isdisjoint(BLOCKING)
                and await self._skip_blocked(run_id, rows, status, show)
            ):
                fresh = False
                continue
            ready = self._ready(tasks, status, running)
            if ready and len(running) < self.limits.max_parallel and self.gates.has_budget(run):
                # What a start checks (the budget, what the run has spent) changes as tasks
                # finish: read afresh.
                await runs.refresh(self.db, run)
            gated = False
            for t in ready:
                if len(running) >= self.limits.max_parallel:
                    break
                if await self.gates.before_start(run, t, show):
                    gated = True
                    continue
                upstream = [tasks[d] for d in t.depends_on if d in tasks]
                running[t.task_id] = group.create_task(
                    self.tasks.run(
                        run, t, show, context=await conversation.text(), upstream=upstream
                    ),
                    name=f"task-{run_id}-{t.task_id}",
                )
            if not running:
                return
            done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
            for task_id in [k for k, v in running.items() if v in done]:
                end = running.pop(task_id).result()
                if end.status.is_final:
                    # As it was stored: what the loop and the task's dependents read.
                    tasks[task_id].status, tasks[task_id].output = end.status, end.output
                    status[task_id] = end.status
                else:
                    fresh = False  # at a gate: read the rows as the gate left them
            if gated:
                fresh = False

    @staticmethod
    def _ready(
        tasks: dict[str, TaskRow],
        status: dict[str, TaskStatus],
        running: dict[str, asyncio.Task[TaskEnd]],
    ) -> list[TaskRow]:
        pending = [
            tasks[i] for i, s in status.items() if s == TaskStatus.PENDING and i not in running
        ]
        return [
            t for t in pending if all(status.get(d) == TaskStatus.SUCCEEDED for d in t.depends_on)
        ]

    async def _settle(
        self, run_id: str, tasks: list[TaskRow], status: dict[str, TaskStatus], show: Show
    ) -> bool:
        """Turn decided approvals into runnable or finished tasks. True if anything changed."""
        decided = []
        for t in tasks:
            if status[t.task_id] == TaskStatus.WAITING:
                approval = await self.gates.settle(t)
                if approval is not None:
                    decided.append(approval)
        if not decided:
            return False
        for a in decided:
            await show(
                ApprovalDecided(run_id=run_id, task_id=a.task_id, approval_id=a.id, status=a.status)
            )
        before = {t.task_id: t.status for t in tasks}
        for t in await runs.list_tasks(self.db, run_id):
            if t.status.is_final and before.get(t.task_id) != t.status:
                await show(
                    TaskFinished(
                        run_id=run_id,
                        task_id=t.task_id,
                        status=t.status,
                        summary=t.error or _first_line(t.output or ""),
                        output=t.output or "",
                    )
                )
        return True

    async def _skip_blocked(
        self, run_id: str, tasks: list[TaskRow], status: dict[str, TaskStatus], show: Show
    ) -> bool:
        """Skip pending tasks whose dependencies failed, were skipped or rejected."""
        changed = False
        for t in tasks:
            if status[t.task_id] != TaskStatus.PENDING:
                continue
            blocked = [d for d in t.depends_on if status.get(d) in BLOCKING]
            if blocked:
                reason = f"skipped: needs {', '.join(blocked)}, which did not succeed"
                await run_states.task_skipped(self.db, run_id, t.task_id, reason)
                await show(
                    TaskFinished(
                        run_id=run_id,
                        task_id=t.task_id,
                        status=TaskStatus.SKIPPED,
                        summary=reason,
                    )
                )
                changed = True
        return changed

    async def _stop_at_deadline(self, run_id: str, show: Show) -> None:
        reason = f"stopped at the run's {self.limits.run_deadline:g} s deadline"
        for t in await runs.list_tasks(self.db, run_id):
            if t.status.is_final:
                continue
            status = TaskStatus.FAILED if t.status == TaskStatus.RUNNING else TaskStatus.SKIPPED
            await run_states.task_stopped(self.db, run_id, t.task_id, status, reason)
            await show(
                TaskFinished(run_id=run_id, task_id=t.task_id, status=status, summary=reason)
            )

    async def _finish(
        self,
        run: Run,
        tasks: list[TaskRow],
        sink: EventSink,
        conversation: Conversation,
        *,
        deadline_hit: bool,
    ) -> None:
        """The answer, from what the tasks found; `run` as read before its last tasks ran
        (its request, playbook and plan do not change while they run)."""
        run_id = run.id
        outcomes = endings.outcomes(tasks)
        status = endings.run_status(tasks)
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
                        context=await conversation.text(),
                        binding=binding,
                        retry=self.limits.retry,
                        usage=usage_hook(self.db, self.prices, run.id, None, binding.ref),
                        on_failure=failure_hook(self.db, run.id, "answer"),
                        on_text=functools.partial(self._answer_delta, sink, run.id),
                    )
            except TimeoutError:
                answer = compose(outcomes)
            answer = await self._verified(run, tasks, outcomes, answer)
        contributors = endings.contributors(tasks)
        await self._end(
            run_id,
            EventKind.RUN_FINISHED,
            status,
            answer,
            sink,
            contributors=contributors,
            data={"status": status.value},
        )

    async def _verified(
        self, run: Run, tasks: list[TaskRow], outcomes: list[TaskOutcome], answer: str
    ) -> str:
        """The answer, with the reviewer's verdict under it when the run asks for a check."""
        if not verification.wanted(run, tasks, self.catalog) or not any(
            t.status == TaskStatus.SUCCEEDED for t in tasks
        ):
            return answer
        try:
            async with asyncio.timeout(self.limits.task_timeout):
                verdict = await verification.review(run, outcomes, answer, self.deps)
            note = verdict.note
        except TimeoutError:
            note = f"⚠️ _Not checked: *{REVIEWER}* did not finish in time._"
        return f"{answer}\n\n{note}"

    async def _answer_delta(self, sink: EventSink, run_id: str, text: str) -> None:
        """A piece of the answer as the model writes it: a preview; the answer is what is stored."""
        await self.publish(sink, AnswerDelta(run_id=run_id, text=text))

    async def _fail(self, run_id: str, message: str, *, sink: EventSink | None = None) -> None:
        """End the run as failed, with a sentence that says what happened and what to do."""
        message = redact(message)  # a server's words may echo a credential
        run = await runs.get_run(self.db, run_id)
        if run is None or run.status.is_final:
            return
        await self._end(
            run_id,
            EventKind.RUN_FAILED,
            RunStatus.FAILED,
            message,
            sink or self._sinks(run),
            error=message,
            data={"error": message},
        )

    async def _stop(self, run_id: str, by: str, sink: EventSink) -> None:
        """A person stopped the run: nothing more starts; its answer says what was done."""
        run = await runs.get_run(self.db, run_id)
        if run is None or run.status.is_final:
            return
        show: Show = functools.partial(self.publish, sink)
        for t in await runs.list_tasks(self.db, run_id):
            if t.status.is_final:
                continue
            move = endings.stopped_task(t, by)
            if move.status == TaskStatus.CANCELLED:
                await run_states.task_cancelled(self.db, run_id, t.task_id, move.reason)
            else:
                await run_states.task_skipped(self.db, run_id, t.task_id, move.reason)
            await show(
                TaskFinished(
                    run_id=run_id, task_id=t.task_id, status=move.status, summary=move.reason
                )
            )
        await approvals.withdraw_pending(self.db, run_id, by=by)
        tasks = await runs.list_tasks(self.db, run_id)
        answer = endings.stopped_answer(by, tasks, await self.tasks.unfinished_calls(run_id))
        await self._end(
            run_id,
            EventKind.RUN_CANCELLED,
            RunStatus.CANCELLED,
            answer,
            sink,
            contributors=endings.contributors(tasks),
            data={"by": by},
        )

    async def _end(
        self,
        run_id: str,
        kind: EventKind,
        status: RunStatus,
        answer: str,
        sink: EventSink,
        *,
        contributors: tuple[str, ...] = (),
        error: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record the run's end and queue its answer in one transaction, then show it."""
        await run_states.run_ended(
            self.db,
            run_id,
            kind,
            status,
            answer=answer,
            error=error,
            data=dict(data or {}),
            deliver=outbox.new(
                run_id, DeliveryPurpose.ANSWER, data={"contributors": list(contributors)}
            ),
        )
        input_tokens, output_tokens, cost_usd = await runs.spent(self.db, run_id)
        await self.publish(
            sink,
            RunFinished(
                run_id=run_id,
                status=status,
                answer=answer,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost_usd,
                contributors=contributors,
            ),
        )

    @staticmethod
    async def publish(sink: EventSink, event: RunEvent) -> None:
        """Show an event; a surface that fails must not stop the run (it is already stored)."""
        try:
            await sink.publish(event)
        except Exception:
            log.exception("could not show %s", type(event).__name__)


class Conversation:
    """The thread a run answers in, as its models read it (`thread_context`): read at its
    first use in a drive, and the same for the drive's tasks and its answer (the runs before
    it in the thread had finished before it started)."""

    def __init__(self, db: Database, run: Run) -> None:
        self._db, self._run = db, run
        self._text: str | None = None

    async def text(self) -> str:
        if self._text is None:
            self._text = await thread_context(self._db, self._run)
        return self._text


def _first_line(text: str, limit: int = 140) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _task_views(tasks: list[TaskRow]) -> tuple[TaskView, ...]:
    """The task list a revision shows."""
    return tuple(
        _task_view(t.task_id, t.agent, t.instruction, t.depends_on, t.requires_approval)
        for t in tasks
    )


def _task_view(
    task_id: str, agent: str, instruction: str, depends_on: list[str], requires_approval: bool
) -> TaskView:
    """A task as the task list shows it."""
    return TaskView(
        id=task_id,
        agent=agent,
        title=_title(agent, instruction),
        depends_on=tuple(depends_on),
        requires_approval=requires_approval,
    )


def _title(agent: str, instruction: str) -> str:
    """The task list's line: the instruction's first line as plain text (no Slack markup)."""
    first = plain(instruction).strip().splitlines()[0] if instruction.strip() else agent
    return first if len(first) <= 80 else first[:77] + "…"


@dataclass(frozen=True)
class Due:
    """Runs the sweep should drive now, and when to look again for more."""

    run_ids: list[str]
    next_check: datetime | None


async def runs_to_drive(db: Database) -> Due:
    """Runs nobody drives (their process stopped), and waiting runs with a decision not yet
    applied: one query each, however many runs there are."""
    free = await runs.runs_to_resume(db)
    decided = await approvals.runs_with_decisions_to_apply(db)
    ids = list(dict.fromkeys([*free.run_ids, *decided]))
    return Due(run_ids=ids, next_check=free.next_lease_end)

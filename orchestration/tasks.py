"""Running one task: its specialist, its model, only its tools, within its time limit."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agents.errors import ModelError, ToolError, ToolServerError, TransientModelError
from agents.explain import log_failure, sentence, short
from agents.messages import Message, ToolCall
from agents.providers.registry import Binding
from agents.redact import redact
from agents.runner import (
    Decision,
    Finished,
    Hooks,
    NeedsApproval,
    first_prompt,
    run_specialist,
)
from agents.spec import AgentSpec
from agents.tools.base import Scope, Tool, ToolContext, ToolResult
from agents.verdict import Verdict
from orchestration.deps import RunDeps
from orchestration.gates import NEEDS_HUMAN, Gates, Show
from orchestration.planning import HeldUsage
from orchestration.run_events import TaskEnd, TaskFinished, TaskProgress, TaskStarted
from orchestration.step_tracing import traced_task, traced_tool
from storage import approvals, run_states, tool_calls
from storage.db import is_unavailable
from storage.models import (
    ApprovalKind,
    ApprovalStatus,
    EventKind,
    Run,
    TaskRow,
    TaskStatus,
    ToolCallRecord,
)

log = logging.getLogger(__name__)


def scope_of(run: Run, spec: AgentSpec) -> Scope:
    """A call's reach: the person who asked, where they asked, and the specialist's `reach:`."""
    reach = spec.reach
    return Scope(
        requester=run.user_id,
        channel=run.channel_id,
        read_channels=frozenset(reach.read_channels),
        post_channels=frozenset(reach.post_channels),
        webhooks=frozenset(reach.webhooks) if reach.webhooks is not None else None,
    )


@dataclass(frozen=True)
class Turn:
    """What one run of a task works with, from its start to where it ends or waits."""

    run: Run
    task: TaskRow
    show: Show
    context: str  # the thread so far
    inputs: dict[str, str]  # the outputs of the tasks it depends on
    usage: HeldUsage


class TaskRunner:
    def __init__(self, deps: RunDeps, *, gates: Gates) -> None:
        self.db = deps.db
        self.catalog = deps.catalog
        self.models = deps.models
        self.tools = deps.tools
        self.prices = deps.prices
        self.limits = deps.limits
        self.gates = gates
        self.tool_context = deps.tool_context

    @traced_task
    async def run(
        self,
        run: Run,
        task: TaskRow,
        show: Show,
        *,
        context: str = "",
        upstream: Sequence[TaskRow] = (),
    ) -> TaskEnd:
        """Run the task to a final state or to a gate, and say which. Never raises (but for
        cancellation). `context`: the thread so far; `upstream`: the rows of the tasks it
        depends on (their outputs are its inputs)."""
        attempt = task.attempts + 1
        await run_states.task_started(self.db, run.id, task.task_id, attempt=attempt)
        await show(TaskStarted(run_id=run.id, task_id=task.task_id, attempt=attempt))
        usage = HeldUsage(self.db, self.prices, run.id, task.task_id)
        turn = Turn(run, task, show, context, _inputs(task, upstream), usage)
        try:
            return await self._through(turn)
        finally:
            await _store_rest(usage)

    async def _through(self, turn: Turn) -> TaskEnd:
        """The task from its start to where it ends or waits."""
        run, task, show = turn.run, turn.task, turn.show
        outcome = await self._attempt(turn)
        while isinstance(outcome, NeedsApproval) and await self.gates.grant_for_run(
            run, task, outcome
        ):
            # An identical call was approved for the rest of the run: go on without asking.
            outcome = await self._attempt(turn, outcome.transcript)
        if outcome is None:
            return TaskEnd(TaskStatus.FAILED)
        if isinstance(outcome, NeedsApproval):
            await self.gates.open(
                run,
                task,
                show,
                kind=ApprovalKind.TOOL,
                summary=_why(outcome.transcript) or task.instruction,
                tool_name=outcome.tool.name,
                tool_args=outcome.args.model_dump(mode="json"),
                call_id=outcome.call.id,
                transcript=outcome.transcript,
            )
            return TaskEnd(TaskStatus.WAITING)
        if outcome.output.startswith(NEEDS_HUMAN) and not task.approved:
            await self.gates.open(
                run,
                task,
                show,
                kind=ApprovalKind.AGENT,
                summary=outcome.output[len(NEEDS_HUMAN) :].strip(),
                output=outcome.output,
            )
            return TaskEnd(TaskStatus.WAITING)
        return await self._finish(turn, outcome)

    async def _attempt(
        self, turn: Turn, transcript: list[Message] | None = None
    ) -> Finished | NeedsApproval | None:
        """The specialist's turn within the task's time; None when it failed (and was
        reported so, with the usage held)."""
        run, task = turn.run, turn.task
        try:
            async with asyncio.timeout(self.limits.task_timeout):
                return await self._specialist(turn, transcript)
        except TimeoutError:
            reason = f"took longer than {self.limits.task_timeout:g} s and was stopped"
        except ModelError as e:
            log_failure(run.id, f"task {task.task_id}", e.model or task.agent, e)
            tries = self.limits.retry.max_attempts if isinstance(e, TransientModelError) else None
            reason = sentence(e, attempts=tries)
        except ToolServerError as e:
            reason = str(e)
        except Exception as e:
            if is_unavailable(e):
                raise  # not the task's fault: the drive leaves the run, and it is resumed
            log.exception("task %s/%s crashed", run.id, task.task_id)
            reason = "an internal error stopped it (see the bot's log)"
        await self._fail(turn, reason)
        return None

    async def _finish(self, turn: Turn, outcome: Finished) -> TaskEnd:
        """The task's status is the verdict on what happened, not the model's say-so."""
        run, task, show, usage = turn.run, turn.task, turn.show, turn.usage
        status = _STATUS[outcome.judgement.verdict]
        reason = outcome.judgement.reason
        spends = usage.held
        await run_states.task_finished(
            self.db,
            run.id,
            task.task_id,
            status,
            output=outcome.output,
            error=reason or None,
            model=outcome.model,
            usage=spends,
        )
        usage.stored(spends)
        await show(
            TaskFinished(
                run_id=run.id,
                task_id=task.task_id,
                status=status,
                summary=reason or _first_line(outcome.output),
                output=outcome.output,
            )
        )
        return TaskEnd(status, outcome.output)

    async def _specialist(
        self, turn: Turn, saved: list[Message] | None = None
    ) -> Finished | NeedsApproval:
        run, task, show, usage = turn.run, turn.task, turn.show, turn.usage
        spec = self.catalog.agent(task.agent)
        if spec is None:
            raise ModelError(f"the specialist '{task.agent}' is no longer in the catalog")
        binding = self.models.for_agent(spec)
        if saved is not None:
            transcript = saved
        elif task.transcript:
            transcript = [Message.model_validate(m) for m in task.transcript]
            transcript = await self._with_edits(task, transcript)
        else:
            transcript = [Message(role="user", content=first_prompt(task.instruction, turn.inputs))]

        async def progress(detail: str) -> None:
            await run_states.note(
                self.db,
                run.id,
                EventKind.TASK_PROGRESS,
                task_id=task.task_id,
                data={"detail": detail},
            )
            await show(TaskProgress(run_id=run.id, task_id=task.task_id, detail=detail))

        async def on_retry(attempt: int, error: TransientModelError, delay: float) -> None:
            await progress(f"model unavailable ({short(error)}); retry {attempt} in {delay:.1f} s")

        async def on_switch(failed: Binding, error: ModelError, next_: Binding) -> None:
            log_failure(run.id, f"task {task.task_id}", failed.ref, error)
            await run_states.note(
                self.db,
                run.id,
                EventKind.MODEL_FALLBACK,
                task_id=task.task_id,
                data={"from": failed.ref, "to": next_.ref, "failure": error.failure.value},
            )
            await progress(f"{failed.ref} failed ({short(error)}); {next_.ref} takes over")

        # The n-th identical call of this task (same tool, same arguments) has key n: a
        # replay after a restart finds its earlier claim, a deliberate repeat gets its own.
        calls = Counter(_signature(c) for c in _answered_calls(transcript))

        async def perform(tool: Tool, args: BaseModel, call: ToolCall) -> ToolResult:
            signature = _signature(call)
            key = f"{run.id}:{task.task_id}:{signature}#{calls[signature]}"
            calls[signature] += 1
            await usage.store()  # a tool may take a while: what was spent shows meanwhile
            return await self._perform(run, task, tool, args, call, key)

        return await run_specialist(
            spec,
            transcript,
            binding=binding,
            tools=self.tools,
            hooks=Hooks(
                progress=progress,
                usage=usage.hook(binding.ref, spec.name),
                perform=perform,
                scope=scope_of(run, spec),
            ),
            retry=self.limits.retry,
            # Only a conversation that stopped at a gate can have a decision waiting.
            decisions=await self._decisions(task) if saved or task.transcript else OneShot({}),
            on_retry=on_retry,
            on_switch=on_switch,
            context=turn.context,
        )

    async def _with_edits(self, task: TaskRow, transcript: list[Message]) -> list[Message]:
        """A call approved with edited arguments is made with those: the transcript's call
        is changed to what the approver set (the audit keeps what was asked)."""
        gates = [
            a for a in await approvals.for_run(self.db, task.run_id) if a.task_id == task.task_id
        ]
        latest = gates[-1] if gates else None
        if (
            latest is None
            or latest.status != ApprovalStatus.APPROVED
            or latest.edited_args is None
            or latest.call_id is None
        ):
            return transcript
        answered = {m.tool_call_id for m in transcript if m.role == "tool"}
        for i in range(len(transcript) - 1, -1, -1):
            m = transcript[i]
            if m.role != "assistant" or not any(c.id == latest.call_id for c in m.tool_calls):
                continue
            calls = [
                c.model_copy(update={"arguments": dict(latest.edited_args)})
                if c.id == latest.call_id and c.id not in answered
                else c
                for c in m.tool_calls
            ]
            return [
                *transcript[:i],
                m.model_copy(update={"tool_calls": calls}),
                *transcript[i + 1 :],
            ]
        return transcript

    async def _decisions(self, task: TaskRow) -> Mapping[str, Decision]:
        """The decision on the call the task stopped at: its latest gate, and only that one."""
        gates = [
            a for a in await approvals.for_run(self.db, task.run_id) if a.task_id == task.task_id
        ]
        latest = gates[-1] if gates else None
        if latest is None or latest.call_id is None or latest.status != ApprovalStatus.APPROVED:
            return OneShot({})
        return OneShot({latest.call_id: Decision(approved=True, by=latest.decided_by or "nobody")})

    async def unfinished_calls(self, run_id: str) -> list[ToolCallRecord]:
        """Side-effecting calls claimed but never finished: they may have happened."""
        return [c for c in await tool_calls.for_run(self.db, run_id) if not c.result]

    @traced_tool
    async def _perform(
        self, run: Run, task: TaskRow, tool: Tool, args: BaseModel, call: ToolCall, key: str
    ) -> ToolResult:
        """Call the tool; a side-effecting call is claimed first so it can never happen twice."""
        ctx: ToolContext = self.tool_context(run.id, task.task_id, key)
        spec = self.catalog.agent(task.agent)
        if spec is not None:
            ctx = dataclasses.replace(ctx, scope=scope_of(run, spec))
        if not tool.requires_approval:
            result = await tool.run(args, ctx)
            await self._remember(run, task, tool, result)
            return result
        earlier = await tool_calls.claim(
            self.db,
            key,
            run_id=run.id,
            task_id=task.task_id,
            tool=tool.name,
            args=args.model_dump(mode="json"),
        )
        if earlier is not None:
            if earlier.result.startswith("Error:"):
                raise ToolError(earlier.result.removeprefix("Error:").strip())
            if earlier.result:
                return ToolResult(summary=f"`{tool.name}` was already done", content=earlier.result)
            raise ToolError(
                f"`{tool.name}` was started before a restart and may already have happened; "
                "it is not repeated"
            )
        try:
            result = await tool.run(args, ctx)
        except ToolError as e:
            await tool_calls.complete(self.db, key, result=f"Error: {e}")
            raise
        await tool_calls.complete(self.db, key, result=f"{result.summary}\n{result.content}")
        await self._remember(run, task, tool, result)
        return result

    async def _remember(self, run: Run, task: TaskRow, tool: Tool, result: ToolResult) -> None:
        """Keep each tool result's figures: digests compare them with the previous run's."""
        await run_states.note(
            self.db,
            run.id,
            EventKind.TOOL_RESULT,
            task_id=task.task_id,
            data={
                "tool": tool.name,
                "ok": result.ok,
                "summary": result.summary,
                "data": result.data,
            },
        )

    async def _fail(self, turn: Turn, reason: str) -> None:
        run, task, show, usage = turn.run, turn.task, turn.show, turn.usage
        reason = redact(reason)  # a server's words may echo a credential
        spends = usage.held
        await run_states.task_failed(self.db, run.id, task.task_id, reason, usage=spends)
        usage.stored(spends)
        await show(
            TaskFinished(
                run_id=run.id, task_id=task.task_id, status=TaskStatus.FAILED, summary=reason
            )
        )


_STATUS = {
    Verdict.DONE: TaskStatus.SUCCEEDED,
    Verdict.UNVERIFIED: TaskStatus.UNVERIFIED,
    Verdict.FAILED: TaskStatus.FAILED,
    Verdict.REJECTED: TaskStatus.REJECTED,
}


class OneShot(Mapping[str, Decision]):
    """Decisions by call id, each given out once.

    Some model servers reuse call ids (`call_0` every turn): a decision must answer the one
    call a person saw, never a later, different call that happens to carry the same id.
    """

    def __init__(self, decisions: dict[str, Decision]) -> None:
        self._decisions = dict(decisions)

    def __getitem__(self, call_id: str) -> Decision:
        return self._decisions.pop(call_id)

    def get(self, call_id: str, default: Any = None) -> Any:
        return self._decisions.pop(call_id, default)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._decisions))

    def __len__(self) -> int:
        return len(self._decisions)


async def _store_rest(usage: HeldUsage) -> None:
    """On the way out of a task (cancelled, or failed inside Baton): store the usage still
    held, if the database lets us; a failure here must not hide why the task ended."""
    try:
        await usage.store()
    except Exception as e:
        log.warning("run %s: usage of task %s not stored: %s", usage.run_id, usage.task_id, e)


def _inputs(task: TaskRow, upstream: Sequence[TaskRow]) -> dict[str, str]:
    """Only the outputs of this task's own dependencies."""
    rows = {t.task_id: t for t in upstream}
    return {f"{d} ({rows[d].agent})": rows[d].output or "" for d in task.depends_on if d in rows}


def _signature(call: ToolCall) -> str:
    """The call's content — tool and canonical arguments — never the model's call id."""
    canonical = json.dumps(call.arguments, sort_keys=True, separators=(",", ":"), default=str)
    return f"{call.name}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def _answered_calls(transcript: list[Message]) -> list[ToolCall]:
    """Calls in a saved transcript that already have a result (performed, or refused).

    A call's result follows its own assistant turn, so ids are matched turn by turn.
    """
    found: list[ToolCall] = []
    for i, m in enumerate(transcript):
        if m.role != "assistant":
            continue
        answered: set[str | None] = set()
        for later in transcript[i + 1 :]:
            if later.role == "assistant":
                break
            if later.role == "tool":
                answered.add(later.tool_call_id)
        found += [c for c in m.tool_calls if c.id in answered]
    return found


def _first_line(text: str, limit: int = 140) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _why(transcript: list[Message]) -> str:
    """What the model said alongside the gated call: its reason for wanting it."""
    for m in reversed(transcript):
        if m.role == "assistant":
            return m.content.strip()
    return ""

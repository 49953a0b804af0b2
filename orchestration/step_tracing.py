"""Spans and counters around the orchestrator's steps, applied as decorators.

The engine and the task runner stay about running things: each traced step is one
decorator line there, and what the span says (the run's or task's final state, read back
from the database) is worked out here.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from opentelemetry.trace import Span, Status, StatusCode
from pydantic import BaseModel

from agents.genai import RUN_STATUS_ATTR, TASK_STATUS_ATTR
from agents.messages import ToolCall
from agents.spans import run_span, task_span, tool_result, tool_span
from agents.telemetry import RUN_ID, Telemetry, traceparent
from agents.tools.base import Tool, ToolResult
from orchestration.run_events import TaskEnd
from storage import runs
from storage.db import Database, utcnow
from storage.models import Run, RunStatus, TaskRow, TaskStatus


class _Driver(Protocol):
    db: Database
    telemetry: Telemetry


class _TaskDriver(Protocol):
    db: Database


log = logging.getLogger(__name__)

D = TypeVar("D", bound=_Driver)
T = TypeVar("T", bound=_TaskDriver)
S = TypeVar("S")
P = ParamSpec("P")


def with_run_id(
    fn: Callable[[S, str], Coroutine[Any, Any, None]],
) -> Callable[[S, str], Coroutine[Any, Any, None]]:
    """Log records written while `fn(self, run_id)` works carry the run id."""

    @functools.wraps(fn)
    async def wrapper(self: S, run_id: str) -> None:
        token = RUN_ID.set(run_id)
        try:
            await fn(self, run_id)
        finally:
            RUN_ID.reset(token)

    return wrapper


def traced_run(
    fn: Callable[[D, Run, S], Coroutine[Any, Any, None]],
) -> Callable[[D, Run, S], Coroutine[Any, Any, None]]:
    """One stretch of a run inside the supervisor's span; a run that ends is timed and counted."""

    @functools.wraps(fn)
    async def wrapper(self: D, run: Run, sink: S) -> None:
        if run.status.is_final:
            await fn(self, run, sink)
            return
        with run_span(
            self.telemetry,
            run_id=run.id,
            team_id=run.team_id,
            channel_id=run.channel_id,
            thread_ts=run.thread_ts,
            parent=run.traceparent,
        ) as span:
            if run.traceparent is None and (parent := traceparent(span)) is not None:
                await runs.set_traceparent(self.db, run.id, parent)
            await fn(self, run, sink)
            after = await runs.outcome_of(self.db, run.id)
            if after is not None:
                _run_outcome(self.telemetry, span, after)

    return wrapper


def _run_outcome(telemetry: Telemetry, span: Span, run: runs.Outcome) -> None:
    span.set_attribute(RUN_STATUS_ATTR, run.status.value)
    if run.status == RunStatus.FAILED:
        span.set_status(Status(StatusCode.ERROR, "run failed"))
    if not run.status.is_final:
        log.info("run %s is %s", run.id, run.status.value)
        return
    seconds = ((run.finished_at or utcnow()) - run.created_at).total_seconds()
    if telemetry.metrics is not None:
        telemetry.metrics.run_finished(run.status.value, seconds)
    log.info(
        "run %s %s after %.1f s: %d tokens, $%.4f",
        run.id,
        run.status.value,
        seconds,
        run.input_tokens + run.output_tokens,
        run.cost_usd,
    )


def traced_task(
    fn: Callable[Concatenate[T, Run, TaskRow, S, P], Coroutine[Any, Any, TaskEnd]],
) -> Callable[Concatenate[T, Run, TaskRow, S, P], Coroutine[Any, Any, TaskEnd]]:
    """A task inside its specialist's span, which ends saying what became of the task."""

    @functools.wraps(fn)
    async def wrapper(
        self: T, run: Run, task: TaskRow, show: S, /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskEnd:
        start = time.perf_counter()
        with task_span(
            agent=task.agent, task_id=task.task_id, run_id=run.id, attempt=task.attempts + 1
        ) as span:
            end = await fn(self, run, task, show, *args, **kwargs)
            status = end.status
            span.set_attribute(TASK_STATUS_ATTR, status.value)
            if status == TaskStatus.FAILED:
                span.set_status(Status(StatusCode.ERROR, "task failed"))
            log.info(
                "task %s (%s) %s after %.1f s",
                task.task_id,
                task.agent,
                status.value,
                time.perf_counter() - start,
            )
            return end

    return wrapper


PerformTool = Callable[
    [S, Run, TaskRow, Tool, BaseModel, ToolCall, str], Coroutine[Any, Any, ToolResult]
]


def traced_tool(fn: PerformTool[S]) -> PerformTool[S]:
    """A tool call (under its idempotency key) inside an `execute_tool` span."""

    @functools.wraps(fn)
    async def wrapper(
        self: S, run: Run, task: TaskRow, tool: Tool, args: BaseModel, call: ToolCall, key: str
    ) -> ToolResult:
        with tool_span(
            name=tool.name,
            call_id=call.id,
            description=tool.description,
            arguments=args.model_dump_json(),
        ) as span:
            result = await fn(self, run, task, tool, args, call, key)
            tool_result(span, ok=result.ok, content=result.content)
            return result

    return wrapper

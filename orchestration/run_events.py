"""What a run tells the outside world as it goes.

The orchestrator writes every state change to the database first, then publishes one of
these to the run's `EventSink`. The Slack surface renders them; tests and the sandbox may
listen too. Nothing here knows about Slack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from storage.models import ApprovalStatus, RunStatus, TaskStatus


@dataclass(frozen=True)
class TaskEnd:
    """How a task's turn ended: its status, and, when it succeeded, the output its dependents
    read (so the driver need not read the row again)."""

    status: TaskStatus
    output: str | None = None


@dataclass(frozen=True)
class TaskView:
    """A task as a person sees it in the task list."""

    id: str
    agent: str
    title: str
    depends_on: tuple[str, ...] = ()
    requires_approval: bool = False


@dataclass(frozen=True)
class RunAccepted:
    run_id: str
    request: str


@dataclass(frozen=True)
class CostEstimate:
    """What a plan will probably cost, before any specialist starts (a rough guide)."""

    tokens: int
    usd: float
    unpriced: tuple[str, ...] = ()  # models without a price: their share is not in `usd`


@dataclass(frozen=True)
class PlanReady:
    run_id: str
    title: str
    tasks: tuple[TaskView, ...]
    estimate: CostEstimate | None = None


@dataclass(frozen=True)
class PlanRevised:
    """The run's one revision: new tasks for what remains after some did not succeed."""

    run_id: str
    title: str
    tasks: tuple[TaskView, ...]  # only the new ones; the earlier tasks stay as they are


@dataclass(frozen=True)
class TaskStarted:
    run_id: str
    task_id: str
    attempt: int = 1


@dataclass(frozen=True)
class TaskProgress:
    """Something worth a line in the task's details: a tool call, a retry."""

    run_id: str
    task_id: str
    detail: str


@dataclass(frozen=True)
class TaskFinished:
    run_id: str
    task_id: str
    status: TaskStatus  # a final one: succeeded, failed, skipped, rejected, …
    summary: str  # one line for the task list
    output: str = ""


@dataclass(frozen=True)
class ApprovalRequested:
    run_id: str
    task_id: str
    approval_id: str


@dataclass(frozen=True)
class ApprovalDecided:
    run_id: str
    task_id: str
    approval_id: str
    status: ApprovalStatus


@dataclass(frozen=True)
class RunWaiting:
    """The run is suspended until every pending approval is decided."""

    run_id: str
    pending: tuple[str, ...]  # approval ids


@dataclass(frozen=True)
class AnswerDelta:
    """A piece of the final answer as the supervisor writes it (streaming)."""

    run_id: str
    text: str


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    status: RunStatus  # a final one
    answer: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    contributors: tuple[str, ...] = field(default_factory=tuple)


RunEvent = (
    RunAccepted
    | PlanReady
    | PlanRevised
    | TaskStarted
    | TaskProgress
    | TaskFinished
    | ApprovalRequested
    | ApprovalDecided
    | RunWaiting
    | AnswerDelta
    | RunFinished
)


class EventSink(Protocol):
    """Receives a run's events in order. A sink must not raise: it reports its own failures."""

    async def publish(self, event: RunEvent) -> None: ...

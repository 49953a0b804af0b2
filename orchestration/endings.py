"""How a run ends: its status, and the sentences that say what was and was not done.

Pure functions over task rows: the engine records what they decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestration.supervisor import TaskOutcome, compose
from storage.models import RunStatus, TaskRow, TaskStatus, ToolCallRecord


def outcomes(tasks: Sequence[TaskRow]) -> list[TaskOutcome]:
    """Each task as the answer reports it: its output, or why it has none."""
    return [
        TaskOutcome(
            id=t.task_id,
            agent=t.agent,
            status=t.status.value,
            output=(t.output if t.status == TaskStatus.SUCCEEDED else t.error) or "",
        )
        for t in tasks
    ]


def run_status(tasks: Sequence[TaskRow]) -> RunStatus:
    """Succeeded when every task did, partial when some did, else failed."""
    succeeded = sum(1 for t in tasks if t.status == TaskStatus.SUCCEEDED)
    if succeeded == len(tasks):
        return RunStatus.SUCCEEDED
    return RunStatus.PARTIAL if succeeded else RunStatus.FAILED


def contributors(tasks: Sequence[TaskRow]) -> tuple[str, ...]:
    """The specialists whose work is in the answer, in plan order."""
    return tuple(dict.fromkeys(t.agent for t in tasks if t.status == TaskStatus.SUCCEEDED))


@dataclass(frozen=True)
class TaskMove:
    """What a Stop does to one unfinished task."""

    status: TaskStatus  # cancelled or skipped
    reason: str


def stopped_task(task: TaskRow, by: str) -> TaskMove:
    """Running or at a gate: cancelled; not started yet: skipped."""
    if task.status == TaskStatus.RUNNING:
        return TaskMove(TaskStatus.CANCELLED, f"stopped by <@{by}> while it ran")
    if task.status == TaskStatus.WAITING:
        return TaskMove(
            TaskStatus.CANCELLED,
            f"not done: the run was stopped by <@{by}> before anyone decided",
        )
    return TaskMove(TaskStatus.SKIPPED, f"not started: the run was stopped by <@{by}>")


def stopped_answer(by: str, tasks: Sequence[TaskRow], unfinished: Sequence[ToolCallRecord]) -> str:
    """The answer of a stopped run: who stopped it, what was done before, what may have been."""
    done = [t for t in tasks if t.status == TaskStatus.SUCCEEDED]
    parts = [f"⏹️ Stopped by <@{by}>."]
    if done:
        parts.append("Done before the stop:\n\n" + compose(outcomes(done)))
    else:
        parts.append("Nothing was finished before the stop.")
    not_done = [t for t in tasks if t.status != TaskStatus.SUCCEEDED]
    if not_done:
        parts.append(
            "**Not done:**\n"
            + "\n".join(
                f"• `{t.task_id}` ({t.agent}) — {t.error or t.status.value}" for t in not_done
            )
        )
    if unfinished:
        parts.append(
            "\n".join(
                f"⚠️ `{c.tool}` (task `{c.task_id}`) had started when the run was stopped and may "
                "have happened; it was not repeated."
                for c in unfinished
            )
        )
    return "\n\n".join(parts)

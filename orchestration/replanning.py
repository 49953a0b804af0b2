"""Replanning once: when tasks fail or are rejected, the supervisor may revise the plan.

A run gets at most one revision, stored with its plan (`plan["revision"]`) in the same
transaction as its new tasks, so a restarted driver neither asks again nor loses the new
tasks. The revision adds tasks for what remains (within `max_tasks` and the run's budget);
the tasks that did not succeed stay in the list as they ended. A playbook is the plan the
person chose and is never revised; the offline planner has no other way and finishes as is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from agents.errors import ModelError
from agents.explain import sentence
from agents.pricing import PriceTable
from agents.providers.registry import Models
from agents.spec import Catalog
from orchestration import endings
from orchestration.errors import PlanningError
from orchestration.limits import Limits
from orchestration.planning import failure_hook, thread_context, usage_hook
from orchestration.supervisor import revise_plan
from storage import runs
from storage.db import Database, utcnow
from storage.models import Run, TaskRow, TaskStatus

log = logging.getLogger(__name__)

# What makes a revision worth asking for: a step that failed, or one a person turned down.
REVISE_AFTER = (TaskStatus.FAILED, TaskStatus.REJECTED)
REVISED = " (revised)"


@dataclass(frozen=True)
class Revision:
    title: str
    tasks: list[TaskRow]


def reason_not_to(run: Run, tasks: list[TaskRow], *, token_budget: int | None) -> str | None:
    """Why this run is not revised now, or None when it may be."""
    if (run.plan or {}).get("revision"):
        return "revised once already"
    if run.playbook:
        return "a playbook is the plan"
    if not any(t.status in REVISE_AFTER for t in tasks):
        return "nothing failed"
    if any(t.status == TaskStatus.CANCELLED for t in tasks) or run.cancel_requested_by:
        return "stopped"
    if run.budget_usd is not None and run.cost_usd >= run.budget_usd:
        return "the run's budget is spent"
    if token_budget is not None and run.input_tokens + run.output_tokens >= token_budget:
        return "the run's token budget is spent"
    return None


async def revise(
    run: Run,
    tasks: list[TaskRow],
    *,
    db: Database,
    catalog: Catalog,
    models: Models,
    limits: Limits,
    prices: PriceTable,
    token_budget: int | None,
) -> Revision | None:
    """Ask for the run's one revision and store it; the new tasks, or None to finish."""
    why_not = reason_not_to(run, tasks, token_budget=token_budget)
    if why_not is not None:
        log.debug("run %s is not revised: %s", run.id, why_not)
        return None
    binding = models.resolve("default")
    remaining = (run.deadline_at - utcnow()).total_seconds() if run.deadline_at else None
    outcome: dict[str, Any] = {}
    plan = None
    try:
        async with asyncio.timeout(remaining):
            plan = await revise_plan(
                run.request,
                endings.outcomes(tasks),
                context=await thread_context(db, run),
                catalog=catalog,
                binding=binding,
                retry=limits.retry,
                max_tasks=limits.max_tasks,
                usage=usage_hook(db, prices, run.id, None, binding.ref),
                on_failure=failure_hook(db, run.id, "replanning"),
            )
    except (ModelError, PlanningError) as e:
        why = sentence(e) if isinstance(e, ModelError) else str(e)
        log.warning("run %s: no revised plan: %s", run.id, why)
        outcome["error"] = why
    except TimeoutError:
        outcome["error"] = "the run's deadline came first"
    title = str((run.plan or {}).get("title") or "Plan")
    title = title if title.endswith(REVISED) else title + REVISED
    first = max((t.position for t in tasks), default=-1) + 1
    rows = [
        TaskRow(
            run_id=run.id,
            task_id=t.id,
            position=first + i,
            agent=t.agent,
            instruction=t.instruction,
            depends_on=list(t.depends_on),
            requires_approval=t.requires_approval,
        )
        for i, t in enumerate(plan.tasks if plan is not None else [])
    ]
    outcome.update(
        title=title if rows else (run.plan or {}).get("title"),
        after=[t.task_id for t in tasks if t.status in REVISE_AFTER],
        tasks=[t.model_dump() for t in plan.tasks] if plan is not None else [],
    )
    if not await runs.save_revision(db, run.id, outcome, rows):
        return None
    return Revision(title=title, tasks=rows) if rows else None

"""From a run row to a validated plan: a playbook, or the supervisor's plan."""

from __future__ import annotations

from agents.messages import Usage
from agents.pricing import PriceTable
from agents.providers.registry import Models
from agents.spec import Catalog
from agents.telemetry import record_usage
from orchestration.errors import PlanningError
from orchestration.limits import Limits
from orchestration.plan import Plan, from_playbook, problems
from orchestration.supervisor import UsageHook, make_plan
from storage import runs
from storage.db import Database
from storage.models import Run

# Earlier answers are cut to this many characters when given back to the supervisor.
CONTEXT_ANSWER_CHARS = 1500


async def thread_context(db: Database, run: Run) -> str:
    """The conversation so far in this Slack thread, as the supervisor reads it."""
    if not (run.channel_id and run.thread_ts):
        return run.context or ""
    earlier = await runs.thread_runs(
        db, channel_id=run.channel_id, thread_ts=run.thread_ts, before=run.id
    )
    parts = [run.context] if run.context else []
    if earlier:
        parts.append("Earlier in this conversation:")
        for r in earlier:
            answer = (r.answer or "").strip()
            if len(answer) > CONTEXT_ANSWER_CHARS:
                answer = answer[:CONTEXT_ANSWER_CHARS] + "…"
            parts.append(f"User: {r.request}\nBaton: {answer}")
    return "\n\n".join(parts)


def usage_hook(
    db: Database, prices: PriceTable, run_id: str, task_id: str | None, ref: str
) -> UsageHook:
    """Adds each model call's tokens and cost to the task and the run as it happens."""

    async def hook(usage: Usage) -> None:
        cost = prices.cost(ref, usage)
        await runs.add_usage(
            db,
            run_id,
            task_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost,
        )
        record_usage(ref, usage, cost)

    return hook


async def plan_for(
    run: Run, *, db: Database, catalog: Catalog, models: Models, limits: Limits, prices: PriceTable
) -> Plan:
    """The run's plan. Raises PlanningError with a sentence for the user."""
    if run.playbook:
        playbook = catalog.playbook(run.playbook)
        if playbook is None:
            names = ", ".join(f"`{p.name}`" for p in catalog.playbooks) or "none"
            raise PlanningError(
                f"There is no playbook called `{run.playbook}`. Playbooks: {names}."
            )
        plan = from_playbook(playbook, run.request)
        found = problems(plan, catalog, max_tasks=max(limits.max_tasks, len(plan.tasks)))
        if found:
            raise PlanningError(f"The playbook `{playbook.name}` is invalid: " + "; ".join(found))
        return plan
    if not run.request.strip():
        raise PlanningError(
            "The request is empty. Say what you need, e.g. `/baton check https://example.com`."
        )
    binding = models.resolve("default")
    return await make_plan(
        run.request,
        context=await thread_context(db, run),
        catalog=catalog,
        binding=binding,
        retry=limits.retry,
        max_tasks=limits.max_tasks,
        usage=usage_hook(db, prices, run.id, None, binding.ref),
    )

"""From a run row to a validated plan: a playbook, the triggers, or the supervisor's plan."""

from __future__ import annotations

from agents.errors import ModelError
from agents.explain import log_failure, sentence
from agents.messages import Usage
from agents.pricing import PriceTable
from agents.providers.registry import Binding, Models
from agents.spec import Catalog
from agents.telemetry import record_usage
from orchestration.errors import PlanningError
from orchestration.limits import Limits
from orchestration.plan import Plan, from_playbook, problems
from orchestration.routing import route
from orchestration.supervisor import FailureHook, InvalidPlan, UsageHook, make_plan
from storage import run_states, runs
from storage.db import Database
from storage.models import EventKind, Run

# Earlier answers are cut to this many characters when given back to the supervisor.
CONTEXT_ANSWER_CHARS = 1500
# The conversation given to the planner and the specialists: its newest entries, at most
# this many, each cut to CONTEXT_ANSWER_CHARS.
CONTEXT_ENTRIES = 12
SUPERVISOR = "supervisor"  # how planning and the final answer appear in cost roll-ups
# The event in which the bot keeps the people's messages of the thread that were not requests.
THREAD_MESSAGES = EventKind.THREAD_MESSAGES


def _cut(text: str) -> str:
    text = text.strip()
    return text[:CONTEXT_ANSWER_CHARS] + "…" if len(text) > CONTEXT_ANSWER_CHARS else text


async def thread_context(db: Database, run: Run) -> str:
    """The conversation so far in this Slack thread, newest first, as Baton's models read it.

    Earlier requests and answers come from Baton's own runs; what people wrote in between
    (not to Baton) is what the bot found in the thread after the ack.
    """
    if not (run.channel_id and run.thread_ts):
        return run.context or ""
    earlier = await runs.thread_runs(
        db, channel_id=run.channel_id, thread_ts=run.thread_ts, before=run.id
    )
    entries: list[tuple[float, str]] = []
    for r in earlier:
        who = f" (<@{r.user_id}>)" if r.user_id else ""
        entries.append(
            (
                r.created_at.timestamp(),
                f"Request to Baton{who}: {_cut(r.request)}\nBaton's answer: {_cut(r.answer or '')}",
            )
        )
    for e in await runs.events(db, run.id, kind=THREAD_MESSAGES):
        for m in (e.data or {}).get("messages", []):
            who = f"<@{m['user']}>" if m.get("user") else "Someone"
            entries.append((float(m["ts"]), f"{who} wrote: {_cut(str(m['text']))}"))
    parts = [run.context] if run.context else []
    if entries:
        newest = sorted(entries, key=lambda e: e[0], reverse=True)[:CONTEXT_ENTRIES]
        parts.append("Earlier in this conversation (newest first):")
        parts.extend(text for _, text in newest)
    return "\n\n".join(parts)


def usage_hook(
    db: Database,
    prices: PriceTable,
    run_id: str,
    task_id: str | None,
    ref: str,
    *,
    agent: str = SUPERVISOR,
) -> UsageHook:
    """Adds each model call's tokens and cost to the task, the run and the usage ledger.

    The call's own model (a fallback may have answered) prices it; `ref` is the default.
    """

    async def hook(usage: Usage, model: str = ref) -> None:
        await runs.add_usage(db, run_id, task_id, spend(prices, usage, model, agent))

    return hook


class HeldUsage:
    """A task's model calls' usage, held until the task's next move stores it in its own
    transaction: a task's last call is followed at once by its finishing move, so that call
    costs no transaction of its own. Whatever may take a while (a tool call, a gate) stores
    what is held first (`store`); a task that ends any other way stores it on its way out.

    A process that dies between a call and the next store loses that call's usage; the task
    is run again, and its calls then are counted."""

    def __init__(self, db: Database, prices: PriceTable, run_id: str, task_id: str) -> None:
        self.db, self.prices, self.run_id, self.task_id = db, prices, run_id, task_id
        self._held: list[runs.Spend] = []

    def hook(self, ref: str, agent: str) -> UsageHook:
        """The usage hook of the task's specialist; `ref` prices a call that names no model."""

        async def hold(usage: Usage, model: str = ref) -> None:
            self._held.append(spend(self.prices, usage, model, agent))

        return hold

    @property
    def held(self) -> tuple[runs.Spend, ...]:
        """What a move should store with itself (then call `stored`)."""
        return tuple(self._held)

    def stored(self, spends: tuple[runs.Spend, ...]) -> None:
        """A move stored these: held no more. (A move that failed leaves them held.)"""
        self._held = [s for s in self._held if s not in spends]

    async def store(self) -> None:
        """Store what is held, alone."""
        if held := self.held:
            await runs.add_usage(self.db, self.run_id, self.task_id, *held)
            self.stored(held)


def spend(prices: PriceTable, usage: Usage, model: str, agent: str) -> runs.Spend:
    """One model call's usage, priced, as the ledger keeps it (and counted in the metrics)."""
    cost = prices.cost(model, usage)
    record_usage(model, usage, cost)
    return runs.Spend(
        usage.input_tokens, usage.output_tokens, cost, model, agent, prices.known(model)
    )


def failure_hook(db: Database, run_id: str, where: str) -> FailureHook:
    """Logs a model's failure with the run id, and records that the next model takes over."""

    async def hook(link: Binding, error: ModelError) -> None:
        log_failure(run_id, where, link.ref, error)
        await run_states.note(
            db,
            run_id,
            EventKind.MODEL_FAILED,
            data={"where": where, "model": link.ref, "failure": error.failure.value},
        )

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
    routed = route(run.request, catalog, models.tools)
    if routed.certain is not None:
        await _routed(db, run, "triggers")
        return routed.certain
    binding = models.resolve("default")
    try:
        plan = await make_plan(
            run.request,
            context=await thread_context(db, run),
            catalog=catalog,
            binding=binding,
            retry=limits.retry,
            max_tasks=limits.max_tasks,
            usage=usage_hook(db, prices, run.id, None, binding.ref),
            route=routed,
            on_failure=failure_hook(db, run.id, "planning"),
        )
    except (ModelError, InvalidPlan) as e:
        if isinstance(e, InvalidPlan):
            await run_states.note(db, run.id, EventKind.PLAN_INVALID, data={"problems": e.problems})
        if routed.agents or routed.playbooks:
            # The model could not plan, but the catalog's triggers can: better than nothing.
            await _routed(db, run, "triggers after the model failed")
            fallback = routed.by_triggers(max_tasks=limits.max_tasks)
            return fallback.model_copy(update={"title": f"{fallback.title} (planned by triggers)"})
        if isinstance(e, InvalidPlan):
            raise
        raise PlanningError(f"I could not plan this: {sentence(e)}") from e
    await _routed(db, run, "offline triggers" if binding.offline else "model")
    return plan


async def _routed(db: Database, run: Run, by: str) -> None:
    await run_states.note(db, run.id, EventKind.PLAN_ROUTED, data={"by": by})

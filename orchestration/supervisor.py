"""The supervisor: turns a request into a plan, and task results into one answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError

from agents import fallback
from agents.errors import Failure, ModelBehaviorError, ModelError
from agents.messages import Message, ModelRequest, ModelResponse, Usage
from agents.providers.base import TextSink
from agents.providers.registry import Binding
from agents.retry import RetryPolicy
from agents.spec import Catalog
from orchestration.errors import PlanningError
from orchestration.plan import Plan, plan_schema, problems
from orchestration.routing import Route

UsageHook = Callable[[Usage, str], Awaitable[None]]  # a call's usage, and its model
# A model of the chain failed (it is logged; the next one is tried).
FailureHook = Callable[[Binding, ModelError], Awaitable[None]]

PLANNER_PROMPT = """You are the supervisor of a team of specialist agents working for people in Slack.
Turn the request into a plan: a few tasks, each for exactly one specialist from the list.
Tasks that do not need each other's results must not depend on each other, so they run in
parallel. A task that needs other tasks' results lists their ids in depends_on; it receives
their outputs. Each instruction must be self-contained. Mark requires_approval on a task
only when it changes something outside (posts elsewhere, calls a webhook). Use at most
{max_tasks} tasks.

Specialists:
{agents}"""

SYNTH_PROMPT = """You are the supervisor of a team of specialist agents working for people in Slack.
Write the final answer to the request from the specialists' results below. Be concise and
use Slack mrkdwn (*bold*, bullet lists). Say which specialist contributed what, by name.
Each result is marked with its status. Only results marked succeeded are facts. A task that
failed, was skipped, was rejected or is unverified produced nothing to rely on: say so
plainly, never fill in what it would have found, and never present it as done."""

REPAIR_PROSE = (
    "Your last reply was not a JSON object. Reply with only the JSON object of the plan, "
    "nothing before or after it."
)

_MARK = {
    "failed": "❌",
    "skipped": "⏭️",
    "rejected": "🚫",
    "unverified": "❔",
    "cancelled": "⏹️",
}


@dataclass(frozen=True)
class TaskOutcome:
    id: str
    agent: str
    status: str
    output: str


def describe_agents(catalog: Catalog) -> str:
    """The specialists as the planning model reads them."""
    lines = []
    for a in catalog.agents:
        tools = f" Tools: {', '.join(a.tools)}." if a.tools else ""
        lines.append(f"- {a.name}: {a.description}{tools}")
    return "\n".join(lines)


class InvalidPlan(PlanningError):
    """The model's plan was invalid twice; `problems` says how (for the log and the model)."""

    def __init__(self, found: list[str]) -> None:
        first = found[0] if found else "it was empty"
        more = (
            f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})"
            if len(found) > 1
            else ""
        )
        super().__init__(
            f"I could not make a valid plan for this request: {first}{more}. "
            "Rephrase it, or run a playbook (`/baton agents` lists them)."
        )
        self.problems = found


async def make_plan(
    request: str,
    *,
    context: str,
    catalog: Catalog,
    binding: Binding,
    retry: RetryPolicy,
    max_tasks: int,
    usage: UsageHook,
    route: Route,
    on_failure: FailureHook | None = None,
) -> Plan:
    """A plan from the first model of the chain that can make a valid one.

    Each model gets one repair round (an invalid plan, or prose instead of JSON, goes back
    once with what was wrong); `rules` plans by the catalog's triggers. Raises the last
    model's `ModelError`, or `InvalidPlan`, when none succeeds.
    """
    last: ModelError | PlanningError | None = None
    for link in binding.links():
        if link.offline:
            if isinstance(last, ModelError) and not (route.agents or route.playbooks):
                raise last  # the models failed and the triggers know nothing: say why
            return route.by_triggers(max_tasks=max_tasks)
        system = PLANNER_PROMPT.format(max_tasks=max_tasks, agents=describe_agents(catalog))
        if route.hints():
            system += "\n\n" + route.hints()
        user = f"{context}\n\nRequest: {request}" if context else f"Request: {request}"
        try:
            return await _plan_with(
                link, system, user, catalog=catalog, retry=retry, usage=usage,
                check=lambda plan: problems(plan, catalog, max_tasks=max_tasks),
            )  # fmt: skip
        except ModelError as e:
            last = e
            if on_failure is not None:
                await on_failure(link, e)
        except InvalidPlan as e:
            last = e
    assert last is not None
    raise last


async def _plan_with(
    link: Binding,
    system: str,
    user: str,
    *,
    catalog: Catalog,
    retry: RetryPolicy,
    usage: UsageHook,
    check: Callable[[Plan], list[str]],
) -> Plan:
    """A plan from one model that passes `check`, with one round of repair."""
    messages = [Message(role="user", content=user)]
    found: list[str] = []
    last_error: ModelBehaviorError | None = None
    for _attempt in range(2):
        req = ModelRequest(
            model=link.model_id,
            system=system,
            messages=messages,
            output_schema=plan_schema(catalog),
            output_name="plan",
        )
        try:
            response = await _ask((link,), req, retry, usage)
        except ModelBehaviorError as e:
            if e.failure != Failure.BAD_OUTPUT:
                raise
            found = ["the reply was not a JSON plan"]
            messages = [*messages, Message(role="user", content=REPAIR_PROSE)]
            last_error = e
            continue
        last_error = None
        try:
            plan = Plan.model_validate(response.structured or {})
        except ValidationError as e:
            found = [f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()]
            plan = None
        if plan is not None:
            found = check(plan)
            if not found:
                return plan
        known = ", ".join(a.name for a in catalog.agents)
        messages = [
            *messages,
            Message(role="assistant", content=str(response.structured or response.text)),
            Message(
                role="user",
                content="That plan is invalid:\n- "
                + "\n- ".join(found)
                + f"\nThe specialists are: {known}. Return a corrected plan.",
            ),
        ]
    if last_error is not None:
        raise last_error
    raise InvalidPlan(found)


REVISE_PROMPT = """You are the supervisor of a team of specialist agents working for people in Slack.
Some tasks of the plan below did not succeed. Make ONE revised plan for the work that remains:
new tasks, each for exactly one specialist from the list, that reach the request's goal another
way (a different specialist, or a different approach). Do not repeat a task that failed the
same way, and never redo by other means a step a person rejected. New tasks may use the
results of tasks that succeeded by listing their ids in depends_on. Give new tasks new ids.
If nothing can be done differently, return an empty list of tasks: the answer then says
honestly what was not done. Use at most {max_tasks} tasks.

Specialists:
{agents}"""


async def revise_plan(
    request: str,
    outcomes: list[TaskOutcome],
    *,
    context: str,
    catalog: Catalog,
    binding: Binding,
    retry: RetryPolicy,
    max_tasks: int,
    usage: UsageHook,
    on_failure: FailureHook | None = None,
) -> Plan | None:
    """New tasks for what remains after some tasks did not succeed, or None to finish as it
    is (the offline planner, or a model that sees nothing to do differently).

    Raises the last model's `ModelError`, or `InvalidPlan`, when no model gives a valid one.
    """
    system = REVISE_PROMPT.format(max_tasks=max_tasks, agents=describe_agents(catalog))
    parts = [context] if context else []
    parts.append(f"Request: {request}")
    parts.append("The plan so far:")
    for o in outcomes:
        parts.append(f"### {o.agent} (task {o.id}, {o.status})\n{o.output or '(no output)'}")
    user = "\n\n".join(parts)
    usable = {o.id for o in outcomes if o.status == "succeeded"}
    taken = {o.id for o in outcomes}

    def check(plan: Plan) -> list[str]:
        if not plan.tasks:
            return []
        found = [
            f"task id '{t.id}' is already used; give it a new id"
            for t in plan.tasks
            if t.id in taken
        ]
        unusable = {d for t in plan.tasks for d in t.depends_on if d in taken and d not in usable}
        found += [f"task '{d}' did not succeed: no task can depend on it" for d in sorted(unusable)]
        own = plan.model_copy(
            update={
                "tasks": [
                    t.model_copy(
                        update={"depends_on": [d for d in t.depends_on if d not in usable]}
                    )
                    for t in plan.tasks
                ]
            }
        )
        return found + problems(own, catalog, max_tasks=max_tasks)

    last: ModelError | PlanningError | None = None
    for link in binding.links():
        if link.offline:
            return None  # the offline planner has no other way: finish honestly
        try:
            plan = await _plan_with(
                link, system, user, catalog=catalog, retry=retry, usage=usage, check=check
            )
        except ModelError as e:
            last = e
            if on_failure is not None:
                await on_failure(link, e)
            continue
        except InvalidPlan as e:
            last = e
            continue
        return plan if plan.tasks else None
    assert last is not None
    raise last


async def synthesize(
    request: str,
    outcomes: list[TaskOutcome],
    *,
    context: str,
    binding: Binding,
    retry: RetryPolicy,
    usage: UsageHook,
    on_text: TextSink | None = None,
    on_failure: FailureHook | None = None,
) -> str:
    """The final answer from the task results.

    When no task succeeded there is nothing for a model to summarise: Baton's own per-task
    reasons are the answer. Otherwise a model writes it and Baton's reasons for every task
    that did not succeed go under it, whatever the model said. Without a model (or when
    every model fails), a plain composition.
    """
    if not any(o.status == "succeeded" for o in outcomes):
        return compose(outcomes)
    parts = [f"Request: {request}"]
    if context:
        parts.insert(0, context)
    for o in outcomes:
        parts.append(f"### {o.agent} (task {o.id}, {o.status})\n{o.output or '(no output)'}")
    links = binding.links()
    for i, link in enumerate(links):
        if link.offline:
            return compose(outcomes)
        req = ModelRequest(
            model=link.model_id,
            system=SYNTH_PROMPT,
            messages=[Message(role="user", content="\n\n".join(parts))],
            max_tokens=3000,
        )
        try:
            response = await _ask((link,), req, retry, usage, on_text=on_text)
        except ModelError as e:
            if on_failure is not None:
                await on_failure(link, e)
            continue
        text = response.text.strip()
        if response.cut_off and i + 1 < len(links):
            continue  # a cut-off answer, and another model can write a whole one
        if text and response.cut_off:
            text += " … _(cut off at the model's length limit)_"
        if text:
            return "\n\n".join(p for p in (text, reasons(outcomes)) if p)
    return compose(outcomes)


@dataclass(frozen=True)
class Shortfall:
    """A task that did not succeed, with Baton's own one-line reason."""

    task_id: str
    agent: str
    status: str
    why: str


@dataclass(frozen=True)
class Section:
    """One specialist's part of an answer written without a model."""

    agent: str
    status: str
    body: str  # its result's lines not shown in a later section; "" when it had no output


def shortfalls(outcomes: list[TaskOutcome]) -> list[Shortfall]:
    """Every task that did not succeed, and why (the first line of what it said)."""
    found = []
    for o in outcomes:
        if o.status == "succeeded":
            continue
        why = (o.output.strip().splitlines() or ["no reason given"])[0]
        found.append(Shortfall(o.id, o.agent, o.status, why.removeprefix(f"{o.status}:").strip()))
    return found


def reasons(outcomes: list[TaskOutcome]) -> str:
    """Baton's own line for each task that did not succeed, kept under any answer."""
    return "\n".join(
        f"{_MARK.get(s.status, '•')} **{s.agent}** (`{s.task_id}`) {s.status}: {s.why}"
        for s in shortfalls(outcomes)
    )


def _seen_key(line: str) -> str:
    return line.strip().lstrip("•❌✅⚠️-*· ").strip().casefold()


def sections(outcomes: list[TaskOutcome]) -> list[Section]:
    """Each specialist's result, last one first, and each line once (a summary already holds
    what it summarised)."""
    shown: set[str] = set()
    found = []
    for o in reversed(outcomes):
        lines = []
        for line in o.output.strip().splitlines():
            key = _seen_key(line)
            if key and key in shown:
                continue
            shown.add(key)
            lines.append(line)
        body = "\n".join(lines).strip()
        if not body and o.output.strip() and o.status == "succeeded":
            continue  # everything it found is in a later specialist's summary above
        found.append(Section(o.agent, o.status, body))
    return found


def compose(outcomes: list[TaskOutcome]) -> str:
    """An answer without a model, in Markdown (stored with the run, read again by the models;
    `bot/text.py` writes it as Slack shows it): each specialist's result under its name."""
    if not outcomes:
        return "Nothing was done."
    return "\n\n".join(
        f"**{s.agent}**"
        + ("" if s.status == "succeeded" else f" ({s.status})")
        + f"\n{s.body or '(no output)'}"
        for s in sections(outcomes)
    )


async def _ask(
    links: tuple[Binding, ...],
    req: ModelRequest,
    retry: RetryPolicy,
    usage: UsageHook,
    *,
    on_text: TextSink | None = None,
) -> ModelResponse:
    _link, response = await fallback.ask(links, req, policy=retry, on_text=on_text, on_usage=usage)
    return response

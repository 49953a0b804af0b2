"""The supervisor: turns a request into a plan, and task results into one answer."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError

from agents.errors import ModelError
from agents.messages import Message, ModelRequest, ModelResponse, Usage
from agents.providers.base import TextSink
from agents.providers.registry import Binding
from agents.retry import RetryPolicy, call_with_retries
from agents.spans import call_model
from agents.spec import Catalog
from orchestration.errors import PlanningError
from orchestration.plan import Plan, PlannedTask, problems

UsageHook = Callable[[Usage], Awaitable[None]]

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
If a task failed, was rejected or was skipped, say so plainly and what it means for the answer."""


@dataclass(frozen=True)
class TaskOutcome:
    id: str
    agent: str
    status: str
    output: str


def describe_agents(catalog: Catalog) -> str:
    lines = []
    for a in catalog.agents:
        tools = f" Tools: {', '.join(a.tools)}." if a.tools else ""
        lines.append(f"- {a.name}: {a.description}{tools}")
    return "\n".join(lines)


async def make_plan(
    request: str,
    *,
    context: str,
    catalog: Catalog,
    binding: Binding,
    retry: RetryPolicy,
    max_tasks: int,
    usage: UsageHook,
) -> Plan:
    """One model call for a plan; an invalid plan goes back once with what was wrong."""
    if binding.provider.name == "rules":
        return rules_plan(request, catalog, max_tasks=max_tasks)
    system = PLANNER_PROMPT.format(max_tasks=max_tasks, agents=describe_agents(catalog))
    user = f"{context}\n\nRequest: {request}" if context else f"Request: {request}"
    messages = [Message(role="user", content=user)]
    found: list[str] = []
    for _attempt in range(2):
        req = ModelRequest(
            model=binding.model_id,
            system=system,
            messages=messages,
            output_schema=Plan.model_json_schema(),
            output_name="plan",
        )
        response = await _ask(binding, req, retry, usage)
        try:
            plan = Plan.model_validate(response.structured or {})
        except ValidationError as e:
            found = [f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()]
            plan = None
        if plan is not None:
            found = problems(plan, catalog, max_tasks=max_tasks)
            if not found:
                return plan
        messages = [
            *messages,
            Message(role="assistant", content=str(response.structured or response.text)),
            Message(
                role="user",
                content="That plan is invalid:\n- "
                + "\n- ".join(found)
                + "\nReturn a corrected plan.",
            ),
        ]
    raise PlanningError("I could not make a valid plan for this request: " + "; ".join(found))


def rules_plan(request: str, catalog: Catalog, *, max_tasks: int) -> Plan:
    """Offline planning: every specialist whose triggers match takes part."""
    matched = [
        a for a in catalog.agents if any(re.search(t, request, re.IGNORECASE) for t in a.triggers)
    ][:max_tasks]
    if not matched:
        raise PlanningError(
            "No specialist knows what to do with that request. "
            "Say what to check (a URL, a #channel, a sum) or run a playbook — "
            "`/baton agents` lists who does what, `/baton help` shows the commands."
        )
    names = {a.name for a in matched}
    return Plan(
        title=f"{len(matched)} specialist{'s' if len(matched) > 1 else ''} on it",
        tasks=[
            PlannedTask(
                id=a.name,
                agent=a.name,
                instruction=request,
                depends_on=[o for o in a.runs_after if o in names],
            )
            for a in matched
        ],
    )


async def synthesize(
    request: str,
    outcomes: list[TaskOutcome],
    *,
    context: str,
    binding: Binding,
    retry: RetryPolicy,
    usage: UsageHook,
    on_text: TextSink | None = None,
) -> str:
    """The final answer from the task results; falls back to a plain composition if the model fails."""
    if binding.provider.name == "rules" or not outcomes:
        return compose(outcomes)
    parts = [f"Request: {request}"]
    if context:
        parts.insert(0, context)
    for o in outcomes:
        parts.append(f"### {o.agent} (task {o.id}, {o.status})\n{o.output or '(no output)'}")
    req = ModelRequest(
        model=binding.model_id,
        system=SYNTH_PROMPT,
        messages=[Message(role="user", content="\n\n".join(parts))],
        max_tokens=3000,
    )
    try:
        response = await _ask(binding, req, retry, usage, on_text=on_text)
    except ModelError:
        return compose(outcomes)
    return response.text.strip() or compose(outcomes)


def compose(outcomes: list[TaskOutcome]) -> str:
    """An answer without a model: each specialist's result under its name, last one first."""
    if not outcomes:
        return "Nothing was done."
    blocks = []
    for o in reversed(outcomes):
        head = f"*{o.agent}*" + ("" if o.status == "succeeded" else f" ({o.status})")
        blocks.append(f"{head}\n{o.output.strip() or '(no output)'}")
    return "\n\n".join(blocks)


async def _ask(
    binding: Binding,
    req: ModelRequest,
    retry: RetryPolicy,
    usage: UsageHook,
    *,
    on_text: TextSink | None = None,
) -> ModelResponse:
    async def call() -> ModelResponse:
        return await call_model(binding.provider, req, on_text=on_text)

    response = await call_with_retries(call, policy=retry)
    await usage(response.usage)
    return response

"""`verify: true`: the reviewer checks the answer against the task results before it is posted.

A playbook or a specialist of the run may ask for it. The reviewer (the catalog's specialist
named `reviewer`, with its own model and fallbacks) gets the request, every task's status and
output, and the answer, and says whether the answer is sound or which of its claims the
results do not support. Either way the thread is told: an answer the reviewer disputed is
posted with its problems under it, and one that could not be checked says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import BaseModel, Field, ValidationError

from agents import fallback
from agents.errors import ModelError
from agents.explain import log_failure, sentence
from agents.messages import Message, ModelRequest
from agents.runner import system_prompt
from agents.spec import REVIEWER, Catalog
from orchestration.deps import RunDeps
from orchestration.planning import usage_hook
from orchestration.supervisor import TaskOutcome
from storage import run_states
from storage.models import EventKind, Run, TaskRow

log = logging.getLogger(__name__)

CHECK = """Check the final answer below against the specialists' results it was written from.
The answer is sound when every fact and figure in it is supported by a result marked
succeeded, and it does not present a task that failed, was skipped, rejected or unverified as
done. Otherwise list each problem in one short sentence."""


class Review(BaseModel):
    """What the reviewer says about an answer."""

    sound: bool = Field(description="True when the answer is supported by the results")
    problems: list[str] = Field(
        default_factory=list, description="Each unsupported or wrong claim, one sentence each"
    )


@dataclass(frozen=True)
class Verdict:
    """How the check ended, as a note under the answer and an event."""

    note: str
    event: EventKind
    problems: tuple[str, ...] = ()


def wanted(run: Run, tasks: list[TaskRow], catalog: Catalog) -> bool:
    """Whether the run's playbook, or a specialist that worked on it, asks for a check."""
    playbook = catalog.playbook(run.playbook) if run.playbook else None
    if playbook is not None and playbook.verify:
        return True
    return any((spec := catalog.agent(t.agent)) is not None and spec.verify for t in tasks)


def prompt(request: str, outcomes: list[TaskOutcome], answer: str) -> str:
    parts = [f"Request: {request}", "Results:"]
    for o in outcomes:
        parts.append(f"### {o.agent} (task {o.id}, {o.status})\n{o.output or '(no output)'}")
    parts += ["Answer to check:", answer]
    return "\n\n".join(parts)


async def review(
    run: Run,
    outcomes: list[TaskOutcome],
    answer: str,
    deps: RunDeps,
) -> Verdict:
    """The reviewer's verdict on `answer`; recorded on the run."""
    verdict = await _review(run, outcomes, answer, deps)
    await run_states.note(
        deps.db,
        run.id,
        verdict.event,
        data={"problems": list(verdict.problems), "note": verdict.note},
    )
    return verdict


async def _review(
    run: Run,
    outcomes: list[TaskOutcome],
    answer: str,
    deps: RunDeps,
) -> Verdict:
    spec = deps.catalog.agent(REVIEWER)
    if spec is None:
        return Verdict(
            "⚠️ _Not checked: there is no reviewer specialist._", EventKind.ANSWER_UNCHECKED
        )
    links = tuple(link for link in deps.models.for_agent(spec).links() if not link.offline)
    if not links:
        return Verdict(
            f"⚠️ _Not checked: **{REVIEWER}** has no model to check with (it is offline)._",
            EventKind.ANSWER_UNCHECKED,
        )
    request = ModelRequest(
        model=links[0].model_id,
        system=system_prompt(spec) + "\n\n" + CHECK,
        messages=[
            Message(
                role="user", content=prompt(run.request or run.playbook or "", outcomes, answer)
            )
        ],
        output_schema=Review.model_json_schema(),
        output_name="review",
    )
    usage = usage_hook(deps.db, deps.prices, run.id, None, links[0].ref, agent=REVIEWER)
    try:
        _, response = await fallback.ask(links, request, policy=deps.limits.retry, on_usage=usage)
        found = Review.model_validate(response.structured or {})
    except ModelError as e:
        log_failure(run.id, "review", e.model or links[0].ref, e)
        return Verdict(f"⚠️ _Not checked: {sentence(e)}_", EventKind.ANSWER_UNCHECKED)
    except ValidationError:
        log.warning("run %s: the reviewer's reply was not a review", run.id)
        return Verdict(
            f"⚠️ _Not checked: **{REVIEWER}**'s reply could not be read as a review._",
            EventKind.ANSWER_UNCHECKED,
        )
    problems = tuple(p.strip() for p in found.problems if p.strip())
    if found.sound and not problems:
        return Verdict(
            f"✔️ _Checked by **{REVIEWER}** against the task results._", EventKind.ANSWER_VERIFIED
        )
    lines = "\n".join(f"• {p}" for p in problems) or "• (it gave no details)"
    return Verdict(
        f"⚠️ **{REVIEWER}** found problems with this answer; check before relying on it:\n{lines}",
        EventKind.ANSWER_DISPUTED,
        problems,
    )

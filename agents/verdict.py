"""Whether a specialist's answer can be shown as done, from what actually happened.

A task's status follows its tool calls, not the model's say-so: a specialist with tools
that answers without calling any, when its task gives those tools something to act on, is
*unverified* (its figures come from nowhere); one whose every call failed has *failed*;
one whose every call a person rejected was *rejected*; an empty answer is not an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from agents.messages import CallOutcome, Message
from agents.providers.rules import report
from agents.tools.base import Tool
from agents.wording import first_line, truncate


class Verdict(StrEnum):
    DONE = "done"
    UNVERIFIED = "unverified"
    FAILED = "failed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    output: str  # what the task hands on: the answer, or Baton's own lines for an empty one
    reason: str = ""  # why it is not done, in a sentence for the task list


def wanted_calls(tools: Mapping[str, Tool], prompt: str) -> dict[str, int]:
    """Per tool, how many things the task names for it to act on (URLs, sums, channels)."""
    found = {name: len(tool.args_from_text(prompt)) for name, tool in tools.items()}
    return {name: n for name, n in found.items() if n}


def needs_data(tools: Mapping[str, Tool], prompt: str) -> bool:
    """The task names something the specialist's tools can act on (a URL, a sum, a channel)."""
    return bool(wanted_calls(tools, prompt))


def judge(tools: Mapping[str, Tool], transcript: list[Message], output: str) -> Judgement:
    """The verdict on a specialist's finished transcript and final answer."""
    results = [m for m in transcript if m.role == "tool"]
    outcomes = [m.outcome for m in results if m.outcome is not None]
    answer = output.strip()
    if not results:
        prompt = next((m.content for m in transcript if m.role == "user"), "")
        if tools and needs_data(tools, prompt):
            names = ", ".join(f"`{name}`" for name in tools)
            return Judgement(
                Verdict.UNVERIFIED,
                answer,
                f"unverified: answered without calling {names}, so nothing it says was checked",
            )
        if not answer:
            return Judgement(Verdict.FAILED, "", "the model gave an empty answer")
        return Judgement(Verdict.DONE, answer)
    if outcomes and all(o == CallOutcome.REJECTED for o in outcomes):
        rejected = next(m for m in results if m.outcome == CallOutcome.REJECTED)
        return Judgement(Verdict.REJECTED, answer, _reason(rejected))
    useful = (CallOutcome.OK, CallOutcome.PROBLEM)
    if outcomes and not any(o in useful for o in outcomes):
        first = next(m for m in results if m.outcome not in useful)
        why = (
            _reason(first)
            if len(results) == 1
            else f"all {len(results)} tool calls failed; first: {_reason(first)}"
        )
        return Judgement(Verdict.FAILED, answer, why)
    if not answer:
        # The tools did the work and the model said nothing about it: Baton lists the results.
        return Judgement(Verdict.DONE, report(results))
    return Judgement(Verdict.DONE, answer)


def _reason(result: Message) -> str:
    text = result.note or result.content
    return truncate(first_line(text).removeprefix("Error:").strip(), 200)

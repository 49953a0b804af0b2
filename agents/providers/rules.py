"""`rules`: an offline provider. No model, no key, no network beyond what tools do.

It answers the tool-calling loop by asking each offered tool which arguments it can find in
the request text (`Tool.args_from_text`), calls them all in one turn, and then reports their
results line by line. A specialist without tools condenses its inputs and flags problems.
Planning with `rules` lives in `orchestration.planners` (it matches triggers, not text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agents.errors import PermanentModelError
from agents.messages import Message, ModelRequest, ModelResponse, ToolCall
from agents.providers.base import TextSink
from agents.tools import extract
from agents.tools.base import Tool

# Words in a result that mean something needs a person's attention.
PROBLEM = re.compile(
    r"❌|⚠|\b(down|fail(ed|ing|s)?|error|timed? ?out|refused|unreachable|not found|missing)\b",
    re.IGNORECASE,
)


class RulesProvider:
    name = "rules"

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        self._tools = tools

    async def complete(
        self, request: ModelRequest, *, on_text: TextSink | None = None
    ) -> ModelResponse:
        if request.output_schema is not None:
            raise PermanentModelError(
                "the offline 'rules' provider cannot write structured output; "
                "set BATON_MODEL to an OpenAI or Anthropic model"
            )
        user = next((m.content for m in request.messages if m.role == "user"), "")
        results = [m for m in request.messages if m.role == "tool"]
        started = any(m.role == "assistant" for m in request.messages)
        if request.tools and not started:
            calls = self._calls_for(request, user)
            if calls:
                return ModelResponse(tool_calls=calls)
            names = ", ".join(t.name for t in request.tools)
            text = f"I found nothing in the request for my tools ({names}) to act on."
        elif results:
            text = report(results)
        else:
            text = condense(user)
        if on_text is not None:
            await on_text(text)
        return ModelResponse(text=text)

    def _calls_for(self, request: ModelRequest, text: str) -> list[ToolCall]:
        calls: list[ToolCall] = []
        for schema in request.tools:
            tool = self._tools.get(schema.name)
            if tool is None:
                continue
            for args in tool.args_from_text(text):
                calls.append(
                    ToolCall(
                        id=f"rules_{len(calls) + 1}",
                        name=schema.name,
                        arguments=args.model_dump(mode="json", exclude_none=True),
                    )
                )
        return calls


def report(results: list[Message]) -> str:
    """One line per tool result, then a verdict."""
    lines = [f"• {m.content.strip().splitlines()[0]}" for m in results if m.content.strip()]
    problems = [line for line in lines if PROBLEM.search(line)]
    verdict = (
        f"⚠️ {len(problems)} of {len(lines)} need attention."
        if problems
        else f"✅ All {len(lines)} look fine."
    )
    return "\n".join([*lines, verdict])


def condense(prompt: str) -> str:
    """What a tool-less specialist writes offline: its inputs, condensed, with problems first."""
    instruction, sections = extract.split_inputs(prompt)
    if not sections:
        return f"(offline) I can only condense results from other specialists. Task: {instruction}"
    lines: list[str] = []
    flagged: list[str] = []
    for label, body in sections:
        items = [ln.strip() for ln in body.splitlines() if ln.strip()]
        lines.append(f"*{label}*")
        lines += [ln if ln.startswith(("•", "-", "✅", "⚠")) else f"• {ln}" for ln in items[:12]]
        flagged += [ln for ln in items if PROBLEM.search(ln) and not ln.startswith(("✅", "⚠"))]
    head = (
        f"⚠️ {len(flagged)} problem(s) found: " + "; ".join(f.lstrip("•- ") for f in flagged[:5])
        if flagged
        else "✅ No problems found."
    )
    return "\n".join([head, "", *lines])

"""`rules`: an offline provider. No model, no key, no network beyond what tools do.

It answers the tool-calling loop by asking each offered tool which arguments it can find in
the request text (`Tool.args_from_text`), calls them all in one turn, and then reports their
results line by line. A specialist without tools condenses its inputs and flags problems.
Planning with `rules` is the catalog's triggers (`orchestration/routing.py`), not text.

What it writes lists each result once, counts only real problems (a tool result that says
so, not a word in a URL), and counts in English ("1 check", "Both checks look fine").
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agents.errors import Failure, PermanentModelError
from agents.messages import CallOutcome, Message, ModelRequest, ModelResponse, ToolCall
from agents.providers.base import TextSink
from agents.tools import extract
from agents.tools.base import Tool
from agents.wording import all_fine, first_line, some_bad

# Words in a line from a model (not from Baton's tools) that mean something needs attention.
PROBLEM = re.compile(
    r"❌|⚠|\b(down|fail(ed|ing|s)?|error|timed? ?out|refused|unreachable|not found|missing)\b",
    re.IGNORECASE,
)
OK_MARK, BAD_MARK = "•", "❌"
# What each tool's results are called when they are counted.
_NOUNS = {"http_check": "check", "json_metric": "check", "calculator": "calculation"}
# The verdict lines this module writes, so a summary of a summary does not repeat them.
_VERDICT = re.compile(r"^(✅|⚠️) .*(looks? fine|ha(s|ve) a problem)\.$")
_BAD_OUTCOMES = (CallOutcome.PROBLEM, CallOutcome.ERROR, CallOutcome.REFUSED, CallOutcome.REJECTED)


class RulesProvider:
    name = "rules"
    label = "the offline rules model"

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        self._tools = tools

    async def complete(
        self, request: ModelRequest, *, on_text: TextSink | None = None
    ) -> ModelResponse:
        """Tool calls from the text, then a report of their results (or a summary)."""
        if request.output_schema is not None:
            raise PermanentModelError(
                "the offline 'rules' model cannot write structured output; "
                "set BATON_MODEL to an OpenAI or Anthropic model",
                failure=Failure.UNSUPPORTED,
                provider=self.label,
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
    """One line per tool result, problems marked ❌, then a verdict for checks."""
    lines: list[str] = []
    bad = 0
    for m in results:
        line = first_line(m.note or m.content).removeprefix("Error:").strip()
        if not line:
            continue
        failed = m.outcome in _BAD_OUTCOMES if m.outcome is not None else bool(PROBLEM.search(line))
        bad += failed
        lines.append(f"{BAD_MARK if failed else OK_MARK} {line}")
    kinds = {_NOUNS.get(m.name or "", "result") for m in results}
    noun = kinds.pop() if len(kinds) == 1 else "result"
    if noun == "check" or bad:
        lines.append(
            f"⚠️ {some_bad(bad, len(lines), noun)}" if bad else f"✅ {all_fine(len(lines), noun)}"
        )
    return "\n".join(lines)


def condense(prompt: str) -> str:
    """What a tool-less specialist writes offline: its inputs, once each, with a count first."""
    _instruction, sections = extract.split_inputs(prompt)
    if not sections:
        return (
            "(offline) I can only summarise what other specialists found, "
            "and there was nothing for this task."
        )
    body: list[str] = []
    verdicts: list[str] = []
    items = bad = 0
    for label, text in sections:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        verdicts += [ln for ln in lines if _VERDICT.match(ln)]
        lines = [ln for ln in lines if not _VERDICT.match(ln)]
        if not lines:
            continue
        task, _, agent = label.partition(" (")
        body.append(f"*{task if agent.rstrip(')') == task else label}*")
        marked = [_marked(line) for line in lines]
        items += len(marked)
        bad += sum(failed for failed, _ in marked)
        # Problems first, each kind in its original order.
        body += [line for failed, line in marked if failed]
        body += [line for failed, line in marked if not failed]
    if not items:
        return "(offline) The specialists this task depends on reported nothing."
    if len(sections) == 1 and len(verdicts) == 1:
        head = verdicts[0]  # the specialist's own count says what its results are
    else:
        head = f"⚠️ {some_bad(bad, items, 'result')}" if bad else f"✅ {all_fine(items, 'result')}"
    return "\n".join([head, "", *body])


def _marked(line: str) -> tuple[bool, str]:
    """Whether a line reports a problem, and the line with Baton's mark."""
    if line.startswith((OK_MARK, BAD_MARK)):
        return line.startswith(BAD_MARK), line
    failed = bool(PROBLEM.search(line))
    return failed, f"{BAD_MARK if failed else OK_MARK} {line.lstrip('-* ')}"

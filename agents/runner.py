"""The tool-calling loop one specialist runs.

The loop is resumable: its whole state is the transcript. When a call needs a person's
approval the loop returns `NeedsApproval` with the transcript; given the decision later
(in this process or another), it continues exactly where it stopped, performing that very
call rather than asking the model again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from agents.errors import (
    InvalidToolArguments,
    ModelBehaviorError,
    ToolError,
    ToolServerError,
    TransientModelError,
)
from agents.messages import Message, ModelRequest, ModelResponse, ToolCall, Usage
from agents.providers.base import ModelProvider
from agents.retry import RetryPolicy, call_with_retries
from agents.spans import call_model
from agents.spec import AgentSpec
from agents.toolbox import Toolbox
from agents.tools import extract
from agents.tools.base import Tool, ToolResult


@dataclass(frozen=True)
class Decision:
    """A person's answer to one gated tool call."""

    approved: bool
    by: str
    reason: str = ""


@dataclass(frozen=True)
class Finished:
    output: str
    transcript: list[Message]


@dataclass(frozen=True)
class NeedsApproval:
    call: ToolCall
    tool: Tool
    args: BaseModel
    transcript: list[Message]


Outcome = Finished | NeedsApproval


class MaxTurnsExceeded(ModelBehaviorError):
    """The specialist used all its turns without a final answer."""


@dataclass
class Hooks:
    """How the loop reports to, and acts through, whoever runs it."""

    # One short line for the task's progress ("calling http_check …").
    progress: Callable[[str], Awaitable[None]]
    # Every model call's usage, as it happens.
    usage: Callable[[Usage], Awaitable[None]]
    # Performs a permitted call; the orchestrator wraps it with idempotency records.
    perform: Callable[[Tool, BaseModel, ToolCall], Awaitable[ToolResult]]


def system_prompt(spec: AgentSpec) -> str:
    base = f"You are {spec.name}, a specialist on a team: {spec.description}"
    rules = (
        "Do only the task you are given. Use only the tools you are given. "
        "Answer concisely with the facts and figures the task asks for. "
        "If you cannot finish without a person deciding something, start your answer with "
        "'NEEDS HUMAN:' and say what must be decided."
    )
    return "\n\n".join(p for p in (base, spec.instructions.strip(), rules) if p)


def first_prompt(instruction: str, inputs: Mapping[str, str]) -> str:
    """The specialist's only view of the run: its instruction and its dependencies' outputs."""
    if not inputs:
        return instruction
    parts = [instruction, "", extract.INPUTS_HEADING]
    for label, output in inputs.items():
        parts += ["", f"### {label}", output.strip() or "(no output)"]
    return "\n".join(parts)


def _unanswered(transcript: list[Message]) -> list[ToolCall]:
    """Tool calls of the last assistant turn that have no result yet."""
    for i in range(len(transcript) - 1, -1, -1):
        m = transcript[i]
        if m.role == "assistant":
            answered = {r.tool_call_id for r in transcript[i + 1 :] if r.role == "tool"}
            return [c for c in m.tool_calls if c.id not in answered]
    return []


def _tool_message(call: ToolCall, content: str) -> Message:
    return Message(role="tool", tool_call_id=call.id, name=call.name, content=content)


def _result_text(result: ToolResult) -> str:
    if result.content.strip() == result.summary.strip():
        return result.summary
    return f"{result.summary}\n\n{result.content}"


async def run_specialist(
    spec: AgentSpec,
    transcript: list[Message],
    *,
    provider: ModelProvider,
    model_id: str,
    tools: Toolbox,
    hooks: Hooks,
    retry: RetryPolicy,
    decisions: Mapping[str, Decision] | None = None,
    on_retry: Callable[[int, TransientModelError, float], Awaitable[None]] | None = None,
) -> Outcome:
    """Run (or continue) a specialist until it answers or stops at an approval gate."""
    messages = list(transcript)
    offered = await tools.for_agent(spec)
    for why in offered.missing:
        await hooks.progress(why)
    # Checked here too, whatever the toolbox offered: only the specialist's own tools run.
    own_tools = {name: t for name, t in offered.tools.items() if spec.permits(t.name)}
    if spec.tools and not own_tools:
        # Without any of its tools the specialist could only guess: the task stops instead.
        raise ToolServerError(
            "none of its tools can be used: " + "; ".join(offered.missing or ("none is offered",))
        )
    decisions = decisions or {}
    model_turns = sum(1 for m in messages if m.role == "assistant")

    while True:
        for call in _unanswered(messages):
            gated = await _answer_call(call, own_tools, decisions, hooks)
            if isinstance(gated, NeedsApproval):
                return NeedsApproval(gated.call, gated.tool, gated.args, messages)
            messages.append(gated)

        if model_turns >= spec.max_turns:
            raise MaxTurnsExceeded(
                f"{spec.name} used all {spec.max_turns} of its turns without a final answer"
            )
        request = ModelRequest(
            model=model_id,
            system=system_prompt(spec),
            messages=messages,
            tools=[t.schema() for t in own_tools.values()],
        )

        async def ask(request: ModelRequest = request) -> ModelResponse:
            return await call_model(provider, request)

        response = await call_with_retries(ask, policy=retry, on_retry=on_retry)
        model_turns += 1
        await hooks.usage(response.usage)
        if not response.tool_calls:
            messages.append(Message(role="assistant", content=response.text))
            return Finished(response.text.strip(), messages)
        messages.append(
            Message(role="assistant", content=response.text, tool_calls=response.tool_calls)
        )


async def _answer_call(
    call: ToolCall,
    own_tools: Mapping[str, Tool],
    decisions: Mapping[str, Decision],
    hooks: Hooks,
) -> Message | NeedsApproval:
    """Answer one tool call: refuse it, stop for approval, or perform it."""
    tool = own_tools.get(call.name)
    if tool is None:
        allowed = ", ".join(own_tools) or "none"
        await hooks.progress(f"refused `{call.name}`: not one of this specialist's tools")
        return _tool_message(
            call, f"Error: the tool '{call.name}' is not available to you. Your tools: {allowed}."
        )
    try:
        args = tool.parse_args(call.arguments)
    except InvalidToolArguments as e:
        return _tool_message(call, f"Error: invalid arguments for {call.name}: {e}")
    if tool.requires_approval:
        decision = decisions.get(call.id)
        if decision is None:
            return NeedsApproval(call, tool, args, [])
        if not decision.approved:
            why = f" Reason: {decision.reason}" if decision.reason else ""
            await hooks.progress(f"`{tool.name}` rejected by <@{decision.by}>")
            return _tool_message(
                call,
                f"A person rejected this call; it was not performed.{why} "
                "Do not try it again; finish without it.",
            )
    await hooks.progress(f"calling `{tool.name}`")
    try:
        result = await hooks.perform(tool, args, call)
    except ToolError as e:
        await hooks.progress(f"`{tool.name}` failed: {e}")
        return _tool_message(call, f"Error: {e}")
    await hooks.progress(result.summary)
    return _tool_message(call, _result_text(result))

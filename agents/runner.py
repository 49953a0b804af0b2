"""The tool-calling loop one specialist runs.

The loop is resumable: its whole state is the transcript. When a call needs a person's
approval the loop returns `NeedsApproval` with the transcript; given the decision later
(in this process or another), it continues exactly where it stopped, performing that very
call rather than asking the model again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from agents import fallback
from agents.errors import (
    Failure,
    InvalidToolArguments,
    ModelBehaviorError,
    ToolError,
    ToolServerError,
)
from agents.fallback import SwitchHook
from agents.grounding import narrowed
from agents.messages import DATA_RULE, CallOutcome, Message, ModelRequest, ToolCall, Usage
from agents.providers.registry import Binding
from agents.redact import redact
from agents.retry import RetryHook, RetryPolicy
from agents.spec import AgentSpec
from agents.toolbox import Toolbox
from agents.tools import extract
from agents.tools.base import Scope, Tool, ToolResult
from agents.verdict import Judgement, judge, wanted_calls


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
    judgement: Judgement
    model: str  # the model that gave the final answer (`provider:model-id`)


@dataclass(frozen=True)
class NeedsApproval:
    call: ToolCall
    tool: Tool
    args: BaseModel
    transcript: list[Message]


Outcome = Finished | NeedsApproval


class MaxTurnsExceeded(ModelBehaviorError):
    """The specialist used all its turns without a final answer."""

    default_failure = Failure.OTHER  # Baton's own sentence says it all


@dataclass
class Hooks:
    """How the loop reports to, and acts through, whoever runs it."""

    # One short line for the task's progress ("calling http_check …").
    progress: Callable[[str], Awaitable[None]]
    # Every model call's usage, as it happens, and the model (`provider:model-id`) it was.
    usage: Callable[[Usage, str], Awaitable[None]]
    # Performs a permitted call; the orchestrator wraps it with idempotency records.
    perform: Callable[[Tool, BaseModel, ToolCall], Awaitable[ToolResult]]
    # Who the calls act for and where they may reach; a call outside it is refused before
    # anyone is asked to approve it.
    scope: Scope = field(default_factory=Scope)


def system_prompt(spec: AgentSpec, context: str = "") -> str:
    """The specialist's role and rules, and the conversation its task comes from, if any."""
    base = f"You are {spec.name}, a specialist on a team: {spec.description}"
    rules = (
        f"{DATA_RULE} "
        "Do only the task you are given. Use only the tools you are given. "
        "Answer concisely with the facts and figures the task asks for. "
        "If you cannot finish without a person deciding something, start your answer with "
        "'NEEDS HUMAN:' and say what must be decided."
    )
    background = (
        f"For reference only (your task is in the user message):\n{context.strip()}"
        if context.strip()
        else ""
    )
    return "\n\n".join(p for p in (base, spec.instructions.strip(), rules, background) if p)


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


def _tool_message(
    call: ToolCall, content: str, outcome: CallOutcome, note: str | None = None
) -> Message:
    return Message(
        role="tool",
        tool_call_id=call.id,
        name=call.name,
        content=content,
        outcome=outcome,
        note=note,
    )


def _result_text(result: ToolResult) -> str:
    if result.content.strip() == result.summary.strip():
        return result.summary
    return f"{result.summary}\n\n{result.content}"


async def run_specialist(
    spec: AgentSpec,
    transcript: list[Message],
    *,
    binding: Binding,
    tools: Toolbox,
    hooks: Hooks,
    retry: RetryPolicy,
    decisions: Mapping[str, Decision] | None = None,
    on_retry: RetryHook | None = None,
    on_switch: SwitchHook | None = None,
    context: str = "",
) -> Outcome:
    """Run (or continue) a specialist until it answers or stops at an approval gate.

    `context` is the conversation the task comes from (a follow-up's thread), if any.

    The model is `binding`; when it keeps failing, its fallbacks take over, in order, and the
    one that took over answers the rest of this task's turns.
    """
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
    links = binding.links()
    prompt = next((m.content for m in messages if m.role == "user"), "")
    wanted = wanted_calls(own_tools, prompt)

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
        made = Counter(m.name for m in messages if m.role == "tool")
        # The task names things for a tool that has not been called for all of them: a
        # server without a working "auto" is asked for that call, with the tool's arguments
        # held to what the task names; any other model chooses (and is judged on it).
        suggested = next((name for name, n in wanted.items() if made[name] < n), None)
        request = ModelRequest(
            model=links[0].model_id,
            system=system_prompt(spec, context),
            messages=messages,
            tools=[t.schema() for t in own_tools.values()],
            suggested_tool=suggested,
            grounded_tool=(narrowed(own_tools[suggested], prompt, messages) if suggested else None),
        )
        answered_by, response = await fallback.ask(
            links,
            request,
            policy=retry,
            on_retry=on_retry,
            on_switch=on_switch,
            on_usage=hooks.usage,
        )
        links = links[links.index(answered_by) :]
        model_turns += 1
        if not response.tool_calls:
            text = response.text
            if response.cut_off and text.strip():
                text = text.rstrip() + " … (cut off at the model's length limit)"
            messages.append(Message(role="assistant", content=text))
            judgement = judge(own_tools, messages, text)
            return Finished(judgement.output, messages, judgement, answered_by.ref)
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
        note = f"refused `{call.name}`: not one of this specialist's tools"
        await hooks.progress(note)
        return _tool_message(
            call,
            f"Error: the tool '{call.name}' is not available to you. Your tools: {allowed}.",
            CallOutcome.REFUSED,
            note,
        )
    try:
        args = tool.parse_args(call.arguments)
    except InvalidToolArguments as e:
        note = f"`{tool.name}` was called with invalid arguments: {e}"
        await hooks.progress(note)
        return _tool_message(
            call, f"Error: invalid arguments for {call.name}: {e}", CallOutcome.ERROR, note
        )
    if refusal := tool.out_of_reach(args, hooks.scope):
        note = f"refused `{tool.name}`: {refusal}"
        await hooks.progress(note)
        return _tool_message(
            call,
            f"Error: this call was refused and not performed: {refusal}.",
            CallOutcome.REFUSED,
            note,
        )
    if tool.requires_approval:
        decision = decisions.get(call.id)
        if decision is None:
            return NeedsApproval(call, tool, args, [])
        if not decision.approved:
            why = f" Reason: {decision.reason}" if decision.reason else ""
            note = f"`{tool.name}` rejected by <@{decision.by}>" + (
                f": {decision.reason}" if decision.reason else ""
            )
            await hooks.progress(note)
            return _tool_message(
                call,
                f"A person rejected this call; it was not performed.{why} "
                "Do not try it again; finish without it.",
                CallOutcome.REJECTED,
                note,
            )
    await hooks.progress(f"calling `{tool.name}`")
    try:
        result = await hooks.perform(tool, args, call)
    except ToolError as e:
        why = redact(str(e))  # a server's words may echo a credential
        note = f"`{tool.name}` failed: {why}"
        await hooks.progress(note)
        return _tool_message(call, f"Error: {why}", CallOutcome.ERROR, note)
    await hooks.progress(result.summary)
    outcome = CallOutcome.OK if result.ok else CallOutcome.PROBLEM
    return _tool_message(call, _result_text(result), outcome)

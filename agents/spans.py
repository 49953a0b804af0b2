"""Spans for runs, tasks, model calls and tool calls, after OpenTelemetry's GenAI conventions.

A run is an `invoke_agent supervisor` span, each task an `invoke_agent <specialist>` span,
each model call a `chat <model>` span, each tool call an `execute_tool <tool>` span; the
Slack team, channel and run ids are attributes. What people and models say (prompts,
answers, tool arguments and results) stays out of spans unless content capture is on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from agents import genai
from agents.genai import Operation
from agents.messages import ModelRequest, ModelResponse
from agents.providers.base import ModelProvider, TextSink
from agents.telemetry import (
    RUN_ID,
    TASK_ID,
    TEAM_ID,
    TELEMETRY,
    Telemetry,
    current,
    parent_context,
)


def _attributes(values: Mapping[str, str | int | None]) -> dict[str, str | int]:
    return {k: v for k, v in values.items() if v is not None}


class SpanScope:
    """The current span `<operation> <target>` inside the block, with context variables
    bound alongside it; a failure marks the span with its type only (messages may quote
    prompts). Entering gives the span; leaving ends it.

    One object rather than a stack of generator-based context managers: a run held at a model
    call keeps three of these open (its run, its task, the call), each for as long as the call
    takes.
    """

    __slots__ = ("_bindings", "_context_token", "_start", "_tokens", "span")

    def __init__(
        self,
        telemetry: Telemetry,
        operation: Operation,
        target: str,
        attributes: Mapping[str, str | int | None],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        context: Context | None = None,
        bindings: tuple[tuple[ContextVar[Any], Any], ...] = (),
    ) -> None:
        self._bindings = bindings
        # The span starts when the block does (and this is let go then: an open span keeps
        # no second copy of its attributes).
        self._start: Callable[[], Span] | None = functools.partial(
            telemetry.tracer.start_span,
            f"{operation} {target}",
            context=context,
            kind=kind,
            attributes={genai.OPERATION: operation.value, **_attributes(attributes)},
            record_exception=False,
            set_status_on_exception=False,
        )

    def __enter__(self) -> Span:
        assert self._start is not None, "a SpanScope is entered once"
        self.span, self._start = self._start(), None
        self._tokens = [(var, var.set(value)) for var, value in self._bindings]
        self._context_token = attach(set_span_in_context(self.span))
        return self.span

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        try:
            if kind is not None:
                self.span.set_attribute(genai.ERROR_TYPE, kind.__name__)
                self.span.set_status(Status(StatusCode.ERROR, kind.__name__))
        finally:
            detach(self._context_token)
            self.span.end()
            for var, token in reversed(self._tokens):
                var.reset(token)


def run_span(
    telemetry: Telemetry,
    *,
    run_id: str,
    team_id: str | None,
    channel_id: str | None,
    thread_ts: str | None,
    parent: str | None,
) -> SpanScope:
    """The supervisor's `invoke_agent` span for one stretch of a run (until it ends or waits),
    with `telemetry` current and the run's ids bound for log records.

    `parent` is the `traceparent` of the run's first stretch, so a run resumed after an
    approval — in this process or another — stays one trace.
    """
    return SpanScope(
        telemetry,
        Operation.INVOKE_AGENT,
        genai.SUPERVISOR,
        {
            genai.AGENT_NAME: genai.SUPERVISOR,
            genai.CONVERSATION_ID: run_id,
            genai.RUN_ID_ATTR: run_id,
            genai.TEAM_ATTR: team_id,
            genai.CHANNEL_ATTR: channel_id,
            genai.THREAD_ATTR: thread_ts,
        },
        context=parent_context(parent) if parent else None,
        bindings=((TELEMETRY, telemetry), (RUN_ID, run_id), (TEAM_ID, team_id)),
    )


def task_span(*, agent: str, task_id: str, run_id: str, attempt: int) -> SpanScope:
    """A specialist's `invoke_agent` span for one task, its id bound for log records."""
    return SpanScope(
        current(),
        Operation.INVOKE_AGENT,
        agent,
        {
            genai.AGENT_NAME: agent,
            genai.CONVERSATION_ID: run_id,
            genai.RUN_ID_ATTR: run_id,
            genai.TASK_ID_ATTR: task_id,
            genai.TASK_ATTEMPT_ATTR: attempt,
        },
        bindings=((TASK_ID, task_id),),
    )


def tool_span(*, name: str, call_id: str, description: str, arguments: str) -> SpanScope:
    """An `execute_tool` span; `arguments` (JSON) is kept only when content is captured."""
    telemetry = current()
    attributes: dict[str, str | int] = {
        genai.TOOL_NAME: name,
        genai.TOOL_CALL_ID: call_id,
        genai.TOOL_TYPE: "function",
        genai.TOOL_DESCRIPTION: description,
    }
    if telemetry.capture_content:
        attributes[genai.TOOL_ARGUMENTS] = arguments
    return SpanScope(telemetry, Operation.EXECUTE_TOOL, name, attributes)


def tool_result(span: Span, *, ok: bool, content: str) -> None:
    """What the tool returned: whether it worked, and (captured content only) its text."""
    span.set_attribute(genai.TOOL_OK_ATTR, ok)
    if current().capture_content:
        span.set_attribute(genai.TOOL_RESULT, content)


async def call_model(
    provider: ModelProvider, request: ModelRequest, *, on_text: TextSink | None = None
) -> ModelResponse:
    """`provider.complete(request)` inside a `chat` span with the model and token counts."""
    telemetry = current()
    attributes: dict[str, str | int] = {
        genai.PROVIDER: provider.name,
        genai.REQUEST_MODEL: request.model,
        genai.REQUEST_MAX_TOKENS: request.max_tokens,
        genai.OUTPUT_TYPE: "json" if request.output_schema is not None else "text",
    }
    if telemetry.capture_content:
        attributes[genai.SYSTEM_INSTRUCTIONS] = genai.system_instructions(request.system)
        attributes[genai.INPUT_MESSAGES] = genai.input_messages(request.messages)
    with SpanScope(
        telemetry, Operation.CHAT, request.model, attributes, kind=SpanKind.CLIENT
    ) as span:
        response = await provider.complete(request, on_text=on_text)
        span.set_attribute(genai.INPUT_TOKENS, response.usage.input_tokens)
        span.set_attribute(genai.OUTPUT_TOKENS, response.usage.output_tokens)
        if telemetry.capture_content:
            span.set_attribute(genai.OUTPUT_MESSAGES, genai.output_message(response))
        return response

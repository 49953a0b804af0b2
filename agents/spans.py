"""Spans for runs, tasks, model calls and tool calls, after OpenTelemetry's GenAI conventions.

A run is an `invoke_agent supervisor` span, each task an `invoke_agent <specialist>` span,
each model call a `chat <model>` span, each tool call an `execute_tool <tool>` span; the
Slack team, channel and run ids are attributes. What people and models say (prompts,
answers, tool arguments and results) stays out of spans unless content capture is on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agents import genai
from agents.genai import Operation
from agents.messages import ModelRequest, ModelResponse
from agents.providers.base import ModelProvider, TextSink
from agents.telemetry import (
    RUN_ID,
    TASK_ID,
    TEAM_ID,
    Telemetry,
    bound,
    current,
    parent_context,
    using,
)


def _attributes(values: Mapping[str, str | int | None]) -> dict[str, str | int]:
    return {k: v for k, v in values.items() if v is not None}


@contextmanager
def run_span(
    telemetry: Telemetry,
    *,
    run_id: str,
    team_id: str | None,
    channel_id: str | None,
    thread_ts: str | None,
    parent: str | None,
) -> Iterator[Span]:
    """The supervisor's `invoke_agent` span for one stretch of a run (until it ends or waits).

    `parent` is the `traceparent` of the run's first stretch, so a run resumed after an
    approval — in this process or another — stays one trace.
    """
    context = parent_context(parent) if parent else None
    with (
        using(telemetry),
        bound(RUN_ID, run_id),
        bound(TEAM_ID, team_id),
        _span(
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
            context=context,
        ) as span,
    ):
        yield span


@contextmanager
def task_span(*, agent: str, task_id: str, run_id: str, attempt: int) -> Iterator[Span]:
    """A specialist's `invoke_agent` span for one task."""
    with (
        bound(TASK_ID, task_id),
        _span(
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
        ) as span,
    ):
        yield span


@contextmanager
def tool_span(*, name: str, call_id: str, description: str, arguments: str) -> Iterator[Span]:
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
    with _span(telemetry, Operation.EXECUTE_TOOL, name, attributes) as span:
        yield span


def tool_result(span: Span, *, ok: bool, content: str) -> None:
    """What the tool returned: whether it worked, and (captured content only) its text."""
    span.set_attribute(genai.TOOL_OK_ATTR, ok)
    if current().capture_content:
        span.set_attribute(genai.TOOL_RESULT, content)


@contextmanager
def _span(
    telemetry: Telemetry,
    operation: Operation,
    target: str,
    attributes: Mapping[str, str | int | None],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: Context | None = None,
) -> Iterator[Span]:
    """The current span `<operation> <target>`, without unset attributes, failures marked."""
    with (
        telemetry.tracer.start_as_current_span(
            f"{operation} {target}",
            context=context,
            kind=kind,
            attributes={genai.OPERATION: operation.value, **_attributes(attributes)},
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        _errors_marked(span),
    ):
        yield span


@contextmanager
def _errors_marked(span: Span) -> Iterator[None]:
    """An exception marks the span failed with its type only: messages may quote prompts."""
    try:
        yield
    except BaseException as e:
        kind = type(e).__name__
        span.set_attribute(genai.ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        raise


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
    with _span(telemetry, Operation.CHAT, request.model, attributes, kind=SpanKind.CLIENT) as span:
        response = await provider.complete(request, on_text=on_text)
        span.set_attribute(genai.INPUT_TOKENS, response.usage.input_tokens)
        span.set_attribute(genai.OUTPUT_TOKENS, response.usage.output_tokens)
        if telemetry.capture_content:
            span.set_attribute(genai.OUTPUT_MESSAGES, genai.output_message(response))
        return response

"""Traces of runs, tasks, model calls and tool calls, after OpenTelemetry's GenAI conventions.

A run is an `invoke_agent supervisor` span, each task an `invoke_agent <specialist>` span,
each model call a `chat <model>` span, each tool call an `execute_tool <tool>` span; the
Slack team, channel and run ids are attributes. What people and models say (prompts,
answers, tool arguments and results) stays out of spans unless `capture_content` is on.

The run's span makes its `Telemetry` current in a context variable, so code further down
(a task, the tool-calling loop) reaches it without being handed it; the same context
carries the run, task and team ids that log records show.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents.messages import Message, ModelRequest, ModelResponse, Usage
from agents.metrics import Metrics
from agents.providers.base import ModelProvider, TextSink

# GenAI semantic conventions (the attribute names are still "incubating" upstream, so they
# are spelled out here rather than imported from a module that may move).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
AGENT_DESCRIPTION = "gen_ai.agent.description"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
OUTPUT_TYPE = "gen_ai.output.type"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
ERROR_TYPE = "error.type"
# Opt-in content (capture_content).
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
# Baton's own.
RUN_ID_ATTR = "baton.run.id"
RUN_STATUS_ATTR = "baton.run.status"
TASK_ID_ATTR = "baton.task.id"
TASK_STATUS_ATTR = "baton.task.status"
TASK_ATTEMPT_ATTR = "baton.task.attempt"
TOOL_OK_ATTR = "baton.tool.ok"
TEAM_ATTR = "slack.team.id"
CHANNEL_ATTR = "slack.channel.id"
THREAD_ATTR = "slack.thread.ts"

SUPERVISOR = "supervisor"


class Operation(StrEnum):
    CHAT = "chat"
    INVOKE_AGENT = "invoke_agent"
    EXECUTE_TOOL = "execute_tool"


# What a log record belongs to; set by the spans below, read by the log formatter.
RUN_ID: ContextVar[str | None] = ContextVar("baton_run_id", default=None)
TASK_ID: ContextVar[str | None] = ContextVar("baton_task_id", default=None)
TEAM_ID: ContextVar[str | None] = ContextVar("baton_team_id", default=None)

_PROPAGATOR = TraceContextTextMapPropagator()


class Telemetry:
    """One Baton's tracer and metrics; `off()` records nothing at all."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider,
        metrics: Metrics | None = None,
        capture_content: bool = False,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("baton")
        self.metrics = metrics
        self.capture_content = capture_content

    @classmethod
    def off(cls) -> Telemetry:
        """No spans, no counters: for code run outside a Baton (and for comparison)."""
        return cls(tracer_provider=trace.NoOpTracerProvider())

    @classmethod
    def create(
        cls,
        *,
        exporter: SpanExporter | None = None,
        batch: bool = True,
        capture_content: bool = False,
        service_name: str = "baton",
    ) -> Telemetry:
        """Real spans (trace ids for logs and `/baton status`) and counters.

        Spans leave the process only through `exporter`; `batch=False` exports each span as
        it ends (tests read them at once).
        """
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if exporter is not None:
            provider.add_span_processor(
                BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            )
        return cls(tracer_provider=provider, metrics=Metrics(), capture_content=capture_content)

    async def shutdown(self) -> None:
        """Export what is still queued, then stop (the exporter's HTTP call runs off the loop)."""
        if isinstance(self.tracer_provider, TracerProvider):
            await asyncio.to_thread(self.tracer_provider.shutdown)


def otlp_exporter(endpoint: str) -> SpanExporter:
    """OTLP/HTTP (protobuf) to `<endpoint>/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT means."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")


_OFF = Telemetry.off()
_current: ContextVar[Telemetry] = ContextVar("baton_telemetry", default=_OFF)


def current() -> Telemetry:
    """The telemetry of the run this code works for (`off` outside any run)."""
    return _current.get()


def traceparent(span: Span) -> str | None:
    """The span's W3C `traceparent`, to continue its trace later (None if not recording)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def trace_id_of(parent: str | None) -> str | None:
    """The trace id (32 hex digits) in a `traceparent` value."""
    if not parent:
        return None
    parts = parent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def log_fields() -> dict[str, str]:
    """The ids a log record carries: run, task, team, and the current trace and span."""
    fields = {
        name: value
        for name, value in (
            ("run_id", RUN_ID.get()),
            ("task_id", TASK_ID.get()),
            ("team_id", TEAM_ID.get()),
        )
        if value
    }
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        fields["trace_id"] = format(ctx.trace_id, "032x")
        fields["span_id"] = format(ctx.span_id, "016x")
    return fields


@contextmanager
def _bound(var: ContextVar[Any], value: Any) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


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
    context = _PROPAGATOR.extract({"traceparent": parent}) if parent else None
    with (
        _bound(_current, telemetry),
        _bound(RUN_ID, run_id),
        _bound(TEAM_ID, team_id),
        telemetry.tracer.start_as_current_span(
            f"{Operation.INVOKE_AGENT} {SUPERVISOR}",
            context=context,
            kind=SpanKind.INTERNAL,
            attributes=_attributes(
                {
                    OPERATION: Operation.INVOKE_AGENT.value,
                    AGENT_NAME: SUPERVISOR,
                    CONVERSATION_ID: run_id,
                    RUN_ID_ATTR: run_id,
                    TEAM_ATTR: team_id,
                    CHANNEL_ATTR: channel_id,
                    THREAD_ATTR: thread_ts,
                }
            ),
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        _errors_marked(span),
    ):
        yield span


@contextmanager
def task_span(*, agent: str, task_id: str, run_id: str, attempt: int) -> Iterator[Span]:
    """A specialist's `invoke_agent` span for one task."""
    with (
        _bound(TASK_ID, task_id),
        current().tracer.start_as_current_span(
            f"{Operation.INVOKE_AGENT} {agent}",
            kind=SpanKind.INTERNAL,
            attributes={
                OPERATION: Operation.INVOKE_AGENT.value,
                AGENT_NAME: agent,
                CONVERSATION_ID: run_id,
                RUN_ID_ATTR: run_id,
                TASK_ID_ATTR: task_id,
                TASK_ATTEMPT_ATTR: attempt,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        _errors_marked(span),
    ):
        yield span


@contextmanager
def tool_span(*, name: str, call_id: str, description: str, arguments: str) -> Iterator[Span]:
    """An `execute_tool` span; `arguments` (JSON) is kept only when content is captured."""
    telemetry = current()
    attributes: dict[str, str | int] = {
        OPERATION: Operation.EXECUTE_TOOL.value,
        TOOL_NAME: name,
        TOOL_CALL_ID: call_id,
        TOOL_TYPE: "function",
        TOOL_DESCRIPTION: description,
    }
    if telemetry.capture_content:
        attributes[TOOL_ARGUMENTS] = arguments
    with (
        telemetry.tracer.start_as_current_span(
            f"{Operation.EXECUTE_TOOL} {name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        _errors_marked(span),
    ):
        yield span


def tool_result(span: Span, *, ok: bool, content: str) -> None:
    """What the tool returned: whether it worked, and (captured content only) its text."""
    span.set_attribute(TOOL_OK_ATTR, ok)
    if current().capture_content:
        span.set_attribute(TOOL_RESULT, content)


@contextmanager
def _errors_marked(span: Span) -> Iterator[None]:
    """An exception marks the span failed with its type only: messages may quote prompts."""
    try:
        yield
    except BaseException as e:
        kind = type(e).__name__
        span.set_attribute(ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        raise


async def call_model(
    provider: ModelProvider, request: ModelRequest, *, on_text: TextSink | None = None
) -> ModelResponse:
    """`provider.complete(request)` inside a `chat` span with the model and token counts."""
    telemetry = current()
    attributes: dict[str, str | int] = {
        OPERATION: Operation.CHAT.value,
        PROVIDER: provider.name,
        REQUEST_MODEL: request.model,
        REQUEST_MAX_TOKENS: request.max_tokens,
        OUTPUT_TYPE: "json" if request.output_schema is not None else "text",
    }
    if telemetry.capture_content:
        attributes[SYSTEM_INSTRUCTIONS] = json.dumps([{"type": "text", "content": request.system}])
        attributes[INPUT_MESSAGES] = json.dumps([_message(m) for m in request.messages])
    with (
        telemetry.tracer.start_as_current_span(
            f"{Operation.CHAT} {request.model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        _errors_marked(span),
    ):
        response = await provider.complete(request, on_text=on_text)
        span.set_attribute(INPUT_TOKENS, response.usage.input_tokens)
        span.set_attribute(OUTPUT_TOKENS, response.usage.output_tokens)
        if telemetry.capture_content:
            span.set_attribute(OUTPUT_MESSAGES, json.dumps([_output(response)]))
        return response


def record_usage(model: str, usage: Usage, cost: float) -> None:
    """Count one model call's tokens and cost (a no-op outside a Baton with metrics)."""
    metrics = current().metrics
    if metrics is not None:
        metrics.model_usage(
            model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost=cost
        )


def _message(m: Message) -> dict[str, Any]:
    """A message in the conventions' `gen_ai.input.messages` shape."""
    parts: list[dict[str, Any]] = []
    if m.role == "tool":
        parts.append({"type": "tool_call_response", "id": m.tool_call_id, "response": m.content})
    elif m.content:
        parts.append({"type": "text", "content": m.content})
    parts += [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
        for c in m.tool_calls
    ]
    return {"role": m.role, "parts": parts}


def _output(response: ModelResponse) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if response.structured is not None:
        parts.append({"type": "text", "content": json.dumps(response.structured)})
    elif response.text:
        parts.append({"type": "text", "content": response.text})
    parts += [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
        for c in response.tool_calls
    ]
    finish = "tool_call" if response.tool_calls else "stop"
    return {"role": "assistant", "parts": parts, "finish_reason": finish}

"""The telemetry a Baton carries: its tracer, its counters, and the ids log records show.

The span of the run being worked on makes its `Telemetry` current in a context variable
(`agents.spans.run_span`), so code further down — a task, the tool-calling loop — reaches it
without being handed it. The same context carries the run, task and team ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents.counters import Metrics
from agents.messages import Usage

# What a log record belongs to; set by the spans (agents.spans), read by the log formatter.
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
# The telemetry of the run being worked on; bound by the run's span (agents.spans.run_span).
TELEMETRY: ContextVar[Telemetry] = ContextVar("baton_telemetry", default=_OFF)


def current() -> Telemetry:
    """The telemetry of the run this code works for (`off` outside any run)."""
    return TELEMETRY.get()


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
def bound(var: ContextVar[Any], value: Any) -> Iterator[None]:
    """`var` set to `value` inside the block."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def parent_context(traceparent: str) -> Context:
    """The OpenTelemetry context a `traceparent` value stands for."""
    return _PROPAGATOR.extract({"traceparent": traceparent})


def record_usage(model: str, usage: Usage, cost: float) -> None:
    """Count one model call's tokens and cost (a no-op outside a Baton with metrics)."""
    metrics = current().metrics
    if metrics is not None:
        metrics.model_usage(
            model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost=cost
        )

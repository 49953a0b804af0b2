"""What one Baton process counts as it works, in Prometheus terms.

Counts that describe stored state (runs and tasks by status, approvals waiting, schedule
fires) are not here: `/metrics` reads them from the database at scrape time, so every
replica reports the same truth. What is here happens in this process only: model tokens
and cost as each call returns, Slack Web API calls as each answer arrives, and how long the
runs this process finished took.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram

# A run takes seconds to minutes, or hours when it waits for a person.
# How late the event loop may run a callback that is due: an ack waits as long.
LAG_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RUN_SECONDS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 86400.0)


class TokenKind(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class Metrics:
    """One registry per Baton (tests and benchmarks run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.run_duration = Histogram(
            "baton_run_duration_seconds",
            "From request to final answer (approval waits included), by final status.",
            ["status"],
            buckets=RUN_SECONDS,
            registry=self.registry,
        )
        self.model_tokens = Counter(
            "baton_model_tokens",
            "Tokens used by model calls, by model (provider:model-id) and kind.",
            ["model", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "baton_cost_usd",
            "What model calls cost in US dollars, by model (unknown prices count as 0).",
            ["model"],
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "baton_event_loop_lag_seconds",
            "How late this process's event loop ran a callback that was due (sampled four "
            "times a second): a loop busy with other work delays acks and runs alike.",
            buckets=LAG_SECONDS,
            registry=self.registry,
        )
        self.slack_calls = Counter(
            "baton_slack_calls",
            "Slack Web API calls by method and result: ok, Slack's error code "
            "(ratelimited for HTTP 429), http_<status> or connection_error.",
            ["method", "result"],
            registry=self.registry,
        )

    def model_usage(
        self, model: str, *, input_tokens: int, output_tokens: int, cost: float
    ) -> None:
        """One model call's tokens and cost."""
        self.model_tokens.labels(model, TokenKind.INPUT.value).inc(input_tokens)
        self.model_tokens.labels(model, TokenKind.OUTPUT.value).inc(output_tokens)
        self.cost.labels(model).inc(cost)

    def slack_call(self, method: str, result: str) -> None:
        """One answer (or failure) from Slack's Web API."""
        self.slack_calls.labels(method, result).inc()

    def run_finished(self, status: str, seconds: float) -> None:
        self.run_duration.labels(status).observe(max(seconds, 0.0))

"""`GET /metrics` in Prometheus text format, and the count of Slack calls behind it.

Stored state (runs, tasks, approvals, schedule fires) is read from the database at each
scrape, so every replica reports the whole deployment's figures: aggregate those with
`max`, not `sum`. The rest (`agents.counters`) is this process's own and sums across replicas.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from agents.counters import Metrics
from storage import stats, workers
from storage.db import utcnow
from storage.models import RunStatus

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)


class SlackCallCounter(AsyncRetryHandler):
    """Sees every answer the Web API client gets, retried ones (429s) included; never retries.

    slack_sdk offers each response to its retry handlers in turn, so the first one in the
    list observes every call made through the one client.
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=0)
        self.metrics = metrics

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        self.metrics.slack_call(request.url.rsplit("/", 1)[-1], call_result(response, error))
        return False


def call_result(response: HttpResponse | None, error: Exception | None) -> str:
    """`ok`, Slack's error code (`ratelimited` for a 429), `http_<status>` or `connection_error`."""
    if response is None:
        return "connection_error" if error is not None else "unknown"
    if response.status_code == 429:
        return "ratelimited"
    body: Any = response.body
    if isinstance(body, dict) and "ok" in body:
        return "ok" if body["ok"] else str(body.get("error") or "unknown_error")
    return "ok" if response.status_code == 200 else f"http_{response.status_code}"


class _Scrape(Collector):
    """This process's instruments, then the figures read from the database (None: unreachable)."""

    def __init__(self, metrics: Metrics | None, counts: stats.StoredCounts | None) -> None:
        self.metrics = metrics
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        if self.metrics is not None:
            yield from self.metrics.registry.collect()
        yield GaugeMetricFamily(
            "baton_database_up",
            "1 when the database answered this scrape's queries, else 0.",
            value=0 if self.counts is None else 1,
        )
        if self.counts is not None:
            yield from stored_families(self.counts)


def stored_families(counts: stats.StoredCounts) -> Iterable[Metric]:
    """The database's counts as Prometheus families."""
    finished = CounterMetricFamily(
        "baton_runs", "Finished runs, by final status.", labels=["status"]
    )
    active = GaugeMetricFamily(
        "baton_runs_active",
        "Runs not finished yet: queued, planning, running, or waiting for a person.",
        labels=["status"],
    )
    for status in RunStatus:
        family = finished if status.is_final else active
        family.add_metric([status.value], counts.runs.get(status, 0))
    yield finished
    yield active

    tasks = CounterMetricFamily(
        "baton_tasks", "Finished tasks, by specialist and final status.", labels=["agent", "status"]
    )
    for (agent, task_status), n in sorted(counts.tasks.items()):
        if task_status.is_final:
            tasks.add_metric([agent, task_status.value], n)
    yield tasks

    yield GaugeMetricFamily(
        "baton_approvals_waiting",
        "Approvals waiting for a person's decision (not expired).",
        value=counts.approvals_waiting,
    )
    fires = CounterMetricFamily(
        "baton_schedule_fires",
        "Schedule fires by outcome: started, missed (Baton was down), skipped_busy.",
        labels=["outcome"],
    )
    for outcome, n in sorted(counts.schedule_fires.items()):
        fires.add_metric([outcome.value], n)
    yield fires
    yield from worker_families(counts.workers)


def worker_families(found: workers.Workers, *, now: datetime | None = None) -> Iterable[Metric]:
    """The `baton worker` processes: how many beat and how many went stale; each one's runs
    and the age of its last beat (a stale one has stopped without leaving)."""
    at = now if now is not None else utcnow()
    count = GaugeMetricFamily(
        "baton_workers",
        "baton worker processes recorded: live (beating) or stale (stopped without leaving).",
        labels=["state"],
    )
    count.add_metric(["live"], len(found.live))
    count.add_metric(["stale"], len(found.stale))
    yield count
    driving = GaugeMetricFamily(
        "baton_worker_runs_driving",
        "Runs each live worker drives, as of its last beat.",
        labels=["worker"],
    )
    beat = GaugeMetricFamily(
        "baton_worker_last_beat_age_seconds",
        "Seconds since each recorded worker's last heartbeat.",
        labels=["worker", "state"],
    )
    for state, rows in (("live", found.live), ("stale", found.stale)):
        for w in rows:
            if state == "live":
                driving.add_metric([w.id], w.runs_driving)
            beat.add_metric([w.id, state], (at - w.last_beat_at).total_seconds())
    yield driving
    yield beat


async def exposition(baton: Baton) -> bytes:
    """The whole `/metrics` page; without the database, this process's figures only."""
    counts: stats.StoredCounts | None
    try:
        counts = await stats.stored_counts(baton.db)
    except Exception as e:
        log.warning("metrics: the database did not answer (%s)", type(e).__name__)
        counts = None
    return generate_latest(_Scrape(baton.telemetry.metrics, counts))


def metrics_route(baton: Baton) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for `GET /metrics`."""

    async def handler(_: web.Request) -> web.Response:
        body = await exposition(baton)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler

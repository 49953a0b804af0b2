"""The bounds every run works within."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from agents.retry import RetryPolicy


@dataclass(frozen=True)
class Limits:
    max_tasks: int = 8
    max_parallel: int = 4
    task_timeout: float = 180.0  # seconds, per task (all its turns and tool calls)
    run_deadline: float = 600.0  # seconds of work per run (waiting for a person not counted)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    approval_ttl: timedelta = timedelta(hours=24)
    # Spend after which the run asks a person before going on; None for no budget.
    budget_usd: float | None = None
    # Tokens after which the run asks a person before going on; None for no budget.
    budget_tokens: int | None = None
    lease_seconds: float = 30.0

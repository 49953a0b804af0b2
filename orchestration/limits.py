"""The bounds every run works within."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.retry import RetryPolicy


@dataclass(frozen=True)
class Limits:
    max_tasks: int = 8
    max_parallel: int = 4
    task_timeout: float = 180.0  # seconds, per task (all its turns and tool calls)
    run_deadline: float = 600.0  # seconds of work per run (waiting for a person not counted)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Spend after which the run asks a person before going on; None for no budget.
    budget_usd: float | None = None
    # Tokens after which the run asks a person before going on; None for no budget.
    budget_tokens: int | None = None
    # A driver renews its lease while it works; a lease not renewed for this long lapses and
    # another process (or the same one, after a crash) takes the run over.
    lease_seconds: float = 30.0

    @property
    def heartbeat_seconds(self) -> float:
        """How often a driver renews its lease and looks for a Stop asked elsewhere."""
        return min(self.lease_seconds / 3, 5.0)

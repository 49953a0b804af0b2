"""The tables. Only `storage` reads or writes them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.db import utcnow


class RunStatus(StrEnum):
    QUEUED = "queued"
    PLANNING = "planning"
    RUNNING = "running"
    WAITING = "waiting"  # suspended at one or more approval gates
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, but some tasks failed, were skipped or rejected
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # waiting for a person's decision
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    # Answered without calling the tools its task needed: not shown as done, not built on.
    UNVERIFIED = "unverified"

    @property
    def is_final(self) -> bool:
        return self in (
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.SKIPPED,
            TaskStatus.REJECTED,
            TaskStatus.UNVERIFIED,
        )


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON))


class Run(SQLModel, table=True):
    __tablename__ = "runs"

    id: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    status: RunStatus = Field(default=RunStatus.QUEUED, index=True)
    source: str = "command"  # mention | dm | command | schedule
    team_id: str | None = None
    channel_id: str | None = Field(default=None, index=True)
    thread_ts: str | None = Field(default=None, index=True)
    user_id: str | None = None
    request: str = Field(default="", sa_column=Column(Text))
    playbook: str | None = None
    context: str | None = Field(default=None, sa_column=Column(Text))
    plan: dict[str, Any] | None = _json()
    answer: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    budget_usd: float | None = None
    # Tokens after which the run asks a person before going on (beside the dollar budget).
    budget_tokens: int | None = None
    deadline_at: datetime | None = None
    schedule_id: str | None = Field(default=None, index=True)
    # Where progress is shown (a Slack message ts); kept so another process can continue it.
    status_message_ts: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    # W3C traceparent of the run's first span: later stretches of the run continue its trace.
    traceparent: str | None = None


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"

    run_id: str = Field(primary_key=True, foreign_key="runs.id")
    task_id: str = Field(primary_key=True)
    position: int = 0
    agent: str
    instruction: str = Field(sa_column=Column(Text))
    depends_on: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    requires_approval: bool = False
    approved: bool = False
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    # The specialist's conversation so far, kept when it suspends at a tool approval.
    transcript: list[dict[str, Any]] | None = _json()
    # The model that gave the task's final answer (`provider:model-id`), fallbacks included.
    model: str | None = None


class Event(SQLModel, table=True):
    """Append-only audit trail: one row per state change."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    at: datetime = Field(default_factory=utcnow)
    kind: str
    task_id: str | None = None
    data: dict[str, Any] | None = _json()


class SeenSlackEvent(SQLModel, table=True):
    """Slack event ids already handled; a retry of one of them is dropped."""

    __tablename__ = "seen_slack_events"

    event_id: str = Field(primary_key=True)
    seen_at: datetime = Field(default_factory=utcnow, index=True)


class Approval(SQLModel, table=True):
    __tablename__ = "approvals"

    id: str = Field(primary_key=True)
    run_id: str = Field(index=True)
    task_id: str
    kind: str  # tool | task | agent | budget
    status: ApprovalStatus = Field(default=ApprovalStatus.PENDING, index=True)
    requested_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    summary: str = Field(default="", sa_column=Column(Text))
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = _json()
    call_id: str | None = None
    approvers: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    channel_id: str | None = Field(default=None, index=True)
    message_ts: str | None = None
    extra_budget_usd: float | None = None
    extra_budget_tokens: int | None = None


class ToolCallRecord(SQLModel, table=True):
    """A side-effecting tool call that was performed, by idempotency key."""

    __tablename__ = "tool_calls"
    __table_args__ = (UniqueConstraint("idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    run_id: str = Field(index=True)
    task_id: str
    tool: str
    args: dict[str, Any] | None = _json()
    result: str = Field(default="", sa_column=Column(Text))
    performed_at: datetime = Field(default_factory=utcnow)


class ModelUsage(SQLModel, table=True):
    """One model call's tokens and cost: who asked (agent), which model, priced or not."""

    __tablename__ = "model_usage"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    task_id: str | None = None  # None: the supervisor (planning, the final answer)
    agent: str
    model: str
    at: datetime = Field(default_factory=utcnow)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True  # False: the model has no price, so cost_usd is 0 and says nothing


class AlertMode(StrEnum):
    ALWAYS = "always"  # post a digest after every run
    ON_CHANGE = "on_change"  # only when something differs from the last run
    ON_FAILURE = "on_failure"  # only when a check or task failed


class Schedule(SQLModel, table=True):
    """A recurring request. This table is the truth; the in-process scheduler mirrors it."""

    __tablename__ = "schedules"

    id: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    team_id: str | None = None
    channel_id: str = Field(index=True)
    # As the person typed it, and as understood: `cron` (5 fields) or `interval` (seconds).
    when_text: str
    kind: str
    cron: str | None = None
    interval_seconds: int | None = None
    timezone: str = "UTC"
    request: str = Field(default="", sa_column=Column(Text))
    playbook: str | None = None
    alert: AlertMode = AlertMode.ALWAYS
    # Post one "all quiet" line a day when alerts were held back.
    quiet_daily: bool = False
    paused: bool = False
    deleted: bool = Field(default=False, index=True)
    snoozed_until: datetime | None = None


class FireOutcome(StrEnum):
    STARTED = "started"  # a run was started for this fire
    MISSED = "missed"  # Baton was down and the fire was older than the grace period
    SKIPPED_BUSY = "skipped_busy"  # the previous run of this schedule was still going


class ScheduleFire(SQLModel, table=True):
    """One fire of a schedule, claimed once: the unique key keeps two replicas from both running it."""

    __tablename__ = "schedule_fires"
    __table_args__ = (UniqueConstraint("schedule_id", "fire_time"),)

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: str = Field(index=True)
    fire_time: datetime
    manual: bool = False  # `/baton schedule run`
    claimed_at: datetime = Field(default_factory=utcnow)
    claimed_by: str | None = None
    outcome: FireOutcome = FireOutcome.STARTED
    # Earlier fire times this one stands for that never ran (Baton was down).
    missed_before: int = 0
    run_id: str | None = Field(default=None, index=True)
    # What the digest compared: {check key: {"ok": bool, "state": str, "figure": str}}.
    checks: dict[str, Any] | None = _json()
    settled: bool = False  # the run finished and its checks were kept
    digest_ts: str | None = None
    posted: bool = False  # a digest (or the daily quiet line) was posted for this fire
    quiet_line: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

"""The tables. Only `storage` reads or writes them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import JSON, Column, Dialect, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import AutoString

from storage.db import utcnow


class RunStatus(StrEnum):
    QUEUED = "queued"
    PLANNING = "planning"
    RUNNING = "running"
    WAITING = "waiting"  # suspended at one or more approval gates
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, but some tasks failed, were skipped or rejected
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped by a person before it finished

    @property
    def is_final(self) -> bool:
        return self in (
            RunStatus.SUCCEEDED,
            RunStatus.PARTIAL,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        )


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # waiting for a person's decision
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"  # a person said no (or the approval expired): it did not happen
    # Answered without calling the tools its task needed: not shown as done, not built on.
    UNVERIFIED = "unverified"
    CANCELLED = "cancelled"  # it was running when the run was stopped

    @property
    def is_final(self) -> bool:
        return self in (
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.SKIPPED,
            TaskStatus.REJECTED,
            TaskStatus.UNVERIFIED,
            TaskStatus.CANCELLED,
        )


class EventKind(StrEnum):
    """What an audit event records. The run state machine (`storage.run_states`) writes the
    state changes; the rest are notes on the way (a tool's result, a model that took over)."""

    # The run's own moves.
    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    PLAN_READY = "plan_ready"
    PLAN_REVISED = "plan_revised"
    RUN_RESUMED = "run_resumed"
    RUN_WAITING = "run_waiting"
    RUN_FINISHED = "run_finished"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    # A task's moves.
    TASK_STARTED = "task_started"
    TASK_SUCCEEDED = "task_succeeded"
    TASK_UNVERIFIED = "task_unverified"
    TASK_FAILED = "task_failed"
    TASK_REJECTED = "task_rejected"
    TASK_SKIPPED = "task_skipped"
    TASK_STOPPED = "task_stopped"
    TASK_CANCELLED = "task_cancelled"
    TASK_REQUEUED = "task_requeued"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_APPLIED = "approval_applied"
    # Notes: no state changes.
    TASK_PROGRESS = "task_progress"
    TOOL_RESULT = "tool_result"
    MODEL_FALLBACK = "model_fallback"
    MODEL_FAILED = "model_failed"
    PLAN_INVALID = "plan_invalid"
    PLAN_ROUTED = "plan_routed"
    THREAD_MESSAGES = "thread_messages"
    ANSWER_VERIFIED = "answer_verified"
    ANSWER_DISPUTED = "answer_disputed"
    ANSWER_UNCHECKED = "answer_unchecked"
    WORKSPACE_UNINSTALLED = "workspace_uninstalled"
    # An approval's own trail (`storage.approvals`).
    APPROVAL_VOTE = "approval_vote"
    APPROVAL_APPROVED = "approval_approved"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_WITHDRAWN = "approval_withdrawn"
    APPROVAL_ESCALATED = "approval_escalated"
    APPROVAL_GRANTED_FOR_RUN = "approval_granted_for_run"
    APPROVAL_NOT_POSTED = "approval_not_posted"  # Slack refused it in the thread: sent by DM
    # What reached Slack (`storage.outbox`).
    ANSWER_DELIVERED = "answer_delivered"
    APPROVAL_POSTED = "approval_posted"
    DIGEST_POSTED = "digest_posted"
    DELIVERY_FAILED = "delivery_failed"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # the run was stopped before anyone decided


class ApprovalKind(StrEnum):
    """What an approval gate stands before."""

    TOOL = "tool"  # one call of a tool that changes things
    TASK = "task"  # a step the plan marked as needing approval
    AGENT = "agent"  # a specialist asked a person to decide
    BUDGET = "budget"  # the run reached its budget and asks to spend more


class RunSource(StrEnum):
    """Where a run was asked for."""

    MENTION = "mention"  # @Baton in a channel
    DM = "dm"  # a direct message (or the assistant container)
    FOLLOW_UP = "follow-up"  # a reply in a thread Baton answered, without a mention
    COMMAND = "command"  # `/baton`
    SCHEDULE = "schedule"  # a schedule's fire
    INVESTIGATE = "investigate"  # the Investigate button on a digest
    MCP = "mcp"  # `baton mcp`


class ScheduleKind(StrEnum):
    """How a schedule's `when` was understood."""

    CRON = "cron"  # 5 fields, crontab numbering
    INTERVAL = "interval"  # every so many seconds, counted from the schedule's creation


_E = TypeVar("_E", bound=StrEnum)


class _Value(TypeDecorator[_E]):
    """A StrEnum kept in a VARCHAR column as its value, read back as the member.

    `sa.Enum` (the statuses) would store member names; these columns have always held the
    values (`"tool"`, `"schedule"`, `"cron"`), so existing rows stay valid with no migration.
    A value outside the enum is refused when written.
    """

    impl = AutoString
    cache_ok = True

    def __init__(self, enum: type[_E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: _E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> _E | None:
        return None if value is None else self.enum(value)


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON))


def new_list() -> list[Any]:
    """An empty list, as a field's default. (Not `list` itself: pydantic reads a default
    factory's signature each time a row is made, and a builtin's costs a parse of its text —
    a tenth of a web process's CPU per request.)"""
    return []


class Run(SQLModel, table=True):
    __tablename__ = "runs"

    id: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    status: RunStatus = Field(default=RunStatus.QUEUED, index=True)
    source: RunSource = Field(default=RunSource.COMMAND, sa_type=_Value(RunSource))
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
    # Bumped by everyone who wants the run looked at again (a decision, a Stop, a sweep): the
    # driver compares it before letting go, so a nudge that lands mid-drive is never lost.
    wakeups: int = 0
    # Who asked to stop the run; the driver (in whichever process) stops it.
    cancel_requested_by: str | None = None
    # A message sent in the thread while this run's predecessor was still going: it starts
    # when that run has finished, and sees its answer.
    follows_run_id: str | None = Field(default=None, index=True)
    # The message the answer streamed into as it was written: the answer is delivered there.
    answer_preview_ts: str | None = None
    # A slash command's response URL: its request message is posted after the ack by whoever
    # drives the run, and a request Slack refuses is answered to the requester through it.
    response_url: str | None = None


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"

    run_id: str = Field(primary_key=True, foreign_key="runs.id")
    task_id: str = Field(primary_key=True)
    position: int = 0
    agent: str
    instruction: str = Field(sa_column=Column(Text))
    depends_on: list[str] = Field(default_factory=new_list, sa_column=Column(JSON))
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
    # The workspace of the run (OAuth mode serves several).
    team_id: str | None = None
    task_id: str
    kind: ApprovalKind = Field(sa_type=_Value(ApprovalKind))
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
    approvers: list[str] = Field(default_factory=new_list, sa_column=Column(JSON))
    channel_id: str | None = Field(default=None, index=True)
    message_ts: str | None = None
    extra_budget_usd: float | None = None
    extra_budget_tokens: int | None = None
    # The policy it was opened under (catalog `approvals:`), fixed at the request.
    requested_by: str | None = None
    self_approval: bool = True
    quorum: int = 1
    escalate_at: datetime | None = None
    escalate_to: list[str] = Field(default_factory=new_list, sa_column=Column(JSON))
    escalated_at: datetime | None = None
    # Approved for the rest of the run: later identical calls pass without asking.
    for_run: bool = False
    # What the approver changed the call's arguments to ("Edit & approve").
    edited_args: dict[str, Any] | None = _json()
    # Direct-message copies of the request: [[channel, ts], …].
    copies: list[list[str]] = Field(default_factory=new_list, sa_column=Column(JSON))


class ApprovalVote(SQLModel, table=True):
    """One person's approval of a gate that needs several (`quorum`); once per person."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(index=True)
    user_id: str
    at: datetime = Field(default_factory=utcnow)


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


class DeliveryPurpose(StrEnum):
    """What an outbox row shows people."""

    REQUEST = "request"  # a slash command's request, posted so the run has a thread
    ANSWER = "answer"  # the run's final answer (split into pieces when long)
    APPROVAL = "approval"  # an approval request with its buttons
    APPROVAL_DECIDED = "approval_decided"  # the approval message, edited: who decided, no buttons
    NOTICE = "notice"  # one sentence in the run's thread
    DIGEST = "digest"  # a scheduled run's digest, its details in its thread
    QUIET = "quiet"  # a schedule's daily "all quiet" line


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # Slack refused for good (the reason is in `last_error`)


class Delivery(SQLModel, table=True):
    """The outbox: something to show people, written in the transaction that made it true.

    One row per (run, purpose, ref) — `ref` tells apart several of a kind (an approval id, a
    fire id). A deliverer posts it, retrying across Slack's failures and Baton's restarts;
    a long message goes out in pieces, each once and in order (`posted`). Only the holder of
    the run's lease delivers its rows, so one process at a time does, oldest first.
    """

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("run_id", "purpose", "ref"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    purpose: DeliveryPurpose
    ref: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    state: DeliveryState = Field(default=DeliveryState.PENDING, index=True)
    # What to show, as the purpose needs it (text, blocks, a response URL, …).
    data: dict[str, Any] | None = _json()
    # The messages to post, fixed at the first attempt, and the ts of each one posted so far.
    pieces: list[dict[str, Any]] | None = _json()
    posted: list[str] = Field(default_factory=new_list, sa_column=Column(JSON))
    # An attempt was cut off (timeout, crash): Slack may have the message already.
    in_doubt: bool = False
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    delivered_at: datetime | None = None


class InboxItem(SQLModel, table=True):
    """A click or form submission, stored before Slack gets its ack and handled after it.

    A crash between the ack and the handling loses nothing: the sweep handles what is left.
    `key` (Slack's trigger id, or the action's own id) drops a replayed request.
    """

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str
    kind: str
    body: dict[str, Any] | None = _json()
    received_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    attempts: int = 0
    done_at: datetime | None = Field(default=None, index=True)


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
    kind: ScheduleKind = Field(sa_type=_Value(ScheduleKind))
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


class Installation(SQLModel, table=True):
    """A workspace Baton is installed in (OAuth mode): its bot token and who Baton is there.

    One row per workspace (the newest install wins); deleted when Slack says Baton was
    uninstalled or its tokens were revoked.
    """

    __tablename__ = "slack_installations"

    team_id: str = Field(primary_key=True)
    enterprise_id: str | None = None
    team_name: str | None = None
    app_id: str | None = None
    bot_token: str
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: str | None = None
    installed_by: str | None = None
    installed_at: datetime = Field(default_factory=utcnow)


class OAuthState(SQLModel, table=True):
    """A state handed to a browser by `/slack/install`, good for one redirect back."""

    __tablename__ = "slack_oauth_states"

    state: str = Field(primary_key=True)
    expires_at: datetime = Field(index=True)


class AssistantThread(SQLModel, table=True):
    """A conversation in Slack's assistant container, and the channel its person is looking at."""

    __tablename__ = "assistant_threads"

    channel_id: str = Field(primary_key=True)  # the person's DM with Baton
    thread_ts: str = Field(primary_key=True)
    user_id: str
    started_at: datetime = Field(default_factory=utcnow)
    # Set by `assistant_thread_context_changed` (and the start): offered to the planner.
    context_channel_id: str | None = None
    context_channel_name: str | None = None
    # The thread is named after its first request, once.
    titled: bool = False


class Feedback(SQLModel, table=True):
    """One person's 👍 or 👎 on one run's answer (a second click changes it, never adds one)."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("run_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    user_id: str
    positive: bool
    # The agents and models that made the answer, as the run's usage ledger had them.
    agents: list[str] = Field(default_factory=new_list, sa_column=Column(JSON))
    models: list[str] = Field(default_factory=new_list, sa_column=Column(JSON))
    at: datetime = Field(default_factory=utcnow, index=True)


class WorkerRow(SQLModel, table=True):
    """A `baton worker` process: recorded when it starts, its beat renewed while it runs,
    removed when it stops cleanly. A row whose beat is old is a worker that died."""

    __tablename__ = "workers"

    id: str = Field(primary_key=True)  # the worker's driver name (host:pid:…), as in leases
    host: str
    pid: int
    started_at: datetime = Field(default_factory=utcnow)
    last_beat_at: datetime = Field(default_factory=utcnow)
    runs_driving: int = 0

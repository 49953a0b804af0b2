"""The tables of Baton 0.1.0, the last release without migrations (commit 9719d41).

A database that release made (with `create_all`, no `alembic_version`) is stamped at this
revision instead of running it; see storage/schema.py.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Enum columns hold the members' NAMES; on PostgreSQL each is a native ENUM type.
RUN_STATUS = sa.Enum(
    "QUEUED", "PLANNING", "RUNNING", "WAITING", "SUCCEEDED", "PARTIAL", "FAILED", name="runstatus"
)
TASK_STATUS = sa.Enum(
    "PENDING",
    "RUNNING",
    "WAITING",
    "SUCCEEDED",
    "FAILED",
    "SKIPPED",
    "REJECTED",
    name="taskstatus",
)
APPROVAL_STATUS = sa.Enum("PENDING", "APPROVED", "REJECTED", "EXPIRED", name="approvalstatus")
ALERT_MODE = sa.Enum("ALWAYS", "ON_CHANGE", "ON_FAILURE", name="alertmode")
FIRE_OUTCOME = sa.Enum("STARTED", "MISSED", "SKIPPED_BUSY", name="fireoutcome")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("finished_at", nullable=True),
        sa.Column("status", RUN_STATUS, nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("channel_id", sa.String(), nullable=True),
        sa.Column("thread_ts", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("playbook", sa.String(), nullable=True),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        _time("deadline_at", nullable=True),
        sa.Column("schedule_id", sa.String(), nullable=True),
        sa.Column("status_message_ts", sa.String(), nullable=True),
        sa.Column("lease_owner", sa.String(), nullable=True),
        _time("lease_until", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("channel_id", "created_at", "schedule_id", "status", "thread_ts"):
        op.create_index(f"ix_runs_{column}", "runs", [column])

    op.create_table(
        "tasks",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=True),
        sa.Column("depends_on", sa.JSON(), nullable=True),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("status", TASK_STATUS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("transcript", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "task_id"),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        _time("at"),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_run_id", "events", ["run_id"])

    op.create_table(
        "seen_slack_events",
        sa.Column("event_id", sa.String(), nullable=False),
        _time("seen_at"),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_seen_slack_events_seen_at", "seen_slack_events", ["seen_at"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", APPROVAL_STATUS, nullable=False),
        _time("requested_at"),
        _time("expires_at"),
        _time("decided_at", nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("tool_name", sa.String(), nullable=True),
        sa.Column("tool_args", sa.JSON(), nullable=True),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("approvers", sa.JSON(), nullable=True),
        sa.Column("channel_id", sa.String(), nullable=True),
        sa.Column("message_ts", sa.String(), nullable=True),
        sa.Column("extra_budget_usd", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("channel_id", "run_id", "status"):
        op.create_index(f"ix_approvals_{column}", "approvals", [column])

    op.create_table(
        "tool_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("tool", sa.String(), nullable=False),
        sa.Column("args", sa.JSON(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        _time("performed_at"),
        sa.PrimaryKeyConstraint("id"),
        # Unnamed, as the release made it (PostgreSQL calls it tool_calls_idempotency_key_key).
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_tool_calls_run_id", "tool_calls", ["run_id"])

    op.create_table(
        "schedules",
        sa.Column("id", sa.String(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("when_text", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("cron", sa.String(), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("playbook", sa.String(), nullable=True),
        sa.Column("alert", ALERT_MODE, nullable=False),
        sa.Column("quiet_daily", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _time("snoozed_until", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("channel_id", "deleted"):
        op.create_index(f"ix_schedules_{column}", "schedules", [column])

    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.String(), nullable=False),
        _time("fire_time"),
        sa.Column("manual", sa.Boolean(), nullable=False),
        _time("claimed_at"),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("outcome", FIRE_OUTCOME, nullable=False),
        sa.Column("missed_before", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=True),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.Column("digest_ts", sa.String(), nullable=True),
        sa.Column("posted", sa.Boolean(), nullable=False),
        sa.Column("quiet_line", sa.Boolean(), nullable=False),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        _time("acknowledged_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("schedule_id", "fire_time"),
    )
    for column in ("run_id", "schedule_id"):
        op.create_index(f"ix_schedule_fires_{column}", "schedule_fires", [column])


def downgrade() -> None:
    for table in (
        "schedule_fires",
        "schedules",
        "tool_calls",
        "approvals",
        "seen_slack_events",
        "events",
        "tasks",
        "runs",
    ):
        op.drop_table(table)  # its indexes go with it
    bind = op.get_bind()
    for enum in (RUN_STATUS, TASK_STATUS, APPROVAL_STATUS, ALERT_MODE, FIRE_OUTCOME):
        enum.drop(bind, checkfirst=True)  # PostgreSQL's types; nothing on SQLite

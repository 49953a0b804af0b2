"""Runs that stop, wait their turn and are nudged; the outbox and the inbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:07:59.234846
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.enums import add_enum_values

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_enum_values("runstatus", "CANCELLED")
    add_enum_values("taskstatus", "CANCELLED")
    add_enum_values("approvalstatus", "WITHDRAWN")
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbox_done_at"), ["done_at"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column(
            "purpose",
            sa.Enum(
                "REQUEST",
                "ANSWER",
                "APPROVAL",
                "APPROVAL_DECIDED",
                "NOTICE",
                "DIGEST",
                "QUIET",
                name="deliverypurpose",
            ),
            nullable=False,
        ),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state", sa.Enum("PENDING", "DELIVERED", "FAILED", name="deliverystate"), nullable=False
        ),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("pieces", sa.JSON(), nullable=True),
        sa.Column("posted", sa.JSON(), nullable=True),
        sa.Column("in_doubt", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "purpose", "ref"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbox_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_state"), ["state"], unique=False)

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("wakeups", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("cancel_requested_by", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("follows_run_id", sa.String(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_runs_follows_run_id"), ["follows_run_id"], unique=False
        )


def downgrade() -> None:
    # PostgreSQL cannot drop enum values: CANCELLED and WITHDRAWN stay in their types, unused.
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_follows_run_id"))
        batch_op.drop_column("follows_run_id")
        batch_op.drop_column("cancel_requested_by")
        batch_op.drop_column("wakeups")

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_state"))
        batch_op.drop_index(batch_op.f("ix_outbox_run_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_next_attempt_at"))

    op.drop_table("outbox")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_done_at"))

    op.drop_table("inbox")
    bind = op.get_bind()
    for name in ("deliverypurpose", "deliverystate"):
        sa.Enum(name=name).drop(bind, checkfirst=True)  # PostgreSQL's types; nothing on SQLite

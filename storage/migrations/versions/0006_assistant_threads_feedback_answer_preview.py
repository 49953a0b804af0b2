"""Assistant threads (the channel a person is looking at), feedback on answers, and the
message an answer streams into

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_preview_ts", sa.String(), nullable=True))
    op.create_table(
        "assistant_threads",
        sa.Column("channel_id", sa.String(), nullable=False),
        sa.Column("thread_ts", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("context_channel_id", sa.String(), nullable=True),
        sa.Column("context_channel_name", sa.String(), nullable=True),
        sa.Column("titled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "thread_ts"),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=False),
        sa.Column("agents", sa.JSON(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "user_id"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_run_id"))
        batch_op.drop_index(batch_op.f("ix_feedback_at"))
    op.drop_table("feedback")
    op.drop_table("assistant_threads")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("answer_preview_ts")

"""unverified tasks, model usage ledger, token budgets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 00:12:18.527828
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.enums import add_enum_values

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A specialist that answered without calling the tools its task needed.
    add_enum_values("taskstatus", "UNVERIFIED")
    op.create_table(
        "model_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=True),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("priced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_usage_run_id"), ["run_id"], unique=False)

    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extra_budget_tokens", sa.Integer(), nullable=True))

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("budget_tokens", sa.Integer(), nullable=True))

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model", sa.String(), nullable=True))


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value; `UNVERIFIED` stays in `taskstatus`, unused.
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("model")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("budget_tokens")

    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("extra_budget_tokens")

    with op.batch_alter_table("model_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_usage_run_id"))

    op.drop_table("model_usage")

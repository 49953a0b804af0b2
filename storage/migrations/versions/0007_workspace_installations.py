"""Workspaces Baton is installed in (OAuth mode), the states of installs under way, and the
workspace of each approval

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 02:00:54.511339
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.String(), nullable=True))
    # An approval belongs to its run's workspace (none yet for runs stored without one:
    # single-token start-up gives those its workspace).
    op.execute(
        "UPDATE approvals SET team_id = "
        "(SELECT runs.team_id FROM runs WHERE runs.id = approvals.run_id)"
    )
    op.create_table(
        "slack_installations",
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("enterprise_id", sa.String(), nullable=True),
        sa.Column("team_name", sa.String(), nullable=True),
        sa.Column("app_id", sa.String(), nullable=True),
        sa.Column("bot_token", sa.String(), nullable=False),
        sa.Column("bot_id", sa.String(), nullable=True),
        sa.Column("bot_user_id", sa.String(), nullable=True),
        sa.Column("bot_scopes", sa.String(), nullable=True),
        sa.Column("installed_by", sa.String(), nullable=True),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id"),
    )
    op.create_table(
        "slack_oauth_states",
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state"),
    )
    with op.batch_alter_table("slack_oauth_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slack_oauth_states_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_oauth_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_oauth_states_expires_at"))

    op.drop_table("slack_oauth_states")
    op.drop_table("slack_installations")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("team_id")

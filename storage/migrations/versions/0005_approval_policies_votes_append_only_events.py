"""Approval policies (self-approval, quorum, escalation, approve for the run, edits, DM
copies), and an audit trail that nothing can change: events refuse UPDATE and DELETE.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION baton_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("requested_by", sa.String(), nullable=True))
        batch.add_column(
            sa.Column("self_approval", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("quorum", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("escalate_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("escalate_to", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("for_run", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("edited_args", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("copies", sa.JSON(), nullable=True))
    op.create_table(
        "approval_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("approval_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("approval_id", "user_id"),
    )
    with op.batch_alter_table("approval_votes") as batch:
        batch.create_index(batch.f("ix_approval_votes_approval_id"), ["approval_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION baton_events_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
                f"BEGIN SELECT RAISE(ABORT, 'events are append-only: {action} is not allowed'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS baton_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    op.drop_table("approval_votes")
    with op.batch_alter_table("approvals") as batch:
        for column in (
            "copies",
            "edited_args",
            "for_run",
            "escalated_at",
            "escalate_to",
            "escalate_at",
            "quorum",
            "self_approval",
            "requested_by",
        ):
            batch.drop_column(column)

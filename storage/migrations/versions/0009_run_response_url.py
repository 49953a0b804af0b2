"""runs.response_url: where to answer a slash command's requester, kept with its run

A slash command's request message is made by whoever drives its run, after the ack; the
run carries the command's response URL so that a request Slack refuses to post can still
be answered to the person who asked.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("response_url", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("response_url")

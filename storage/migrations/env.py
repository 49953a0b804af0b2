"""Alembic's environment for Baton: runs the revisions on the connection it is handed.

`storage.schema` (start-up, `baton db upgrade`) and `storage.migrations.new` (`make
migration`) hand it an open connection; there is no alembic.ini and no URL here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from storage.migrations.autogen import compare_type, render_item, target_metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("Baton's migrations run through `baton db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    # A revision that must commit part of its work (PostgreSQL's ALTER TYPE … ADD VALUE)
    # stays correct, and a failed upgrade stops at the last revision that finished.
    transaction_per_migration=True,
    compare_type=compare_type,
    render_item=render_item,
    # Generated column changes then also work on SQLite, which cannot ALTER most of them.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()

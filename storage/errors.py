"""Baton's one exception root, and what `storage` raises. Storage is below every package, so
each package's own root derives from `BatonError` here: `except BatonError` catches anything
Baton itself raises, and nothing a library raises.

    BatonError
    ├── StorageError            the database cannot be used as asked
    │   ├── DatabaseUrlError        BATON_DATABASE_URL is not a URL (also a ValueError)
    │   ├── SchemaError             the database cannot be brought to head (storage.schema)
    │   └── IllegalTransition       a run or task move from a state it is not allowed from
    │                               (storage.run_states)
    ├── AgentsError             (agents.errors)
    ├── OrchestrationError      (orchestration.errors)
    └── BotError                (bot.errors)

A database that is down or unreachable raises SQLAlchemy's own errors (`storage.db.
is_unavailable` tells those apart): they are not wrapped, so callers keep their detail.
"""

from __future__ import annotations


class BatonError(Exception):
    """Base class of every error Baton defines; the message is a sentence a person can act on."""


class StorageError(BatonError):
    """Base class for errors from the storage package."""


class DatabaseUrlError(StorageError, ValueError):
    """A database URL that is not one (no `scheme://`)."""

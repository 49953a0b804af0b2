"""Baton's Alembic revisions (`versions/`), their environment and the helpers they use.

`storage.schema` runs them; README in this folder says how to add one.
"""

"""Storage: SQLModel tables and the only code that touches the database."""

from storage.db import Database, normalize_url, utcnow

__all__ = ["Database", "normalize_url", "utcnow"]

"""How Alembic compares Baton's models with a database, and writes what it finds.

Used by env.py (autogenerate) and by `differences`, which the tests run after every upgrade:
a model changed without a revision shows up there.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.migration import MigrationContext
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString


def target_metadata() -> sa.MetaData:
    """The tables `storage/models.py` declares."""
    from storage import models  # noqa: F401  (registers the tables)

    return SQLModel.metadata


def compare_type(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_type: sa.types.TypeEngine[Any],
    metadata_type: sa.types.TypeEngine[Any],
) -> bool | None:
    """Enum values too, which Alembic leaves alone: True for a difference, None for Alembic's say."""
    if isinstance(metadata_type, sa.Enum):
        if isinstance(inspected_type, sa.Enum):
            # PostgreSQL's ENUM type: its labels must be the model's member names.
            return set(inspected_type.enums) != set(metadata_type.enums)
        if isinstance(inspected_type, sa.String):
            # SQLite keeps an enum as VARCHAR with no check of its values: nothing to compare.
            return False
    return None


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Revisions say `sa.String()` and `sa.DateTime(timezone=True)`, not SQLModel's own types
    (nor the models' enums kept as VARCHAR values)."""
    if isinstance(obj, sa.types.TypeDecorator) and isinstance(obj.impl_instance, AutoString):
        obj = obj.impl_instance
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String({obj.length})" if obj.length else "sa.String()"
    if (
        type_ == "type"
        and isinstance(obj, sa.types.TypeDecorator)
        and isinstance(obj.impl_instance, sa.DateTime)
    ):
        return f"sa.DateTime(timezone={obj.impl_instance.timezone})"
    return False


def differences(connection: sa.Connection) -> list[Any]:
    """What differs between the database and `storage/models.py`; empty when they agree."""
    context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
    return list(compare_metadata(context, target_metadata()))

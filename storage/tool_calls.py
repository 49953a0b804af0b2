"""Side-effecting tool calls, by idempotency key, so none is ever performed twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.db import Database
from storage.models import ToolCallRecord


async def claim(
    db: Database, key: str, *, run_id: str, task_id: str, tool: str, args: dict[str, Any]
) -> ToolCallRecord | None:
    """Claim the right to perform the call. None means go ahead; else the earlier record.

    The claim is written before the call is made: if the process dies mid-call, the call is
    not repeated on resume (an unknown outcome is reported rather than risking a double).
    """
    try:
        async with db.session() as s:
            s.add(
                ToolCallRecord(
                    idempotency_key=key, run_id=run_id, task_id=task_id, tool=tool, args=args
                )
            )
    except IntegrityError:
        async with db.session() as s:
            q = select(ToolCallRecord).where(ToolCallRecord.idempotency_key == key)
            return (await s.exec(q)).one()
    return None


async def complete(db: Database, key: str, *, result: str) -> None:
    async with db.session() as s:
        await s.exec(
            update(ToolCallRecord)
            .where(col(ToolCallRecord.idempotency_key) == key)
            .values(result=result)
        )


async def for_run(db: Database, run_id: str) -> list[ToolCallRecord]:
    async with db.session() as s:
        q = select(ToolCallRecord).where(ToolCallRecord.run_id == run_id)
        return list((await s.exec(q)).all())

"""Threads in Slack's assistant container: who opened them, what they are looking at."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from storage.db import Database
from storage.models import AssistantThread


async def start(db: Database, thread: AssistantThread) -> bool:
    """Remember a new thread; False when it was known (Slack delivering the event again)."""
    try:
        async with db.session() as s:
            s.add(thread)
    except IntegrityError:
        return False
    return True


async def get(db: Database, channel_id: str, thread_ts: str) -> AssistantThread | None:
    async with db.session() as s:
        return await s.get(AssistantThread, (channel_id, thread_ts))


async def look_at(
    db: Database, channel_id: str, thread_ts: str, *, context_id: str, context_name: str | None
) -> bool:
    """The person moved to another channel; False for a thread Baton never saw start."""
    return await db.changed(
        update(AssistantThread)
        .where(
            col(AssistantThread.channel_id) == channel_id,
            col(AssistantThread.thread_ts) == thread_ts,
        )
        .values(context_channel_id=context_id, context_channel_name=context_name)
    )


async def take_title(db: Database, channel_id: str, thread_ts: str) -> bool:
    """True once per thread: the caller names it (after its first request)."""
    return await db.changed(
        update(AssistantThread)
        .where(
            col(AssistantThread.channel_id) == channel_id,
            col(AssistantThread.thread_ts) == thread_ts,
            col(AssistantThread.titled).is_(False),
        )
        .values(titled=True)
    )

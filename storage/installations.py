"""Workspaces Baton is installed in (OAuth mode), and the one-use states of installs under way."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col

from storage.db import Database, utcnow
from storage.models import Approval, Installation, OAuthState, Run, Schedule


async def save(db: Database, installation: Installation) -> None:
    """Keep a workspace's installation; a newer install of the same workspace replaces it."""
    async with db.session() as s:
        await s.merge(installation)


async def find(db: Database, team_id: str) -> Installation | None:
    async with db.session() as s:
        return await s.get(Installation, team_id)


async def remove(db: Database, team_id: str) -> bool:
    """Forget a workspace's installation; False when there was none."""
    return await db.changed(delete(Installation).where(col(Installation.team_id) == team_id))


async def issue_state(db: Database, *, lifetime: timedelta, now: datetime | None = None) -> str:
    """A new state for one install; it is good until `lifetime` has passed."""
    state = secrets.token_urlsafe(24)
    async with db.session() as s:
        s.add(OAuthState(state=state, expires_at=(now or utcnow()) + lifetime))
    return state


async def consume_state(db: Database, state: str, *, now: datetime | None = None) -> bool:
    """True once for a state that was issued and has not expired; it cannot be used again."""
    return await db.changed(
        delete(OAuthState).where(
            col(OAuthState.state) == state, col(OAuthState.expires_at) > (now or utcnow())
        )
    )


async def adopt_unowned(db: Database, team_id: str) -> int:
    """Give runs, approvals and schedules stored without a workspace to `team_id`
    (single-token mode: there is only one). How many rows changed."""
    changed = 0
    async with db.session() as s:
        for table in (Run, Approval, Schedule):
            result = await s.exec(
                update(table).where(col(table.team_id).is_(None)).values(team_id=team_id)
            )
            changed += result.rowcount
    return changed

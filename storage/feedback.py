"""👍 / 👎 on answers: one per person per run, with the agents and models that made it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storage.db import Database, utcnow
from storage.models import Feedback, ModelUsage


@dataclass(frozen=True)
class Tally:
    positive: int = 0
    negative: int = 0

    @property
    def total(self) -> int:
        return self.positive + self.negative


async def record(db: Database, run_id: str, user_id: str, *, positive: bool) -> bool:
    """Store a click; True when it changed what is stored (a new vote, or a changed mind).

    A second click on the same button changes nothing: a person's vote on a run counts once.
    """
    async with db.session() as s:
        used = (
            await s.exec(
                select(ModelUsage.agent, ModelUsage.model).where(ModelUsage.run_id == run_id)
            )
        ).all()
    agents = sorted({a for a, _ in used})
    models = sorted({m for _, m in used})
    try:
        async with db.session() as s:
            s.add(
                Feedback(
                    run_id=run_id, user_id=user_id, positive=positive, agents=agents, models=models
                )
            )
        return True
    except IntegrityError:
        pass
    return await db.changed(
        update(Feedback)
        .where(
            col(Feedback.run_id) == run_id,
            col(Feedback.user_id) == user_id,
            col(Feedback.positive).is_not(positive),
        )
        .values(positive=positive, at=utcnow())
    )


async def since(db: Database, start: datetime) -> list[Feedback]:
    async with db.session() as s:
        q = select(Feedback).where(col(Feedback.at) >= start).order_by(col(Feedback.id))
        return list((await s.exec(q)).all())


async def for_run(db: Database, run_id: str) -> list[Feedback]:
    async with db.session() as s:
        q = select(Feedback).where(Feedback.run_id == run_id).order_by(col(Feedback.id))
        return list((await s.exec(q)).all())


def tally(votes: Sequence[Feedback]) -> Tally:
    up = sum(1 for v in votes if v.positive)
    return Tally(positive=up, negative=len(votes) - up)


def by_agent(votes: Sequence[Feedback]) -> dict[str, Tally]:
    """Each agent's share of the votes on answers it helped make."""
    out: dict[str, Tally] = {}
    for v in votes:
        for agent in v.agents:
            was = out.get(agent, Tally())
            out[agent] = Tally(was.positive + v.positive, was.negative + (not v.positive))
    return out

"""The model-usage ledger: what each agent spent on which model, per run."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from storage.db import Database
from storage.models import ModelUsage


@dataclass(frozen=True)
class Total:
    """Tokens and cost of one agent on one model in one run."""

    agent: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    priced: bool

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


async def calls(db: Database, run_id: str) -> list[ModelUsage]:
    """Every model call of the run, in order."""
    async with db.session() as s:
        q = select(ModelUsage).where(ModelUsage.run_id == run_id).order_by(col(ModelUsage.id))
        return list((await s.exec(q)).all())


async def totals(db: Database, run_id: str) -> list[Total]:
    """Per agent and model, in the order each was first used."""
    found: dict[tuple[str, str], Total] = {}
    for c in await calls(db, run_id):
        key = (c.agent, c.model)
        was = found.get(key) or Total(c.agent, c.model, 0, 0, 0, 0.0, True)
        found[key] = Total(
            agent=c.agent,
            model=c.model,
            calls=was.calls + 1,
            input_tokens=was.input_tokens + c.input_tokens,
            output_tokens=was.output_tokens + c.output_tokens,
            cost_usd=was.cost_usd + c.cost_usd,
            priced=was.priced and c.priced,
        )
    return list(found.values())

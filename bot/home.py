"""The App Home tab: a person's recent runs and what waits for them."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from agents.tools.extract import plain
from bot.blocks import RUN_STATUS_TEXT, context, divider, header, section, when
from bot.text import escape, truncate
from storage.db import Database
from storage.models import Approval, ApprovalStatus, Run

RECENT = 10


async def home_view(db: Database, user_id: str) -> dict[str, Any]:
    async with db.session() as s:
        recent = (
            await s.exec(
                select(Run)
                .where(Run.user_id == user_id)
                .order_by(col(Run.created_at).desc())
                .limit(RECENT)
            )
        ).all()
        waiting = (
            await s.exec(select(Approval).where(Approval.status == ApprovalStatus.PENDING))
        ).all()
    mine = [a for a in waiting if user_id in a.approvers]
    blocks = [
        header("Baton"),
        section("Ask with `/baton <request>`, @Baton in a channel, or right here in a DM."),
    ]
    blocks.append(divider())
    if mine:
        blocks.append(section(f"*Waiting for you* ({len(mine)})"))
        blocks += [
            section(f"• Run `{a.run_id}` · {escape(truncate(a.summary, 200))}") for a in mine[:10]
        ]
    blocks.append(section("*Your recent runs*" if recent else "_No runs yet._"))
    for r in recent:
        state = RUN_STATUS_TEXT.get(r.status.value, r.status.value)
        what = f"playbook `{r.playbook}`" if r.playbook else escape(truncate(plain(r.request), 120))
        blocks.append(
            context(f"`{r.id}` · {state} · {what} · {when(r.created_at)} · ${r.cost_usd:.4f}")
        )
    return {"type": "home", "blocks": blocks[:100]}

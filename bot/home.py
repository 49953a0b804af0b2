"""The App Home tab: a person's recent runs and what waits for them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select

from agents.tools.extract import plain
from bot.blocks import RUN_STATUS_TEXT, context, divider, header, section, when
from bot.text import escape, truncate
from storage.db import Database
from storage.models import Approval, ApprovalStatus, Run, TaskRow, TaskStatus

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
        tasks = (
            await s.exec(select(TaskRow).where(col(TaskRow.run_id).in_([r.id for r in recent])))
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
        state = RUN_STATUS_TEXT.get(r.status.value, r.status.value) + _not_done(r, tasks)
        what = f"playbook `{r.playbook}`" if r.playbook else escape(truncate(plain(r.request), 120))
        blocks.append(
            context(f"`{r.id}` · {state} · {what} · {when(r.created_at)} · ${r.cost_usd:.4f}")
        )
    return {"type": "home", "blocks": blocks[:100]}


def _not_done(run: Run, tasks: Sequence[TaskRow]) -> str:
    """Steps of a finished run that did not happen, by why: a run is never just "done"."""
    counts = Counter(
        t.status for t in tasks if t.run_id == run.id and t.status != TaskStatus.SUCCEEDED
    )
    if not run.status.is_final or not counts:
        return ""
    parts = [f"{n} {status.value}" for status, n in sorted(counts.items())]
    return f" ({', '.join(parts)})"

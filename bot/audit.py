"""`/baton audit [run-id]`: a run's audit trail, for Baton admins and the run's own channel.

Answered after the ack (it reads the database and may ask Slack about user groups).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.audit_blocks import audit_report
from bot.permissions import is_one_of
from bot.text import escape
from storage import runs, tool_calls

if TYPE_CHECKING:
    from bot.parts import Baton

NOT_HERE = (
    "I can't show the audit of {what} here. Ask in the channel the run belongs to, "
    "or ask a Baton admin."
)


async def audit_reply(baton: Baton, command: dict[str, Any], run_id: str | None) -> dict[str, Any]:
    channel = str(command.get("channel_id") or "")
    user = str(command.get("user_id") or "")
    team = str(command.get("team_id") or "") or None
    if run_id is None:
        run = await runs.latest_run(baton.db, channel_id=channel)
        if run is None:
            return {"text": "There is no run in this channel to audit yet."}
    else:
        # With many workspaces, a run is reached by its id only from its own.
        run = baton.own(await runs.get_run(baton.db, run_id), team)
    # An unknown run and someone else's run get the same answer: it reveals nothing.
    allowed = run is not None and (
        run.channel_id == channel
        or await is_one_of(baton, user, baton.settings.baton_admins, team_id=run.team_id)
    )
    if run is None or not allowed:
        return {"text": NOT_HERE.format(what=f"run `{escape(run_id or '')}`")}
    blocks = audit_report(
        run,
        await runs.list_tasks(baton.db, run.id),
        await runs.events(baton.db, run.id),
        await tool_calls.for_run(baton.db, run.id),
    )
    return {"text": f"Audit of run {run.id}", "blocks": blocks}

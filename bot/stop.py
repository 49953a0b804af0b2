"""Stop: `/baton cancel [run-id]` and the Stop button on a run's task list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.approval_clicks import tell
from bot.blocks import RUN_STATUS_TEXT
from bot.interactions import first_action, team_of, where
from bot.permissions import CANT_SHOW, may_see, may_stop
from storage import runs
from storage.models import Run

if TYPE_CHECKING:
    from bot.parts import Baton


async def request_stop(baton: Baton, run: Run, user_id: str) -> str:
    """Stop the run if this person may; a sentence for them either way."""
    if run.status.is_final:
        state = RUN_STATUS_TEXT.get(run.status.value, run.status.value)
        return f"Run `{run.id}` has already finished ({state}), so there is nothing to stop."
    if not await may_stop(baton, run, user_id):
        return (
            f"You cannot stop run `{run.id}`: only the person who asked for it, one of its "
            "approvers, or a Baton admin can."
        )
    if not await baton.orchestrator.stop(run.id, by=user_id):
        return f"Run `{run.id}` is already being stopped (or has just finished)."
    return f"Stopped run `{run.id}`; its thread says what was done before the stop."


async def stop_command(baton: Baton, command: dict[str, Any], run_id: str | None) -> str:
    """`/baton cancel [run-id]`: the reply for the person who typed it."""
    user = str(command.get("user_id") or "")
    channel = str(command.get("channel_id") or "")
    if run_id:
        run = baton.own(await runs.get_run(baton.db, run_id), str(command.get("team_id") or ""))
        if run is None or not await may_see(baton, run, user_id=user, channel_id=channel):
            return CANT_SHOW
    else:
        run = await runs.latest_unfinished(baton.db, channel_id=channel) if channel else None
        if run is None:
            return "No run is going in this channel. `/baton cancel <run-id>` stops one by its id."
    return await request_stop(baton, run, user)


async def stop_from_button(baton: Baton, body: dict[str, Any]) -> None:
    """The Stop button: the clicker is told what happened, only them."""
    channel, user = where(body)
    run_id = str(first_action(body).get("value") or "")
    run = await runs.get_run(baton.db, run_id) if run_id else None
    reply = (
        "I don't know that run, so nothing was stopped."
        if run is None
        else await request_stop(baton, run, user)
    )
    if channel and user:
        await tell(baton, channel=channel, user=user, text=reply, team_id=team_of(body))

"""OAuth mode: Slack says Baton was uninstalled from a workspace, or its bot token revoked.

Baton forgets the installation (no token is left to use), pauses the workspace's schedules
and stops its unfinished runs; each run's trail says why it was stopped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agents.telemetry import TEAM_ID, bound
from storage import installations, run_states, runs, schedules
from storage.models import EventKind

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

# Who the trail says stopped the runs of an uninstalled workspace.
UNINSTALLED_BY = "uninstalled"


def register(baton: Baton) -> None:
    app = baton.app

    @app.event("app_uninstalled")
    async def on_uninstalled(body: dict[str, Any]) -> None:
        team = str(body.get("team_id") or "")
        if team:  # after the ack: stopping a workspace's runs is more than one write
            baton.background.spawn(forget_workspace(baton, team), name=f"uninstalled-{team}")

    @app.event("tokens_revoked")
    async def on_tokens_revoked(event: dict[str, Any], body: dict[str, Any]) -> None:
        team = str(body.get("team_id") or "")
        if team and (event.get("tokens") or {}).get("bot"):
            baton.background.spawn(forget_workspace(baton, team), name=f"revoked-{team}")


async def forget_workspace(baton: Baton, team_id: str) -> None:
    """Delete the installation, pause the schedules, stop the runs. Safe to repeat."""
    with bound(TEAM_ID, team_id):
        await _forget(baton, team_id)


async def _forget(baton: Baton, team_id: str) -> None:
    await installations.remove(baton.db, team_id)
    if baton.workspaces is not None:
        baton.workspaces.forget(team_id)
    paused = await schedules.pause_team(baton.db, team_id)
    for schedule_id in paused:
        baton.scheduler.forget(schedule_id)
    stopped = 0
    for run_id in await runs.unfinished_in_team(baton.db, team_id):
        # The trail says why the run stopped; nothing can be posted in the workspace now.
        await run_states.note(
            baton.db, run_id, EventKind.WORKSPACE_UNINSTALLED, data={"team_id": team_id}
        )
        stopped += await baton.orchestrator.stop(run_id, by=UNINSTALLED_BY)
    log.info(
        "Baton was uninstalled from %s: %d schedule(s) paused, %d run(s) stopped",
        team_id,
        len(paused),
        stopped,
    )

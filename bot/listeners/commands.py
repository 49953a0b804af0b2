"""`/baton …`: answered at once (ephemeral), or a run started in a new thread."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot import reports
from bot.blocks import section
from bot.commands import (
    HELP,
    Ask,
    Help,
    Invalid,
    ListAgents,
    ListApprovals,
    RunPlaybook,
    ScheduleCommand,
    Status,
    parse,
    unknown_playbook,
)
from bot.intake import start_run
from bot.slack_ops import slack_error
from bot.text import truncate
from storage import approvals, runs, usage

if TYPE_CHECKING:
    from bot.app import Baton

log = logging.getLogger(__name__)

CANNOT_POST = (
    "I can't post in this conversation ({error}). Invite me with `/invite @Baton`, "
    "or DM me the request."
)


def register(baton: Baton) -> None:
    @baton.app.command("/baton")
    async def on_baton(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await handle(baton, ack, respond, command)


async def handle(
    baton: Baton, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
) -> None:
    parsed = parse(str(command.get("text") or ""))
    channel = str(command.get("channel_id") or "")
    match parsed:
        case Help():
            await ack(response_type="ephemeral", text=HELP)
        case Invalid(message=message):
            await ack(response_type="ephemeral", text=message)
        case ListAgents():
            blocks = reports.agents_report(baton.catalog, baton.models.ref, baton.toolbox.servers())
            await ack(response_type="ephemeral", text="Baton's specialists", blocks=blocks)
        case Status(run_id=run_id):
            run = (
                await runs.get_run(baton.db, run_id)
                if run_id
                else await runs.latest_run(baton.db, channel_id=channel)
            )
            if run is None:
                what = f"run `{run_id}`" if run_id else "any run in this channel"
                await ack(
                    response_type="ephemeral",
                    text=f"I can't find {what}. Run ids are in each answer's footer.",
                )
                return
            tasks = await runs.list_tasks(baton.db, run.id)
            await ack(
                response_type="ephemeral",
                text=f"Run {run.id}: {run.status.value}",
                blocks=reports.status_report(run, tasks, await usage.totals(baton.db, run.id)),
            )
        case ListApprovals():
            pending = await approvals.pending_in_channel(baton.db, channel)
            await ack(
                response_type="ephemeral",
                text=f"{len(pending)} approval(s) waiting",
                blocks=reports.approvals_report(pending),
            )
        case ScheduleCommand(args=args):
            from bot.schedules_ui import handle_schedule_command

            await handle_schedule_command(baton, ack, command, args)
        case RunPlaybook(name=name, extra=extra):
            if baton.catalog.playbook(name) is None:
                await ack(response_type="ephemeral", text=unknown_playbook(name, baton.catalog))
                return
            await ack()
            await _start_in_thread(
                baton,
                respond,
                command,
                request=extra,
                playbook=name,
                shown=f"run `{name}` {extra}".strip(),
            )
        case Ask(request=request):
            await ack()
            await _start_in_thread(
                baton, respond, command, request=request, playbook=None, shown=request
            )


async def _start_in_thread(
    baton: Baton,
    respond: AsyncRespond,
    command: dict[str, Any],
    *,
    request: str,
    playbook: str | None,
    shown: str,
) -> None:
    """A slash command has no thread: post the request visibly, and answer under it."""
    user = str(command.get("user_id") or "")
    channel = str(command.get("channel_id") or "")
    text = f"<@{user}> asked: {truncate(shown, 2500)}"
    try:
        resp = await baton.client.chat_postMessage(
            channel=channel, text=text, blocks=[section(text)]
        )
    except SlackApiError as e:
        await respond(response_type="ephemeral", text=CANNOT_POST.format(error=slack_error(e)))
        return
    await start_run(
        baton,
        source="command",
        request=request,
        playbook=playbook,
        team_id=str(command.get("team_id") or "") or None,
        channel_id=channel,
        thread_ts=str(resp["ts"]),
        user_id=user or None,
    )

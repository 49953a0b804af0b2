"""`/baton …`: answered in the ack when no I/O is needed, else acked first and answered after.

A request (or a playbook) is stored with the command's trigger id before the ack, so a
replayed command starts nothing; whoever drives the run then posts its request (through the
outbox) to open the thread the run answers in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import reports
from bot.audit import audit_reply
from bot.background import ack_then_respond
from bot.command_parsing import (
    HELP,
    Ask,
    Audit,
    Cancel,
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
from bot.intake import (
    BUSY,
    IntakeFailed,
    Stored,
    accept_command,
    clean,
    say_busy,
    value_of,
)
from bot.permissions import CANT_SHOW, may_see
from bot.schedules_ui import handle_schedule_command
from bot.stop import stop_command
from bot.text import plural
from bot.work import hand_over, handed_over
from storage import approvals, feedback, runs, usage
from storage.db import utcnow
from storage.new_runs import Taken

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

Reply = dict[str, Any]


def register(baton: Baton) -> None:
    @baton.app.command("/baton")
    async def on_baton(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await handle(baton, ack, respond, command)


async def handle(
    baton: Baton, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
) -> None:
    parsed = parse(clean(str(command.get("text") or "")))
    if not command.get("channel_id") or not command.get("user_id"):
        await ack(
            response_type="ephemeral",
            text="Slack sent this command without its channel or user, so I can't act on it.",
        )
        return
    match parsed:
        case Help():
            await ack(response_type="ephemeral", text=HELP)
        case Invalid(message=message):
            await ack(response_type="ephemeral", text=message)
        case ListAgents():
            blocks = reports.agents_report(baton.catalog, baton.models.ref, baton.toolbox.servers())
            await ack(response_type="ephemeral", text="Baton's specialists", blocks=blocks)
        case Status(run_id=run_id):
            await _answer_after(baton, ack, respond, lambda: _status(baton, command, run_id))
        case ListApprovals():
            await _answer_after(baton, ack, respond, lambda: _approvals(baton, command))
        case Cancel(run_id=run_id):
            await _answer_after(
                baton,
                ack,
                respond,
                lambda: _text(stop_command(baton, command, run_id)),
            )
        case Audit(run_id=run_id):
            await _answer_after(baton, ack, respond, lambda: audit_reply(baton, command, run_id))
        case ScheduleCommand(args=args):
            await handle_schedule_command(baton, ack, respond, command, args)
        case RunPlaybook(name=name, extra=extra):
            if baton.catalog.playbook(name) is None:
                await ack(response_type="ephemeral", text=unknown_playbook(name, baton.catalog))
                return
            await _start(
                baton,
                ack,
                respond,
                command,
                request=extra,
                playbook=name,
            )
        case Ask(request=request):
            await _start(baton, ack, respond, command, request=request, playbook=None)


async def _start(
    baton: Baton,
    ack: AsyncAck,
    respond: AsyncRespond,
    command: dict[str, Any],
    *,
    request: str,
    playbook: str | None,
) -> None:
    try:
        pending = await accept_command(baton, command, request=request, playbook=playbook)
    except IntakeFailed as e:
        log.warning("a /baton request was not stored: %s", e)
        await ack(response_type="ephemeral", text=BUSY)
        return
    await ack()

    def then(outcome: Stored[Taken]) -> Coroutine[Any, Any, None] | None:
        if outcome.error is not None:
            value_of(outcome, "a /baton request")
            return say_busy(respond)
        taken = outcome.value
        if taken is None or taken.run_id is None:
            return None  # a replay of a command stored before
        if handed_over(baton, woken=taken.woken):
            return None
        return hand_over(baton, taken.run_id, woken=taken.woken)

    baton.background.after(pending, then, name="command-run")


async def _answer_after(
    baton: Baton,
    ack: AsyncAck,
    respond: AsyncRespond,
    reply: Callable[[], Awaitable[Reply]],
) -> None:
    """Ack at once; the answer follows through the command's response URL."""

    async def ephemeral() -> Reply:
        return {"response_type": "ephemeral", **await reply()}

    await ack_then_respond(
        baton.background,
        ack,
        respond,
        ephemeral(),
        sorry="Something went wrong inside Baton while answering this; try again in a minute.",
        failure="could not answer a /baton command",
        name="command-reply",
    )


async def _text(sentence: Awaitable[str]) -> Reply:
    return {"text": await sentence}


async def _status(baton: Baton, command: dict[str, Any], run_id: str | None) -> Reply:
    channel = str(command.get("channel_id") or "")
    run = (
        baton.own(await runs.get_run(baton.db, run_id), str(command.get("team_id") or ""))
        if run_id
        else await runs.latest_run(baton.db, channel_id=channel)
    )
    if run is None and not run_id:
        return {
            "text": "I can't find any run in this channel. Run ids are in each answer's footer."
        }
    if run is None or not await may_see(
        baton, run, user_id=str(command.get("user_id") or ""), channel_id=channel
    ):
        # The same words whether the run exists or not: nothing is revealed about it.
        return {"text": CANT_SHOW}
    tasks = await runs.list_tasks(baton.db, run.id)
    votes = feedback.tally(await feedback.for_run(baton.db, run.id))
    week = feedback.tally(await feedback.since(baton.db, utcnow() - timedelta(days=7)))
    return {
        "text": f"Run {run.id}: {run.status.value}",
        "blocks": reports.status_report(
            run, tasks, await usage.totals(baton.db, run.id), votes=votes, week=week
        ),
    }


async def _approvals(baton: Baton, command: dict[str, Any]) -> Reply:
    pending = await approvals.pending_in_channel(baton.db, str(command.get("channel_id") or ""))
    return {
        "text": f"{plural(len(pending), 'approval')} waiting",
        "blocks": reports.approvals_report(pending),
    }

"""Scheduled runs in Slack: post a run's digest, answer the digest's buttons.

A scheduled run has no thread of its own while it works. When it finishes, its digest is
compared with the previous run's and the schedule's alert mode decides whether the channel
gets a digest message (details in its thread), a daily "all quiet" line, or nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot import digest_blocks as ui
from bot.blocks import answer_blocks
from bot.delivery import Piece, PieceThread
from bot.intake import IntakeFailed, accept_message, begin
from bot.interactions import team_of
from bot.slack_ops import slack_error
from bot.text import MESSAGE_LIMIT, mrkdwn, split_message
from orchestration import findings
from orchestration.findings import Digest, Verdict
from orchestration.run_events import ApprovalRequested, RunEvent, RunFinished
from storage import outbox, runs, schedules
from storage.models import Delivery, DeliveryPurpose, Run, RunSource

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

SNOOZES = {ui.SNOOZE_HOUR: timedelta(hours=1), ui.SNOOZE_DAY: timedelta(days=1)}


class DigestSink:
    """The EventSink of a scheduled run: approvals go to the channel, the digest at the end.

    Made for a drive of the run, so the run's lease is held while it delivers."""

    def __init__(self, baton: Baton, run: Run) -> None:
        self.baton = baton
        self.run = run

    async def publish(self, event: RunEvent) -> None:
        try:
            match event:
                case ApprovalRequested(run_id=run_id):
                    await self.baton.deliverer.deliver_run(run_id, lease_held=True)
                case RunFinished(run_id=run_id):
                    await post_digest(self.baton, run_id)
                    await self.baton.deliverer.deliver_run(run_id, lease_held=True)
                case _:
                    pass
        except Exception:
            log.exception("digest for run %s: could not show %s", self.run.id, type(event).__name__)


async def post_digest(baton: Baton, run_id: str) -> Verdict | None:
    """Compare and decide, then queue the digest (or the quiet line) in the outbox — in the
    transaction that settles the fire, so it is posted once, whoever finishes the run."""
    run = await runs.get_run(baton.db, run_id)
    if run is None:
        return None
    digest = await findings.build(baton.db, run)
    if digest is None or digest.fire.id is None:
        return None
    now = baton.db.clock()
    fires = await schedules.recent_fires(baton.db, digest.schedule.id, limit=200)
    choice = findings.verdict(
        digest, now=now, posted_today=findings.posted_on_day(fires, digest.schedule, now)
    )
    message = None
    if choice == Verdict.POST:
        pieces = await _digest_pieces(baton, digest)
        message = _in_channel(run.id, digest, DeliveryPurpose.DIGEST, pieces)
    elif choice == Verdict.QUIET:
        quiet = Piece(text=ui.quiet_text(digest.schedule, digest), thread=PieceThread.NONE)
        message = _in_channel(run.id, digest, DeliveryPurpose.QUIET, [quiet])
    if not await schedules.settle_fire(
        baton.db, digest.fire.id, checks=digest.snapshot(), deliver=message
    ):
        return None  # already settled (the run's end was shown before)
    return choice


def _in_channel(
    run_id: str, digest: Digest, purpose: DeliveryPurpose, pieces: list[Piece]
) -> Delivery:
    """The outbox row that posts `pieces` in the schedule's channel, once for this fire."""
    return outbox.new(
        run_id,
        purpose,
        ref=str(digest.fire.id),
        data={
            "channel": digest.schedule.channel_id,
            "fire_id": digest.fire.id,
            "messages": [p.to_json() for p in pieces],
        },
    )


async def _digest_pieces(baton: Baton, digest: Digest) -> list[Piece]:
    """The digest in the channel, then the answer and every task's output in its thread."""
    parts = [mrkdwn(digest.run.answer) if digest.run.answer else (digest.run.error or "")]
    for task in await runs.list_tasks(baton.db, digest.run.id):
        body = (task.output or task.error or "").strip() or "_(no output)_"
        parts.append(f"*{task.agent}* — `{task.task_id}` ({task.status.value})\n{body}")
    details = "\n\n".join(p for p in parts if p.strip())
    pieces = [
        Piece(text=ui.digest_text(digest), blocks=ui.digest_blocks(digest), thread=PieceThread.NONE)
    ]
    pieces += [
        Piece(text=p, blocks=answer_blocks(p), thread=PieceThread.FIRST)
        for p in split_message(details, MESSAGE_LIMIT)
    ]
    return pieces


# The digest's buttons


async def on_button(baton: Baton, action_id: str, body: dict[str, Any]) -> str | None:
    """Handle Acknowledge / Snooze / Investigate. Returns a sentence for the clicker, if any."""
    action = (body.get("actions") or [{}])[0]
    value = str(action.get("value") or "")
    user = str((body.get("user") or {}).get("id") or "")
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or "")
    team = team_of(body)
    fire = await schedules.get_fire(baton.db, int(value)) if value.isdigit() else None
    if fire is None or fire.id is None:
        return "I don't know that digest (its button value is not one of mine), so nothing was changed."
    ts = str(message.get("ts") or fire.digest_ts or "")
    blocks: list[dict[str, Any]] = list(message.get("blocks") or [])
    if action_id == ui.ACKNOWLEDGE:
        marked = await schedules.acknowledge(baton.db, fire.id, user)
        if marked is None or marked.acknowledged_at is None:
            return "I couldn't find that digest any more."
        if marked.acknowledged_by != user:
            return f"<@{marked.acknowledged_by}> already acknowledged this digest."
        note = ui.acknowledged_note(user, marked.acknowledged_at)
        await _mark(baton, channel, ts, blocks, note, done=[ui.ACKNOWLEDGE], team_id=team)
        return None
    if action_id in SNOOZES:
        until = baton.db.clock() + SNOOZES[action_id]
        schedule = await schedules.change(
            baton.db, fire.schedule_id, action="snoozed", by=user or None, snoozed_until=until
        )
        if schedule is None:
            return "That schedule was deleted, so there is nothing to snooze."
        note = ui.snoozed_note(user, until)
        await _mark(baton, channel, ts, blocks, note, done=list(SNOOZES), team_id=team)
        return None
    if action_id == ui.INVESTIGATE:
        text = str(message.get("text") or "")
        try:
            pending = await accept_message(
                baton,
                source=RunSource.INVESTIGATE,
                request=f"Investigate what this scheduled check found and suggest next steps:\n{text}",
                context=f"The digest that asked for this:\n{text}",
                team_id=team,
                channel_id=channel,
                thread_ts=ts,
                user_id=user,
                event_id=f"investigate:{fire.id}",
            )
        except IntakeFailed:
            return "I couldn't start the investigation (my database is not answering); try again in a minute."
        outcome = await pending
        if outcome.error is not None:
            return "I couldn't start the investigation (my database is not answering); try again in a minute."
        if outcome.value is None:
            return "An investigation of this digest has already started: see its thread."
        await _mark(
            baton,
            channel,
            ts,
            blocks,
            ui.investigating_note(user),
            done=[ui.INVESTIGATE],
            team_id=team,
        )
        begin(baton, pending, team_id=team)
        return None
    return None


async def _mark(
    baton: Baton,
    channel: str,
    ts: str,
    blocks: list[dict[str, Any]],
    note: str,
    *,
    done: list[str],
    team_id: str | None = None,
) -> None:
    try:
        await baton.client_for(team_id).chat_update(
            channel=channel,
            ts=ts,
            text=note,
            blocks=ui.marked(blocks, note, done=done),
        )
    except SlackApiError as e:
        log.warning("could not update digest %s: %s", ts, slack_error(e))

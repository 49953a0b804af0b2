"""Delivering the outbox to Slack: each message once, in order, whatever Slack or Baton does.

A row (`storage.outbox`) is turned into pieces (the messages to post, or the one to edit)
at its first attempt, and the pieces are kept: a retry — in this process, after a restart,
in another replica — posts exactly the pieces not posted yet. Rows are delivered by whoever
holds the run's lease (its driver, or the deliverer taking the lease for a run nobody
drives), so one process at a time posts a run's messages, in order. Every posted message carries
its row and piece in Slack's message metadata, so an attempt cut off mid-call (a timeout, a
crash) is first looked up in the thread before it is posted again.

Failures that may pass (429 beyond the client's own retries, 5xx, an HTML page instead of
JSON, timeouts, dropped connections) are retried with backoff; Slack's refusals that will not
change (`channel_not_found`, `not_in_channel`, …) end the row as failed, in the run's trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, assert_never

import aiohttp
from slack_sdk.errors import SlackApiError

from bot import approval_blocks
from bot import blocks as ui
from bot.approval_dms import request_not_posted, send_to_absent_approvers
from bot.approval_edits import fields
from bot.errors import BotError
from bot.intake import request_not_postable
from bot.slack_ops import slack_error
from bot.text import MESSAGE_LIMIT, mrkdwn, split_message
from bot.work import keep_lease
from orchestration.costs import RunNotes, notes
from orchestration.driving import Beat, Tokens, let_go
from storage import approvals, outbox, runs, schedules
from storage.db import is_unavailable
from storage.models import (
    Approval,
    ApprovalStatus,
    Delivery,
    DeliveryPurpose,
    DeliveryState,
    Run,
    RunSource,
    RunStatus,
    TaskRow,
)

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.parts import Baton

log = logging.getLogger(__name__)

METADATA_TYPE = "baton_delivery"
SMALLEST_PIECE = 500

# Slack's answers that will be the same however often the call is repeated.
TERMINAL = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_installed",  # Baton's own: it holds no token for the run's workspace
        "no_permission",
        "missing_scope",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "ekm_access_denied",
        "team_access_not_granted",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "thread_not_found",
        "msg_too_long",
        "invalid_arguments",
        "invalid_blocks",
        "invalid_blocks_format",
        "no_text",
        "user_not_in_channel",
    }
)


@dataclass(frozen=True)
class DeliveryOptions:
    base_delay: float = 2.0  # seconds before the second attempt
    max_delay: float = 300.0
    # Attempts made right away, in the process that wrote the row; later ones by the sweep.
    attempts_now: int = 5


class PieceThread(StrEnum):
    """Where a piece is posted."""

    RUN = "run"  # in the run's thread
    FIRST = "first"  # in the thread of its row's first piece (a digest's details)
    NONE = "none"  # in the channel itself


@dataclass(frozen=True)
class Piece:
    """One message to post (or to edit in place)."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    thread: PieceThread = PieceThread.RUN
    update_ts: str | None = None  # edit this message instead of posting

    def to_json(self) -> dict[str, Any]:
        """As kept in the outbox row."""
        return {
            "text": self.text,
            "blocks": self.blocks,
            "thread": self.thread,
            "update_ts": self.update_ts,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Piece:
        """Back from the outbox row."""
        return Piece(
            text=str(data.get("text") or ""),
            blocks=data.get("blocks"),
            thread=PieceThread(data.get("thread") or PieceThread.RUN),
            update_ts=data.get("update_ts"),
        )


class DeliveryError(BotError):
    """One outbox attempt did not reach Slack."""


class Retry(DeliveryError):
    """This attempt failed in a way that may pass."""

    def __init__(self, error: str, *, in_doubt: bool, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error, self.in_doubt, self.retry_after = error, in_doubt, retry_after


class GiveUp(DeliveryError):
    """Slack refused for good."""


# What to do once a row is in Slack, and when it never will be.
Hook = Callable[["Baton", Delivery, list[str]], Awaitable[None]]


class Deliverer:
    """Posts a run's outbox rows in order; the sweep finishes what a process left."""

    def __init__(self, baton: Baton, options: DeliveryOptions) -> None:
        self.baton = baton
        self.options = options
        self._locks: dict[str, asyncio.Lock] = {}
        self._tokens = Tokens()

    async def deliver_run(self, run_id: str, *, lease_held: bool = False) -> None:
        """Deliver every due row of the run, in order. Never raises (but for cancellation).

        `lease_held`: the caller drives the run (it is the run's own progress sink). Anyone
        else takes the lease first, and leaves the rows to the run's driver if it is taken.
        """
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        try:
            async with lock:
                if lease_held:
                    await self._deliver_run(run_id)
                else:
                    await self._deliver_under_own_lease(run_id)
        except Exception as e:
            if is_unavailable(e):
                log.warning("delivering run %s: the database is unavailable (%s)", run_id, e)
            else:
                log.exception("delivering run %s failed; the sweep will try again", run_id)
        finally:
            if not lock.locked():
                self._locks.pop(run_id, None)

    async def deliver_edits(self, run_id: str) -> None:
        """Edit approval messages now, even while the run is driven elsewhere: an edit is the
        same however often it is made, and a decision should show without waiting for a turn."""
        for row in await outbox.for_run(self.baton.db, run_id):
            if (
                row.purpose != DeliveryPurpose.APPROVAL_DECIDED
                or row.state != DeliveryState.PENDING
            ):
                continue
            try:
                posted = await self._attempt(row)
            except (Retry, GiveUp) as e:
                log.info("run %s: approval edit left to the run's driver (%s)", run_id, e)
                continue
            await outbox.delivered(self.baton.db, row, posted)
            log.debug("run %s: approval %s edited (%d)", run_id, row.ref, len(posted))

    async def deliver_copies(self, run_id: str, refs: list[str]) -> None:
        """Post direct-message copies of an approval request now, beside the run's thread:
        they are not in its order, and are queued only by the process that posts them
        (the sweep posts one whose process stopped first)."""
        for row in await outbox.for_run(self.baton.db, run_id):
            if row.ref not in refs or row.state != DeliveryState.PENDING:
                continue
            try:
                posted = await self._attempt(row)
            except (Retry, GiveUp) as e:
                log.info("run %s: approval copy left to the sweep (%s)", run_id, e)
                continue
            await _on_delivered(self.baton, row, posted)
            await outbox.delivered(self.baton.db, row, posted)

    async def _deliver_under_own_lease(self, run_id: str) -> None:
        db, limits = self.baton.db, self.baton.orchestrator.limits
        lease = await runs.acquire_lease(
            db, run_id, self._tokens.next(), seconds=limits.lease_seconds
        )
        if lease is None:
            return  # its driver delivers (and another deliverer would have the lease too)
        beat = Beat(functools.partial(keep_lease, lease, self.baton, limits.heartbeat_seconds))
        try:
            await self._deliver_run(run_id)
        finally:
            await beat.stop()
            nudged = (await let_go(db, lease)).nudged
        if nudged:
            # Someone wanted the run driven while this held its lease: drive it now — in its
            # own task, since its driver delivers too (and would wait for this one's lock).
            self.baton.later(run_id, name=f"nudged-{run_id}")

    async def sweep(self) -> datetime | None:
        """Deliver what is due for every run; returns when the next row falls due."""
        for run_id in await outbox.runs_with_due(self.baton.db):
            await self.deliver_run(run_id)
        return await outbox.next_due_at(self.baton.db)

    async def _deliver_run(self, run_id: str) -> None:
        db = self.baton.db
        tries = 0
        while True:
            row = await outbox.next_due(db, run_id)
            if row is None:
                return
            try:
                posted = await self._attempt(row)
            except Retry as e:
                tries += 1
                wait = self._delay(row.attempts + 1, e.retry_after)
                log.info(
                    "run %s: %s not delivered (%s); again in %.1f s",
                    run_id,
                    row.purpose.value,
                    e.error,
                    wait,
                )
                at = self.baton.db.clock() + timedelta(seconds=wait)
                await outbox.retry_later(db, row.id or 0, at=at, error=e.error, in_doubt=e.in_doubt)
                if tries >= self.options.attempts_now:
                    return  # the sweep carries on at `at`
                await self.baton.db.clock.sleep(wait)
                continue
            except GiveUp as e:
                log.warning("run %s: %s cannot be delivered: %s", run_id, row.purpose.value, e)
                await outbox.give_up(db, row, error=str(e))
                await _on_failed(self.baton, row, str(e))
                continue
            await _on_delivered(self.baton, row, posted)
            await outbox.delivered(db, row, posted, event=_DELIVERED_EVENTS.get(row.purpose))

    def _delay(self, attempts: int, retry_after: float | None) -> float:
        backoff = self.options.base_delay * float(2 ** max(attempts - 1, 0))
        return max(min(self.options.max_delay, backoff), retry_after or 0.0)

    async def _attempt(self, row: Delivery) -> list[str]:
        """Post the row's remaining pieces; the timestamps of all its pieces."""
        assert row.id is not None
        run = await runs.get_run(self.baton.db, row.run_id)
        if run is None:
            return []
        channel = _channel(run, row)
        pieces = (
            [Piece.from_json(p) for p in row.pieces]
            if row.pieces is not None
            else await _render(self.baton, row, run)
        )
        if not channel or not pieces:
            return []
        posted = list(row.posted)
        if row.in_doubt and len(posted) < len(pieces) and pieces[len(posted)].update_ts is None:
            found = await self._find(row, channel, run, posted)
            if found is not None:
                posted.append(found)
                await outbox.piece_posted(self.baton.db, row.id, posted)
        await outbox.attempt_started(self.baton.db, row.id, [p.to_json() for p in pieces])
        i = len(posted)
        while i < len(pieces):
            piece = pieces[i]
            try:
                ts = await self._send(row, channel, run, piece, i, posted)
            except SlackApiError as e:
                smaller = _smaller(piece, slack_error(e))
                if smaller is None:
                    raise _classify(e) from e
                pieces[i : i + 1] = smaller
                await outbox.replace_pieces(self.baton.db, row.id, [p.to_json() for p in pieces])
                continue
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise Retry(f"{type(e).__name__}: {e}".strip(": "), in_doubt=True) from e
            posted.append(ts)
            i += 1
            if i < len(pieces):  # the last one is recorded with the row's delivery
                await outbox.piece_posted(self.baton.db, row.id, posted)
        return posted

    async def _send(
        self, row: Delivery, channel: str, run: Run, piece: Piece, index: int, posted: list[str]
    ) -> str:
        client = self.baton.client_for(run.team_id)
        metadata = {
            "event_type": METADATA_TYPE,
            "event_payload": {"delivery": row.id, "piece": index},
        }
        if piece.update_ts is not None:
            try:
                await self._update(client, channel, piece, metadata)
                return piece.update_ts
            except SlackApiError as e:
                # The answer's preview is gone: the answer is posted as a message of its own.
                if row.purpose != DeliveryPurpose.ANSWER or slack_error(e) not in PREVIEW_GONE:
                    raise
                log.info("run %s: answer preview gone (%s); posting it", run.id, slack_error(e))
        resp = await client.chat_postMessage(
            channel=channel,
            thread_ts=_thread(run, piece, posted),
            text=piece.text,
            blocks=piece.blocks,
            unfurl_links=False,
            metadata=metadata,
        )
        return str(resp["ts"])

    async def _update(
        self, client: AsyncWebClient, channel: str, piece: Piece, metadata: dict[str, Any]
    ) -> None:
        """Edit a message; one still streaming (its writer stopped mid-way) is stopped first."""
        assert piece.update_ts is not None
        for attempt in (1, 2):
            try:
                await client.chat_update(
                    channel=channel,
                    ts=piece.update_ts,
                    text=piece.text,
                    blocks=piece.blocks,
                    metadata=metadata,
                )
                return
            except SlackApiError as e:
                if slack_error(e) != "streaming_state_conflict" or attempt == 2:
                    raise
                with contextlib.suppress(SlackApiError):
                    await client.chat_stopStream(channel=channel, ts=piece.update_ts)

    async def _find(self, row: Delivery, channel: str, run: Run, posted: list[str]) -> str | None:
        """An earlier attempt may have reached Slack: look for its message by metadata."""
        assert row.pieces is not None
        piece = Piece.from_json(row.pieces[len(posted)])
        thread = _thread(run, piece, posted)
        try:
            if thread:
                resp = await self.baton.client_for(run.team_id).conversations_replies(
                    channel=channel, ts=thread, include_all_metadata=True, limit=200
                )
            else:
                resp = await self.baton.client_for(run.team_id).conversations_history(
                    channel=channel,
                    oldest=f"{row.created_at.timestamp() - 1:.6f}",
                    include_all_metadata=True,
                    limit=200,
                )
        except (SlackApiError, TimeoutError, aiohttp.ClientError, OSError) as e:
            log.info("run %s: could not look for an earlier attempt (%s)", run.id, e)
            return None
        for m in resp.get("messages") or []:
            meta = m.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if (
                meta.get("event_type") == METADATA_TYPE
                and payload.get("delivery") == row.id
                and payload.get("piece") == len(posted)
            ):
                return str(m["ts"])
        return None


def _channel(run: Run, row: Delivery) -> str | None:
    data = row.data or {}
    return str(data.get("channel") or run.channel_id or "") or None


def _thread(run: Run, piece: Piece, posted: list[str]) -> str | None:
    match piece.thread:
        case PieceThread.RUN:
            return run.thread_ts
        case PieceThread.FIRST:
            return posted[0] if posted else None
        case PieceThread.NONE:
            return None
        case _:
            assert_never(piece.thread)


def _classify(e: SlackApiError) -> Exception:
    code = slack_error(e)
    if code in TERMINAL:
        return GiveUp(code)
    retry_after = None
    if e.response is not None and e.response.status_code == 429:
        try:
            retry_after = float(e.response.headers.get("Retry-After", "1"))
        except (TypeError, ValueError):
            retry_after = 1.0
    # 5xx, `ratelimited` after the client's own retries, an HTML page (no error code): Slack
    # answered, so nothing was posted — no need to look for it before the next attempt.
    return Retry(code, in_doubt=False, retry_after=retry_after)


def _smaller(piece: Piece, code: str) -> list[Piece] | None:
    """The piece again in a form Slack may take, or None when there is none."""
    if code == "msg_too_long" and len(piece.text) > SMALLEST_PIECE:
        parts = split_message(piece.text, max(len(piece.text) // 2, SMALLEST_PIECE))
        # The footer and the feedback buttons stay under the last piece.
        tail = list(piece.blocks[1:]) if piece.blocks else []
        out = [Piece(text=p, blocks=ui.answer_blocks(p), thread=piece.thread) for p in parts]
        # A piece that edits a message (the answer's preview) still edits it, with less text.
        out[0] = Piece(
            text=out[0].text, blocks=out[0].blocks, thread=piece.thread, update_ts=piece.update_ts
        )
        last = out[-1]
        out[-1] = Piece(
            text=last.text,
            blocks=[*ui.answer_blocks(last.text), *tail],
            thread=last.thread,
        )
        return out
    if code in ("invalid_blocks", "invalid_blocks_format") and piece.blocks:
        return [Piece(text=piece.text, blocks=None, thread=piece.thread, update_ts=piece.update_ts)]
    return None


# An answer's preview message that cannot become the answer: the answer is posted instead.
PREVIEW_GONE = (
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "streaming_state_conflict",
)


# Rendering: what each purpose shows, fixed at the first attempt


async def _render(baton: Baton, row: Delivery, run: Run) -> list[Piece]:
    data = row.data or {}
    match row.purpose:
        case DeliveryPurpose.ANSWER:
            return answer_pieces(
                run,
                contributors=tuple(data.get("contributors") or ()),
                notes=await notes(baton.db, run.id),
            )
        case DeliveryPurpose.APPROVAL:
            return await _approval_pieces(baton, row, run)
        case DeliveryPurpose.APPROVAL_DECIDED:
            return await _decided_pieces(baton, row, run)
        case DeliveryPurpose.NOTICE:
            return [Piece(text=str(data.get("text") or ""))]
        case DeliveryPurpose.REQUEST:
            text = str(data.get("text") or "")
            return [Piece(text=text, blocks=[ui.section(text)], thread=PieceThread.NONE)]
        case DeliveryPurpose.DIGEST | DeliveryPurpose.QUIET:
            return [Piece.from_json(p) for p in data.get("messages") or []]
    return []


def answer_pieces(
    run: Run, *, contributors: tuple[str, ...], notes: RunNotes | None = None
) -> list[Piece]:
    """The answer in pieces under Slack's limits; the footer (run id, models, cost) on the last."""
    if run.source == RunSource.SCHEDULE:
        return []  # a scheduled run's answer is in its digest
    footer = ui.footer(
        run_id=run.id,
        status=run.status.value,
        tokens=run.input_tokens + run.output_tokens,
        cost_usd=run.cost_usd,
        contributors=contributors,
        notes=notes,
    )
    answer = mrkdwn(run.answer) if run.answer else "(empty answer)"
    if run.status == RunStatus.FAILED:
        answer = f":warning: {answer}"
    parts = split_message(answer, MESSAGE_LIMIT)
    return [
        Piece(
            text=p,
            blocks=ui.answer_blocks(p, footer_block=footer, feedback_run=run.id)
            if i == len(parts) - 1
            else ui.answer_blocks(p),
            # The message the answer streamed into becomes its first piece.
            update_ts=run.answer_preview_ts if i == 0 else None,
        )
        for i, p in enumerate(parts)
    ]


def approval_of(ref: str) -> str:
    """The approval an outbox row is about (`ap_…`, or `ap_…:<what>` for a copy or a refresh)."""
    return ref.split(":", 1)[0]


async def _approval_pieces(baton: Baton, row: Delivery, run: Run) -> list[Piece]:
    approval = await approvals.get(baton.db, approval_of(row.ref))
    if approval is None:
        return []
    task = await runs.get_task(baton.db, run.id, approval.task_id)
    copy = (row.data or {}).get("channel") is not None
    return [
        await _request_piece(
            baton,
            approval,
            run,
            task,
            webhooks=baton.catalog.webhooks,
            thread=PieceThread.NONE if copy else PieceThread.RUN,
        )
    ]


async def _request_piece(
    baton: Baton,
    approval: Approval,
    run: Run,
    task: TaskRow | None,
    *,
    webhooks: Mapping[str, str] | None = None,
    thread: PieceThread = PieceThread.RUN,
    update_ts: str | None = None,
) -> Piece:
    """An open approval's request message, with who has approved so far."""
    kind = approval_blocks.KIND_TITLE[approval.kind]
    return Piece(
        text=f"Approval needed: {kind} (run {run.id})",
        blocks=approval_blocks.request_blocks(
            approval,
            run,
            task,
            webhooks=webhooks,
            votes=await approvals.votes(baton.db, approval.id),
            editable=editable(baton, approval),
        ),
        thread=thread,
        update_ts=update_ts,
    )


def editable(baton: Baton, approval: Approval) -> bool:
    """Whether "Edit & approve" is offered for Baton's own tools, whose arguments have a schema."""
    return bool(fields(baton, approval))


async def _decided_pieces(baton: Baton, row: Delivery, run: Run) -> list[Piece]:
    """The request's message as it stands now: decided (no buttons), or still open with who
    has approved so far and whether it was escalated."""
    approval = await approvals.get(baton.db, approval_of(row.ref))
    data = row.data or {}
    update_ts = str(data.get("ts") or "") or (approval.message_ts if approval else None)
    if approval is None or not update_ts:
        return []  # its request never reached Slack: there are no buttons to take away
    task = await runs.get_task(baton.db, run.id, approval.task_id)
    if approval.status == ApprovalStatus.PENDING:
        return [await _request_piece(baton, approval, run, task, update_ts=update_ts)]
    return [
        Piece(
            text=approval_blocks.decided_text(approval),
            blocks=approval_blocks.decided_blocks(approval, run, task),
            update_ts=update_ts,
        )
    ]


_DELIVERED_EVENTS = {
    DeliveryPurpose.ANSWER: "answer_delivered",
    DeliveryPurpose.APPROVAL: "approval_posted",
    DeliveryPurpose.DIGEST: "digest_posted",
}


async def _on_delivered(baton: Baton, row: Delivery, posted: list[str]) -> None:
    data = row.data or {}
    match row.purpose:
        case DeliveryPurpose.APPROVAL if posted and data.get("channel"):
            await approvals.add_copy(
                baton.db,
                approval_of(row.ref),
                channel_id=str(data["channel"]),
                message_ts=posted[0],
            )
        case DeliveryPurpose.APPROVAL if posted:
            run = await runs.get_run(baton.db, row.run_id)
            if run is not None and run.channel_id:
                await approvals.set_message(
                    baton.db, row.ref, channel_id=run.channel_id, message_ts=posted[0]
                )
            # Before the row counts as delivered: a process that stops here posts the
            # request's DM copies when the row is delivered again (each copy once).
            try:
                await send_to_absent_approvers(baton, row.ref)
            except Exception:
                log.exception("approval %s: could not send its direct-message copies", row.ref)
        case DeliveryPurpose.REQUEST if posted:
            await runs.set_thread(baton.db, row.run_id, posted[0])
        case DeliveryPurpose.DIGEST if posted and data.get("fire_id") is not None:
            await schedules.update_fire(
                baton.db, int(data["fire_id"]), posted=True, digest_ts=posted[0]
            )
        case DeliveryPurpose.QUIET if posted and data.get("fire_id") is not None:
            await schedules.update_fire(
                baton.db, int(data["fire_id"]), posted=True, quiet_line=True
            )
        case _:
            pass


async def _on_failed(baton: Baton, row: Delivery, error: str) -> None:
    """What a row Slack refused for good leaves undone is done another way, or said."""
    match row.purpose:
        case DeliveryPurpose.REQUEST:
            await request_not_postable(baton, row, error)
        case DeliveryPurpose.APPROVAL if not (row.data or {}).get("channel"):
            # The request in the run's thread: without it nobody sees the gate.
            await request_not_posted(baton, approval_of(row.ref), error)
        case _:
            pass

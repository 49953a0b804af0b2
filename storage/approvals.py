"""Approval gates: one row per decision a person must make.

A decision is recorded with one conditional UPDATE (`… WHERE status = 'pending'`), so of
two clicks, two replicas or a replayed request, exactly one wins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from storage import outbox, run_states
from storage.db import Database
from storage.models import (
    Approval,
    ApprovalStatus,
    ApprovalVote,
    Delivery,
    DeliveryPurpose,
    Event,
    EventKind,
    Run,
    RunStatus,
    TaskRow,
    TaskStatus,
)


def new_approval_id() -> str:
    return "ap_" + secrets.token_urlsafe(12)


def refreshes(approval: Approval, tag: str = "") -> list[Delivery]:
    """Outbox rows that bring the request's message, and its direct-message copies, up to
    date (`tag` tells apart refreshes of one approval: a vote, an escalation)."""
    main = approval.id if not tag else f"{approval.id}:{tag}"
    rows = [outbox.new(approval.run_id, DeliveryPurpose.APPROVAL_DECIDED, ref=main)]
    for channel, ts in approval.copies or []:
        rows.append(
            outbox.new(
                approval.run_id,
                DeliveryPurpose.APPROVAL_DECIDED,
                ref=f"{approval.id}:{tag or 'decided'}:{ts}",
                data={"channel": channel, "ts": ts},
            )
        )
    return rows


def _event(approval: Approval, kind: EventKind, **data: Any) -> Event:
    """The audit event of something that happened to an approval, on its task."""
    return Event(
        run_id=approval.run_id,
        task_id=approval.task_id,
        kind=kind,
        data={"approval_id": approval.id, **data},
    )


def _notice(approval: Approval, tag: str, text: str) -> Delivery:
    """A notice in the run's thread about an approval, sent once (`tag` names the notice)."""
    return outbox.new(
        approval.run_id, DeliveryPurpose.NOTICE, ref=f"{tag}:{approval.id}", data={"text": text}
    )


async def _set_task(s: AsyncSession, approval: Approval, fields: dict[str, Any]) -> None:
    """Update the gated task's row, in the caller's transaction (nothing when no fields)."""
    if fields:
        await s.exec(
            update(TaskRow)
            .where(
                col(TaskRow.run_id) == approval.run_id,
                col(TaskRow.task_id) == approval.task_id,
            )
            .values(**fields)
        )


async def create(db: Database, approval: Approval, *, task_fields: dict[str, Any]) -> Approval:
    """Store the approval, move its task to waiting (`task_fields`: what it keeps while it
    waits), log the request and queue its message (with the buttons) — atomically, so a gate
    never waits without a way to decide it."""
    async with db.session() as s:
        s.add(approval)
        s.add(outbox.new(approval.run_id, DeliveryPurpose.APPROVAL, ref=approval.id))
        await run_states.move_task_in(
            await s.connection(),
            approval.run_id,
            approval.task_id,
            EventKind.APPROVAL_REQUESTED,
            TaskStatus.WAITING,
            fields=task_fields,
            data={
                "approval_id": approval.id,
                "kind": approval.kind,
                "tool": approval.tool_name,
                "args": approval.tool_args,
                "approvers": approval.approvers,
                "requested_by": approval.requested_by,
                "self_approval": approval.self_approval,
                "quorum": approval.quorum,
                "escalate_at": approval.escalate_at.isoformat() if approval.escalate_at else None,
                "escalate_to": approval.escalate_to,
                "expires_at": approval.expires_at.isoformat(),
            },
        )
    return approval


async def get(db: Database, approval_id: str) -> Approval | None:
    async with db.session() as s:
        return await s.get(Approval, approval_id)


async def for_run(db: Database, run_id: str) -> list[Approval]:
    q = select(Approval).where(Approval.run_id == run_id).order_by(col(Approval.requested_at))
    return await db.read_all(q)


async def pending_in_channel(db: Database, channel_id: str) -> list[Approval]:
    async with db.session() as s:
        q = (
            select(Approval)
            .where(Approval.channel_id == channel_id, Approval.status == ApprovalStatus.PENDING)
            .order_by(col(Approval.requested_at))
        )
        return list((await s.exec(q)).all())


async def set_message(db: Database, approval_id: str, *, channel_id: str, message_ts: str) -> None:
    async with db.session() as s:
        await s.exec(
            update(Approval)
            .where(col(Approval.id) == approval_id)
            .values(channel_id=channel_id, message_ts=message_ts)
        )


@dataclass(frozen=True)
class DecisionResult:
    """`won` is True only for the one request that recorded the decision. A vote towards a
    quorum that is not reached yet is `counted` (and not `won`); `repeated` when this person
    had already voted."""

    won: bool
    approval: Approval
    counted: bool = False
    repeated: bool = False


async def decide(
    db: Database,
    approval_id: str,
    *,
    approve: bool,
    by: str,
    reason: str | None = None,
    for_run: bool = False,
    edited_args: dict[str, Any] | None = None,
) -> DecisionResult | None:
    """Record a decision (or, under a quorum, one person's approval) if the approval is still
    pending and not expired. None if unknown.

    An approval that needs one person is decided by one conditional UPDATE. Under a quorum,
    each person's approval is a row (unique per person); whoever's approval is counted
    after the quorum is reached makes the decision, by the same conditional UPDATE.
    """
    now = db.clock()
    if approve:
        outcome = await _decide(db, approval_id, True, by, reason, for_run, edited_args, now)
        if outcome is None or outcome.won or outcome.approval.quorum <= 1:
            return outcome
        current = outcome.approval
        if current.status != ApprovalStatus.PENDING or current.expires_at <= now:
            return outcome
        try:
            async with db.session() as s:
                s.add(ApprovalVote(approval_id=approval_id, user_id=by, at=now))
                # The request's message shows who has approved so far.
                s.add_all(refreshes(current, f"vote-{by}"))
                s.add(_event(current, EventKind.APPROVAL_VOTE, by=by, quorum=current.quorum))
        except IntegrityError:  # this person's approval is counted already
            return DecisionResult(won=False, approval=current, repeated=True)
        # Counted after this vote was committed: of two last votes at once, at least the
        # later count sees both.
        if len(await votes(db, approval_id)) < current.quorum:
            return DecisionResult(won=False, approval=current, counted=True)
        return await _decide(
            db, approval_id, True, by, reason, for_run, edited_args, now, quorum_met=True
        )
    return await _decide(db, approval_id, False, by, reason, for_run, edited_args, now)


async def _decide(
    db: Database,
    approval_id: str,
    approve: bool,
    by: str,
    reason: str | None,
    for_run: bool,
    edited_args: dict[str, Any] | None,
    now: datetime,
    *,
    quorum_met: bool = False,
) -> DecisionResult | None:
    """The conditional UPDATE that decides (an approval needing several people only once
    they have approved: `quorum_met`)."""
    conditions = [
        col(Approval.id) == approval_id,
        col(Approval.status) == ApprovalStatus.PENDING,
        col(Approval.expires_at) > now,
    ]
    if approve and not quorum_met:
        conditions.append(col(Approval.quorum) <= 1)
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    async with db.session() as s:
        result = await s.exec(
            update(Approval)
            .where(*conditions)
            .values(
                status=status,
                decided_at=now,
                decided_by=by,
                reason=reason,
                for_run=approve and for_run,
                edited_args=edited_args if approve else None,
            )
        )
        won = bool(result.rowcount)
        current = await s.get(Approval, approval_id, populate_existing=True)
        if current is None:
            return None
        if won:
            s.add_all(refreshes(current))
            data: dict[str, Any] = {"by": by, "reason": reason}
            if approve and for_run:
                data["for_run"] = True
            if approve and edited_args is not None:
                data["asked_args"] = current.tool_args
                data["edited_args"] = edited_args
            s.add(_event(current, EventKind(f"approval_{status.value}"), **data))
        return DecisionResult(won=won, approval=current)


async def votes(db: Database, approval_id: str) -> list[str]:
    """Who has approved so far, in order."""
    async with db.session() as s:
        q = (
            select(ApprovalVote.user_id)
            .where(ApprovalVote.approval_id == approval_id)
            .order_by(col(ApprovalVote.id))
        )
        return list((await s.exec(q)).all())


async def grant_for_run(
    db: Database, approval: Approval, *, grant: Approval, task_fields: dict[str, Any]
) -> Approval:
    """A call identical to one approved "for this run": stored as approved by that decision,
    with its audit event, and nobody is asked."""
    approval.status = ApprovalStatus.APPROVED
    approval.decided_at = db.clock()
    approval.decided_by = grant.decided_by
    approval.reason = f"approved for this run ({grant.id})"
    async with db.session() as s:
        s.add(approval)
        await _set_task(s, approval, task_fields)
        s.add(
            _event(
                approval,
                EventKind.APPROVAL_GRANTED_FOR_RUN,
                grant=grant.id,
                by=grant.decided_by,
                tool=approval.tool_name,
                args=approval.tool_args,
            )
        )
    return approval


async def add_copy(db: Database, approval_id: str, *, channel_id: str, message_ts: str) -> None:
    """Remember a direct-message copy of the request, so its buttons count and it is updated."""
    async with db.session() as s:
        current = await s.get(Approval, approval_id)
        if current is None:
            return
        copies = [list(c) for c in current.copies or []]
        if [channel_id, message_ts] not in copies:
            copies.append([channel_id, message_ts])
            await s.exec(
                update(Approval).where(col(Approval.id) == approval_id).values(copies=copies)
            )


async def escalate_due(db: Database) -> list[Approval]:
    """Pending approvals past their escalation time: their second group may now decide too.
    Returns those it escalated (each once, whichever process gets there first)."""
    now = db.clock()
    changed: list[Approval] = []
    async with db.session() as s:
        due = (
            await s.exec(
                select(Approval).where(
                    Approval.status == ApprovalStatus.PENDING,
                    col(Approval.escalate_at).is_not(None),
                    col(Approval.escalate_at) <= now,
                    col(Approval.escalated_at).is_(None),
                )
            )
        ).all()
        for a in due:
            approvers = list(dict.fromkeys([*a.approvers, *a.escalate_to]))
            result = await s.exec(
                update(Approval)
                .where(
                    col(Approval.id) == a.id,
                    col(Approval.status) == ApprovalStatus.PENDING,
                    col(Approval.escalated_at).is_(None),
                )
                .values(escalated_at=now, approvers=approvers)
            )
            if not result.rowcount:
                continue
            s.add(_event(a, EventKind.APPROVAL_ESCALATED, to=a.escalate_to))
            s.add_all(refreshes(a, "escalated"))
            names = ", ".join(
                f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in a.escalate_to
            )
            s.add(
                _notice(
                    a,
                    "escalated",
                    f"⏫ No decision yet on task `{a.task_id}`: it is escalated to "
                    f"{names}, who may now approve or reject it too.",
                )
            )
            changed.append(a)
    return changed


async def expire_due(db: Database) -> list[Approval]:
    """Mark every pending approval past its expiry as expired; returns those it changed."""
    now = db.clock()
    changed: list[Approval] = []
    async with db.session() as s:
        due = (
            await s.exec(
                select(Approval).where(
                    Approval.status == ApprovalStatus.PENDING, col(Approval.expires_at) <= now
                )
            )
        ).all()
        for a in due:
            result = await s.exec(
                update(Approval)
                .where(col(Approval.id) == a.id, col(Approval.status) == ApprovalStatus.PENDING)
                .values(status=ApprovalStatus.EXPIRED, decided_at=now)
            )
            if result.rowcount:
                s.add(_event(a, EventKind.APPROVAL_EXPIRED))
                s.add_all(refreshes(a))
                s.add(
                    _notice(
                        a,
                        "expired",
                        f"⌛ The approval for task `{a.task_id}` expired without a "
                        "decision, so it counts as rejected: that step did not happen.",
                    )
                )
                changed.append(a)
    return changed


async def withdraw_pending(db: Database, run_id: str, *, by: str) -> list[str]:
    """A stopped run's open approvals: withdrawn, their messages (and copies) to lose the
    buttons."""
    now = db.clock()
    async with db.session() as s:
        pending = (
            await s.exec(
                select(Approval).where(
                    Approval.run_id == run_id, Approval.status == ApprovalStatus.PENDING
                )
            )
        ).all()
        for a in pending:
            result = await s.exec(
                update(Approval)
                .where(
                    col(Approval.id) == a.id,
                    col(Approval.status) == ApprovalStatus.PENDING,
                )
                .values(status=ApprovalStatus.WITHDRAWN, decided_at=now, decided_by=by)
            )
            if result.rowcount:
                s.add(
                    Event(
                        run_id=run_id,
                        kind=EventKind.APPROVAL_WITHDRAWN,
                        data={"approval_id": a.id, "by": by},
                    )
                )
                s.add_all(refreshes(a))
        return [a.id for a in pending]


def decided_gates() -> SelectOfScalar[str]:
    """The runs of decided gates whose task still waits (only a task's latest gate counts: an
    earlier one was applied before it asked again)."""
    later = aliased(Approval)
    newer = (
        select(later.id)
        .where(
            col(later.run_id) == col(Approval.run_id),
            col(later.task_id) == col(Approval.task_id),
            col(later.requested_at) > col(Approval.requested_at),
        )
        .exists()
    )
    return (
        select(Approval.run_id)
        .join(
            TaskRow,
            (col(TaskRow.run_id) == col(Approval.run_id))
            & (col(TaskRow.task_id) == col(Approval.task_id)),
        )
        .where(
            Approval.status != ApprovalStatus.PENDING,
            TaskRow.status == TaskStatus.WAITING,
            ~newer,
        )
    )


async def runs_with_decisions_to_apply(db: Database) -> list[str]:
    """Waiting runs with a decided gate whose task still waits: one query for all of them."""
    async with db.session() as s:
        q = (
            decided_gates()
            .join(Run, col(Run.id) == col(Approval.run_id))
            .where(Run.status == RunStatus.WAITING)
            .distinct()
        )
        return list((await s.exec(q)).all())

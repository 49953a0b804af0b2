"""Approval gates: one row per decision a person must make.

A decision is recorded with one conditional UPDATE (`… WHERE status = 'pending'`), so of
two clicks, two replicas or a replayed request, exactly one wins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from storage import outbox
from storage.db import Database, utcnow
from storage.models import (
    Approval,
    ApprovalStatus,
    DeliveryPurpose,
    Event,
    Run,
    RunStatus,
    TaskRow,
    TaskStatus,
)


def new_approval_id() -> str:
    return "ap_" + secrets.token_urlsafe(12)


async def create(db: Database, approval: Approval, *, task_fields: dict[str, Any]) -> Approval:
    """Store the approval, put its task into waiting, log the request and queue its message
    (with the buttons) — atomically, so a gate never waits without a way to decide it."""
    async with db.session() as s:
        s.add(approval)
        s.add(outbox.new(approval.run_id, DeliveryPurpose.APPROVAL, ref=approval.id))
        if task_fields:
            await s.exec(
                update(TaskRow)
                .where(
                    col(TaskRow.run_id) == approval.run_id,
                    col(TaskRow.task_id) == approval.task_id,
                )
                .values(**task_fields)
            )
        s.add(
            Event(
                run_id=approval.run_id,
                task_id=approval.task_id,
                kind="approval_requested",
                data={
                    "approval_id": approval.id,
                    "kind": approval.kind,
                    "tool": approval.tool_name,
                    "args": approval.tool_args,
                    "approvers": approval.approvers,
                    "expires_at": approval.expires_at.isoformat(),
                },
            )
        )
    return approval


async def get(db: Database, approval_id: str) -> Approval | None:
    async with db.session() as s:
        return await s.get(Approval, approval_id)


async def for_run(db: Database, run_id: str) -> list[Approval]:
    async with db.session() as s:
        q = select(Approval).where(Approval.run_id == run_id).order_by(col(Approval.requested_at))
        return list((await s.exec(q)).all())


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
    """`won` is True only for the one request that recorded the decision."""

    won: bool
    approval: Approval


async def decide(
    db: Database, approval_id: str, *, approve: bool, by: str, reason: str | None = None
) -> DecisionResult | None:
    """Record a decision if the approval is still pending and not expired. None if unknown."""
    now = utcnow()
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    async with db.session() as s:
        result = await s.exec(
            update(Approval)
            .where(
                col(Approval.id) == approval_id,
                col(Approval.status) == ApprovalStatus.PENDING,
                col(Approval.expires_at) > now,
            )
            .values(status=status, decided_at=now, decided_by=by, reason=reason)
        )
        won = bool(result.rowcount)
        current = await s.get(Approval, approval_id, populate_existing=True)
        if current is None:
            return None
        if won:
            s.add(outbox.new(current.run_id, DeliveryPurpose.APPROVAL_DECIDED, ref=approval_id))
            s.add(
                Event(
                    run_id=current.run_id,
                    task_id=current.task_id,
                    kind=f"approval_{status.value}",
                    data={"approval_id": approval_id, "by": by, "reason": reason},
                )
            )
        return DecisionResult(won=won, approval=current)


async def expire_due(db: Database) -> list[Approval]:
    """Mark every pending approval past its expiry as expired; returns those it changed."""
    now = utcnow()
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
                s.add(
                    Event(
                        run_id=a.run_id,
                        task_id=a.task_id,
                        kind="approval_expired",
                        data={"approval_id": a.id},
                    )
                )
                s.add(outbox.new(a.run_id, DeliveryPurpose.APPROVAL_DECIDED, ref=a.id))
                s.add(
                    outbox.new(
                        a.run_id,
                        DeliveryPurpose.NOTICE,
                        ref=f"expired:{a.id}",
                        data={
                            "text": f"⌛ The approval for task `{a.task_id}` expired without a "
                            "decision, so it counts as rejected: that step did not happen."
                        },
                    )
                )
                changed.append(a)
    return changed


async def withdraw_pending(db: Database, run_id: str, *, by: str) -> list[str]:
    """A stopped run's open approvals: withdrawn, their messages to lose the buttons."""
    now = utcnow()
    async with db.session() as s:
        pending = (
            await s.exec(
                select(Approval.id).where(
                    Approval.run_id == run_id, Approval.status == ApprovalStatus.PENDING
                )
            )
        ).all()
        for approval_id in pending:
            result = await s.exec(
                update(Approval)
                .where(
                    col(Approval.id) == approval_id,
                    col(Approval.status) == ApprovalStatus.PENDING,
                )
                .values(status=ApprovalStatus.WITHDRAWN, decided_at=now, decided_by=by)
            )
            if result.rowcount:
                s.add(
                    Event(
                        run_id=run_id,
                        kind="approval_withdrawn",
                        data={"approval_id": approval_id, "by": by},
                    )
                )
                s.add(outbox.new(run_id, DeliveryPurpose.APPROVAL_DECIDED, ref=approval_id))
        return list(pending)


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

"""`/baton audit`: a run's trail as people read it. Pure: rows in, Block Kit out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.approval_blocks import who
from bot.blocks import Block, context, header, section, sections, when
from bot.text import escape, truncate
from storage.models import Event, Run, TaskRow, ToolCallRecord


def _args(args: Any) -> str:
    if not args:
        return "(no arguments)"
    return escape(truncate(json.dumps(args, ensure_ascii=False, sort_keys=True), 400))


def _by(data: dict[str, Any]) -> str:
    return f"<@{data['by']}>" if data.get("by") else "nobody"


def decision_line(event: Event) -> str | None:
    """One line for an approval event, or None for events that are not decisions."""
    data = event.data or {}
    at = when(event.at)
    task = f"`{event.task_id}`" if event.task_id else "the run"
    match event.kind:
        case "approval_requested":
            what = (
                f"`{data['tool']}` {_args(data.get('args'))}"
                if data.get("tool")
                else data.get("kind")
            )
            rules = [f"approvers {who(list(data.get('approvers') or []))}"]
            if (data.get("quorum") or 1) > 1:
                rules.append(f"quorum {data['quorum']}")
            if data.get("self_approval") is False:
                rules.append("no self-approval")
            if data.get("escalate_to"):
                rules.append(f"escalates to {who(list(data['escalate_to']))}")
            return f"{at} ✋ {task} asked for approval of {what} ({', '.join(rules)})"
        case "approval_vote":
            return f"{at} 👍 {task}: {_by(data)} approved (1 of {data.get('quorum')} needed)"
        case "approval_approved":
            line = f"{at} ✅ {task}: approved by {_by(data)}"
            if data.get("for_run"):
                line += " for the rest of the run"
            if "edited_args" in data:
                line += (
                    f", edited: asked {_args(data.get('asked_args'))}, "
                    f"ran {_args(data.get('edited_args'))}"
                )
            return line
        case "approval_rejected":
            why = f" — “{escape(truncate(str(data['reason']), 300))}”" if data.get("reason") else ""
            return f"{at} 🚫 {task}: rejected by {_by(data)}{why}"
        case "approval_expired":
            return f"{at} ⌛ {task}: expired without a decision (counts as rejected)"
        case "approval_withdrawn":
            return f"{at} ⏹️ {task}: withdrawn, the run was stopped by {_by(data)}"
        case "approval_not_posted":
            return (
                f"{at} 📭 {task}: Slack refused the request in the thread "
                f"(`{escape(str(data.get('error')))}`); sent by direct message to "
                f"{who(list(data.get('sent_to') or []))}"
            )
        case "approval_escalated":
            return f"{at} ⏫ {task}: escalated to {who(list(data.get('to') or []))}"
        case "approval_granted_for_run":
            return (
                f"{at} ✅ {task}: `{data.get('tool')}` {_args(data.get('args'))} passed without "
                f"asking — approved for this run by {_by(data)}"
            )
    return None


def audit_report(
    run: Run,
    tasks: Sequence[TaskRow],
    events: Sequence[Event],
    calls: Sequence[ToolCallRecord],
) -> list[Block]:
    """Who asked, what was planned, each decision (who, when, why), each side effect with
    its idempotency key."""
    asked = f"<@{run.user_id}>" if run.user_id else f"a {run.source}"
    request = f"`{escape(run.playbook)}` " if run.playbook else ""
    request += escape(truncate(run.request, 600))
    blocks: list[Block] = [
        header(f"Audit of run {run.id}"),
        section(f"*Asked by* {asked} {when(run.created_at)} ({run.source}): {request}"),
    ]
    planned = [
        f"• `{t.task_id}` — *{escape(t.agent)}*: {escape(truncate(t.instruction, 300))}"
        + (" _(needs approval)_" if t.requires_approval else "")
        + f" → {t.status.value}"
        for t in tasks
    ]
    blocks += sections(["*Planned*", *(planned or ["(no plan was made)"])])
    decisions = [line for e in events if (line := decision_line(e)) is not None]
    blocks += sections(["*Decisions*", *(decisions or ["(none were needed)"])])
    effects = [
        f"• {when(c.performed_at)} `{c.tool}` {_args(c.args)} — key `{escape(c.idempotency_key)}`"
        + ("" if c.result else " _(started; may have happened)_")
        for c in calls
    ]
    blocks += sections(["*Side effects*", *(effects or ["(none)"])])
    blocks.append(context(f"Status: {run.status.value} · {len(events)} events recorded"))
    return blocks[:50]

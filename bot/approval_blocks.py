"""Approval messages and the reject-with-reason modal. Pure builders."""

from __future__ import annotations

import json
import re
from typing import Any

from agents.mcp import names as mcp_names
from bot.blocks import Block, button, context, header, section, when
from bot.text import escape, truncate
from storage.models import Approval, ApprovalStatus, Run, TaskRow

APPROVE = "approval:approve"
REJECT = "approval:reject"
REJECT_WITH_REASON = "approval:reject_reason"
REASON_CALLBACK = "approval:reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"

# A channel (C…, G…) or person (U…, W…) id as a tool argument.
SLACK_ID = re.compile(r"^[CGUW][A-Z0-9]{6,}$")

KIND_TITLE = {
    "tool": "Approval needed before an action",
    "task": "Approval needed before a step",
    "agent": "A specialist asks for a person's decision",
    "budget": "Approval needed to spend more",
}


def who(ids: list[str]) -> str:
    """Slack mentions for user ids (U…/W…) and user-group ids (S…)."""
    return ", ".join(f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in ids) or "nobody"


def readable_args(args: dict[str, Any] | None) -> str:
    if not args:
        return "_(no arguments)_"
    lines = []
    for key, value in args.items():
        if isinstance(value, str) and SLACK_ID.match(value):
            # Slack shows a channel or a person by name where the id is written as a mention.
            lines.append(f"• *{escape(key)}*: {'<#' if value[0] in 'CG' else '<@'}{value}>")
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"• *{escape(key)}*: {escape(truncate(str(shown), 600))}")
    return "\n".join(lines)


def what_happens(approval: Approval, task: TaskRow | None) -> str:
    agent = f"*{escape(task.agent)}*" if task else "A specialist"
    if approval.kind == "tool":
        ref = mcp_names.parse(approval.tool_name or "")
        what = (
            f"`{ref.tool}` on the MCP server `{ref.server}`"
            if ref is not None
            else f"`{approval.tool_name}`"
        )
        return f"{agent} wants to call {what} with:\n{readable_args(approval.tool_args)}"
    if approval.kind == "task":
        return f"{agent} is about to run this step:\n>{escape(truncate(task.instruction if task else approval.summary, 1500))}"
    if approval.kind == "budget":
        return escape(approval.summary)
    return f"{agent} says:\n>{escape(truncate(approval.summary, 1500))}"


def request_blocks(approval: Approval, run: Run, task: TaskRow | None) -> list[Block]:
    blocks: list[Block] = [
        header(f"✋ {KIND_TITLE.get(approval.kind, 'Approval needed')}"),
        section(what_happens(approval, task)),
    ]
    if approval.kind == "tool" and approval.summary:
        blocks.append(section(f"*Why:* {escape(truncate(approval.summary, 1500))}"))
    blocks.append(
        context(
            f"Run `{run.id}` · task `{approval.task_id}` · cost so far ${run.cost_usd:.4f} "
            f"({run.input_tokens + run.output_tokens:,} tokens)",
            f"Who can decide: {who(approval.approvers)} · expires {when(approval.expires_at)}",
        )
    )
    approve_text = "Continue" if approval.kind == "budget" else "Approve"
    blocks.append(
        {
            "type": "actions",
            "block_id": f"approval:{approval.id}",
            "elements": [
                button(approve_text, APPROVE, approval.id, style="primary"),
                button("Reject", REJECT, approval.id, style="danger"),
                button("Reject with reason", REJECT_WITH_REASON, approval.id),
            ],
        }
    )
    return blocks


def decided_blocks(approval: Approval, run: Run, task: TaskRow | None) -> list[Block]:
    """The same message once decided: what was asked, who decided and when, no buttons."""
    if approval.status == ApprovalStatus.APPROVED:
        verdict = f"✅ Approved by <@{approval.decided_by}> {when(approval.decided_at)}"
    elif approval.status == ApprovalStatus.REJECTED:
        reason = f" — “{escape(truncate(approval.reason, 500))}”" if approval.reason else ""
        verdict = f"🚫 Rejected by <@{approval.decided_by}> {when(approval.decided_at)}{reason}"
    elif approval.status == ApprovalStatus.WITHDRAWN:
        verdict = f"⏹️ Withdrawn: run stopped by <@{approval.decided_by}> {when(approval.decided_at)}; nothing was done"
    else:
        verdict = f"⌛ Expired {when(approval.decided_at or approval.expires_at)} without a decision; counted as rejected"
    return [
        section(what_happens(approval, task)),
        section(verdict),
        context(f"Run `{run.id}` · task `{approval.task_id}`"),
    ]


def decided_text(approval: Approval) -> str:
    if approval.status == ApprovalStatus.PENDING:
        return "This approval is still waiting for a decision."
    if approval.status == ApprovalStatus.EXPIRED:
        return "This approval expired without a decision, so it counts as rejected. Nothing was changed."
    if approval.status == ApprovalStatus.WITHDRAWN:
        return f"This approval was withdrawn: <@{approval.decided_by}> stopped the run. Nothing was changed."
    verb = "approved" if approval.status == ApprovalStatus.APPROVED else "rejected"
    return f"This was already {verb} by <@{approval.decided_by}> {when(approval.decided_at)}. Nothing was changed."


def reason_modal(approval_id: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": approval_id,
        "title": {"type": "plain_text", "text": "Reject with reason"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why reject this?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 1000,
                },
            }
        ],
    }

"""Approval messages and the reject-with-reason modal. Pure builders."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from agents.mcp import tool_names as mcp_names
from bot.blocks import Block, button, context, header, section, when
from bot.text import escape, truncate
from storage.models import Approval, ApprovalKind, ApprovalStatus, Run, TaskRow

APPROVE = "approval:approve"
APPROVE_FOR_RUN = "approval:approve_run"
EDIT = "approval:edit"
EDIT_CALLBACK = "approval:edit_form"
EDIT_INPUT = "value"
REJECT = "approval:reject"
REJECT_WITH_REASON = "approval:reject_reason"
REASON_CALLBACK = "approval:reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"

# A channel (C…, G…) or person (U…, W…) id as a tool argument.
SLACK_ID = re.compile(r"^[CGUW][A-Z0-9]{6,}$")

KIND_TITLE: dict[ApprovalKind, str] = {
    ApprovalKind.TOOL: "Approval needed before an action",
    ApprovalKind.TASK: "Approval needed before a step",
    ApprovalKind.AGENT: "A specialist asks for a person's decision",
    ApprovalKind.BUDGET: "Approval needed to spend more",
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
    if approval.kind == ApprovalKind.TOOL:
        ref = mcp_names.parse(approval.tool_name or "")
        what = (
            f"`{ref.tool}` on the MCP server `{ref.server}`"
            if ref is not None
            else f"`{approval.tool_name}`"
        )
        return f"{agent} wants to call {what} with:\n{readable_args(approval.tool_args)}"
    if approval.kind == ApprovalKind.TASK:
        return f"{agent} is about to run this step:\n>{escape(truncate(task.instruction if task else approval.summary, 1500))}"
    if approval.kind == ApprovalKind.BUDGET:
        return escape(approval.summary)
    return f"{agent} says:\n>{escape(truncate(approval.summary, 1500))}"


def target(approval: Approval, webhooks: Mapping[str, str]) -> str | None:
    """Where a side-effecting call would act, resolved as it will run: the channel (Slack
    shows its name) or the named webhook and its host (never its full URL, which may hold a
    secret)."""
    args = approval.tool_args or {}
    if approval.tool_name == "post_message" and args.get("channel"):
        return f"*Target:* <#{escape(str(args['channel']))}>"
    if approval.tool_name == "webhook_post" and args.get("name"):
        name = str(args["name"])
        url = webhooks.get(name)
        where = f" at `{urlsplit(url).hostname}`" if url else " (not configured: it will fail)"
        return f"*Target:* the webhook *{escape(name)}*{where}"
    return None


def policy_line(approval: Approval, votes: list[str]) -> str:
    """Who can decide, how many must, whether the requester may, and until when."""
    parts = [f"Who can decide: {who(approval.approvers)}"]
    if approval.quorum > 1:
        so_far = f" (so far: {who(votes)})" if votes else ""
        parts.append(f"{approval.quorum} different people must approve{so_far}")
    if not approval.self_approval and approval.requested_by:
        parts.append(f"<@{approval.requested_by}> asked, so cannot approve")
    if approval.escalated_at is not None:
        parts.append(f"escalated to {who(approval.escalate_to)} {when(approval.escalated_at)}")
    elif approval.escalate_at is not None:
        parts.append(f"goes to {who(approval.escalate_to)} {when(approval.escalate_at)}")
    parts.append(f"expires {when(approval.expires_at)}")
    return " · ".join(parts)


def request_blocks(
    approval: Approval,
    run: Run,
    task: TaskRow | None,
    *,
    webhooks: Mapping[str, str] | None = None,
    votes: list[str] | None = None,
    editable: bool = False,
) -> list[Block]:
    blocks: list[Block] = [
        header(f"✋ {KIND_TITLE[approval.kind]}"),
        section(what_happens(approval, task)),
    ]
    if (where := target(approval, webhooks or {})) is not None:
        blocks.append(section(where))
    if approval.kind == ApprovalKind.TOOL and approval.summary:
        blocks.append(section(f"*Why:* {escape(truncate(approval.summary, 1500))}"))
    blocks.append(
        context(
            f"Run `{run.id}` · task `{approval.task_id}` · cost so far ${run.cost_usd:.4f} "
            f"({run.input_tokens + run.output_tokens:,} tokens)",
            policy_line(approval, votes or []),
        )
    )
    approve_text = "Continue" if approval.kind == ApprovalKind.BUDGET else "Approve"
    elements = [button(approve_text, APPROVE, approval.id, style="primary")]
    if approval.kind == ApprovalKind.TOOL:
        elements.append(button("Approve for this run", APPROVE_FOR_RUN, approval.id))
        if editable:
            elements.append(button("Edit & approve", EDIT, approval.id))
    elements += [
        button("Reject", REJECT, approval.id, style="danger"),
        button("Reject with reason", REJECT_WITH_REASON, approval.id),
    ]
    blocks.append({"type": "actions", "block_id": f"approval:{approval.id}", "elements": elements})
    return blocks


def decided_blocks(approval: Approval, run: Run, task: TaskRow | None) -> list[Block]:
    """The same message once decided: what was asked, who decided and when, no buttons."""
    if approval.status == ApprovalStatus.APPROVED:
        verdict = f"✅ Approved by <@{approval.decided_by}> {when(approval.decided_at)}"
        if approval.for_run:
            verdict += " for the rest of this run (identical calls will not ask again)"
        if approval.edited_args is not None:
            verdict += f", with edited arguments:\n{readable_args(approval.edited_args)}"
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


def not_posted_text(approval: Approval, error: str, *, sent_to: list[str]) -> str:
    """For the requester, when the request could not be posted in the run's thread."""
    where = f"<#{approval.channel_id}>" if approval.channel_id else "the run's thread"
    said = f"I could not post the approval request for run `{approval.run_id}` in {where} (Slack said `{error}`)"
    if sent_to:
        return (
            f"{said}, so I sent it to {who(sent_to)} by direct message. "
            "The run waits for their decision there."
        )
    return (
        f"{said}, and nobody who may decide could be sent it, so the run cannot go on: the "
        f"approval expires {when(approval.expires_at)}. "
        f"Stop the run now with `/baton cancel {approval.run_id}`."
    )


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


def edit_modal(approval: Approval, fields: dict[str, str]) -> dict[str, Any]:
    """The "Edit & approve" form: one text field per argument of the tool, holding what was asked
    (`fields`: argument name -> its description)."""
    args = approval.tool_args or {}
    blocks: list[Block] = [section(f"Edit the call to `{approval.tool_name}`, then approve it.")]
    for name, description in list(fields.items())[:90]:
        current = args.get(name)
        shown = (
            "" if current is None else current if isinstance(current, str) else json.dumps(current)
        )
        element: dict[str, Any] = {
            "type": "plain_text_input",
            "action_id": EDIT_INPUT,
            "multiline": len(shown) > 80,
        }
        if shown:
            element["initial_value"] = truncate(shown, 3000)
        block: dict[str, Any] = {
            "type": "input",
            "block_id": f"arg:{name}"[:255],
            "label": {"type": "plain_text", "text": truncate(name, 2000)},
            "element": element,
            "optional": True,
        }
        if description:
            block["hint"] = {"type": "plain_text", "text": truncate(description, 2000)}
        blocks.append(block)
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": json.dumps({"approval": approval.id, "tool": approval.tool_name}),
        "title": {"type": "plain_text", "text": "Edit & approve"},
        "submit": {"type": "plain_text", "text": "Approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def edited_values(view: dict[str, Any]) -> dict[str, str]:
    """What the person typed in the edit form, by argument name (empty fields left out)."""
    values = (view.get("state") or {}).get("values") or {}
    found: dict[str, str] = {}
    for block_id, inputs in values.items():
        if not str(block_id).startswith("arg:") or not isinstance(inputs, dict):
            continue
        value = (inputs.get(EDIT_INPUT) or {}).get("value")
        if value is not None and str(value) != "":
            found[str(block_id)[4:]] = str(value)
    return found

"""The "Edit & approve" form: the gated call's arguments as form fields, read back and checked
against the tool's schema. Pure except for looking the tool up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agents.errors import InvalidToolArguments
from bot import approval_blocks as ui
from storage.models import Approval, ApprovalKind

if TYPE_CHECKING:
    from bot.parts import Baton


def form_of(view: dict[str, Any]) -> tuple[str, str]:
    """The approval and tool an edit form is about (from its private metadata)."""
    try:
        meta = json.loads(str(view.get("private_metadata") or ""))
    except ValueError:
        return "", ""
    if not isinstance(meta, dict):
        return "", ""
    return str(meta.get("approval") or ""), str(meta.get("tool") or "")


def _schema(baton: Baton, tool_name: str) -> dict[str, Any]:
    tool = baton.toolbox.builtins.get(tool_name)
    return tool.Args.model_json_schema() if tool is not None else {}


def fields(baton: Baton, approval: Approval) -> dict[str, str]:
    """The gated tool's arguments (name -> description), from its schema; empty when it
    cannot be edited (an MCP tool, whose schema Baton does not hold; a gate under a quorum)."""
    if approval.kind != ApprovalKind.TOOL or approval.quorum > 1:
        return {}  # under a quorum, each approver approves the same call
    properties = _schema(baton, approval.tool_name or "").get("properties") or {}
    return {str(k): str((v or {}).get("description") or "") for k, v in properties.items()}


def edited_args(baton: Baton, tool_name: str, view: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the person left them: typed text, read by each field's type."""
    properties = _schema(baton, tool_name).get("properties") or {}
    typed = ui.edited_values(view)
    args: dict[str, Any] = {}
    for name in properties:
        if name not in typed:
            continue
        text = typed[name]
        kind = (properties[name] or {}).get("type")
        if kind == "string":
            args[name] = text
            continue
        try:
            args[name] = json.loads(text)
        except ValueError:
            args[name] = text  # the schema check says what is wrong with it
    return args


def problems(baton: Baton, view: dict[str, Any]) -> dict[str, str]:
    """Field errors for the form (block id -> sentence); empty when the call is valid.
    Checked in the ack (Slack shows them on the form): no I/O."""
    _, tool_name = form_of(view)
    tool = baton.toolbox.builtins.get(tool_name)
    if tool is None:
        return {}
    args = edited_args(baton, tool_name, view)
    try:
        tool.parse_args(args)
    except InvalidToolArguments as e:
        names = list((_schema(baton, tool_name).get("properties") or {}).keys())
        text = str(e)
        named = [f for f in names if text.startswith(f) or f"; {f}" in text]
        target = named[0] if named else (names[0] if names else "")
        return {f"arg:{target}": f"Not a valid call: {text}"[:2000]} if target else {}
    return {}

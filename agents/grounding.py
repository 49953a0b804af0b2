"""Tool calls Baton asks for, held to what the task names.

When a task names things for a specialist's tool (a URL for `http_check`, a sum for
`calculator`) and the model has not called it for all of them yet, a server whose
`tool_choice: auto` does not work (per its capabilities) is asked for that call by name —
with the tool's text arguments limited to the values the task names and that were not used
yet, so a server that holds answers to a schema (llama.cpp's grammars) can only copy them.
A model with a working "auto" chooses its calls itself, with the tool's own schema; what it
did is judged afterwards (`verdict.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from agents.messages import Message, ToolSchema
from agents.tools.base import Tool


def found_arguments(tool: Tool, prompt: str) -> list[dict[str, Any]]:
    """The arguments the tool itself finds in the task's text."""
    return [a.model_dump(mode="json", exclude_none=True) for a in tool.args_from_text(prompt)]


def used_arguments(messages: list[Message], tool: str) -> list[dict[str, Any]]:
    """The arguments of the calls of `tool` made so far."""
    return [c.arguments for m in messages for c in m.tool_calls if c.name == tool]


def narrowed(tool: Tool, prompt: str, messages: list[Message]) -> ToolSchema:
    """The tool's schema, each text argument the task gives for every call limited to the
    values it names (those not used yet, when any are left)."""
    schema = tool.schema()
    found = found_arguments(tool, prompt)
    used = used_arguments(messages, tool.model_name)
    parameters: dict[str, Any] = copy.deepcopy(schema.parameters)
    properties: Mapping[str, Any] = parameters.get("properties", {})
    for name, spec in properties.items():
        values = list(dict.fromkeys(f[name] for f in found if isinstance(f.get(name), str)))
        if not values or any(name not in f for f in found) or not isinstance(spec, dict):
            continue
        left = [v for v in values if v not in {str(u.get(name)) for u in used}] or values
        spec["enum"] = left
    return schema.model_copy(update={"parameters": parameters})

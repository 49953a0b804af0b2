"""JSON schemas every model server can take.

Baton's argument and plan models carry limits (`maxLength`, `minimum`, patterns) that
pydantic enforces when the answer comes back. Sent to a model they help little and hurt
some servers: llama.cpp's grammar builder fails on `maxLength` and can take the server down.
So a schema leaves Baton as types, properties, required keys, enums and descriptions only,
with `$ref`s written out in place; the limits are checked afterwards, as before.
"""

from __future__ import annotations

import copy
from typing import Any

# What a grammar builder or a strict validator may not understand, or chokes on.
_DROPPED = frozenset(
    {
        "maxLength",
        "minLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "title",
        "examples",
    }
)


def portable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without constraints and `$ref`s, ready to send to any model."""
    defs: dict[str, Any] = {**schema.get("$defs", {}), **schema.get("definitions", {})}
    cleaned: dict[str, Any] = _clean(schema, defs, seen=())
    return cleaned


def _clean(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_clean(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return {"type": "object"}  # a recursive model: stop rather than loop
        target = copy.deepcopy(defs[name])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _clean({**target, **extra}, defs, (*seen, name))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key in ("$defs", "definitions"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _clean(sub, defs, seen) for name, sub in value.items()}
        else:
            out[key] = _clean(value, defs, seen)
    return out

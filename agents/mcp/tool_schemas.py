"""MCP tool schemas made portable: what every model API (and local grammar builders) accept.

Servers write JSON Schema freely; some model servers refuse or crash on string constraints
(`maxLength`, `pattern`, `format`) when they build a grammar from it. Those constraints move
into the property's description, where the model still reads them, and the server — which
validates its own arguments — still enforces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DESCRIPTION = 1024

# Keywords that only describe the schema document itself.
_DROPPED = frozenset({"$schema", "$id", "$comment", "examples"})
# String constraints, said in words instead.
_IN_WORDS = {
    "maxLength": "at most {} characters",
    "minLength": "at least {} characters",
    "pattern": "matching the pattern {}",
    "format": "format: {}",
}
# Keywords whose value is a schema (or a list or map of schemas) rather than data.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_ONE = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
)


def portable(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """A tool's input schema as an object schema every provider accepts."""
    cleaned: dict[str, Any] = _clean(dict(schema or {}))
    if cleaned.get("type") != "object":
        cleaned = {"type": "object", "properties": {}}
    if not isinstance(cleaned.get("properties"), dict):
        cleaned["properties"] = {}
    return cleaned


def short(description: str | None, limit: int = MAX_DESCRIPTION) -> str:
    """A tool's description, bounded so a chatty server cannot fill the model's context."""
    text = (description or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _clean(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    said: list[str] = []
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key in _IN_WORDS and not isinstance(value, dict | list):
            said.append(_IN_WORDS[key].format(value))
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _clean(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_clean(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = [_clean(sub) for sub in value] if isinstance(value, list) else _clean(value)
        else:
            out[key] = value
    if said:
        described = str(out.get("description") or "").strip()
        out["description"] = f"{described} ({'; '.join(said)})".strip()
    return out

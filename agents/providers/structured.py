"""Structured output from models that cannot be held to a schema by the server.

When a server takes no JSON schema, the schema goes into the prompt and the JSON object is
found in whatever text comes back (a code fence, a sentence before it); a reply without
one is a `ModelBehaviorError`, which the caller may send back once for repair.
"""

from __future__ import annotations

import json
from typing import Any

from agents.errors import ModelBehaviorError
from agents.schemas import portable


def schema_instruction(schema: dict[str, Any]) -> str:
    """What the prompt says when the server cannot enforce the schema itself."""
    return (
        "Reply with one JSON object and nothing else (no prose, no code fence). "
        "It must match this JSON schema:\n" + json.dumps(portable(schema), separators=(",", ":"))
    )


def find_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (the whole text, or one embedded in prose)."""
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return whole
    decoder = json.JSONDecoder()
    start = stripped.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(stripped, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = stripped.find("{", start + 1)
    return None


def arguments_object(
    raw: str, *, tool: str, cut_off: bool, provider: str, model: str
) -> dict[str, Any]:
    """A tool call's arguments as the model sent them (JSON text, maybe in pieces): an object,
    or a `ModelBehaviorError` saying what came instead."""
    if not raw.strip():
        return {}  # a tool without parameters may be called with no arguments at all
    hint = " (the answer was cut off at max_tokens)" if cut_off else ""
    what = f"{provider} returned arguments for '{tool}'"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelBehaviorError(
            f"{what} that are not valid JSON{hint}: {exc}", provider=provider, model=model
        ) from exc
    if not isinstance(value, dict):
        raise ModelBehaviorError(
            f"{what} that are not a JSON object{hint}", provider=provider, model=model
        )
    return value

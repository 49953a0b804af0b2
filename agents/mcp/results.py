"""An MCP tool's result as Baton's `ToolResult`: text for the model, structured data kept."""

from __future__ import annotations

import json
from typing import Any

from mcp.types import (
    AudioContent,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from agents.errors import ToolError
from agents.tools.base import ToolResult
from agents.wording import first_line, truncate

# What the model reads of one result; a server cannot fill the context with one call.
MAX_TEXT = 8000
SUMMARY = 140


def to_tool_result(tool: str, result: CallToolResult, *, limit: int = MAX_TEXT) -> ToolResult:
    """The result of calling `tool`; an `isError` result raises `ToolError` with its text."""
    text = "\n".join(t for t in (_block_text(b) for b in result.content) if t).strip()
    structured = result.structured_content
    if result.is_error:
        raise ToolError(bounded(text, limit) or f"{tool} failed without saying why")
    if not text and structured is not None:
        text = json.dumps(structured, ensure_ascii=False, indent=1)
    first = first_line(text) or "(no output)"
    if structured is not None and first in ("{", "["):
        first = json.dumps(structured, ensure_ascii=False)
    summary = truncate(f"{tool}: {first}", SUMMARY)
    return ToolResult(
        summary=summary,
        content=bounded(text, limit) or "(the tool returned nothing)",
        data=_data(structured),
    )


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    """At most `limit` characters, with a note saying how much was cut."""
    if len(text) <= limit:
        return text
    return (
        text[:limit].rstrip()
        + f"\n[… cut: the tool returned {len(text):,} characters; the first {limit:,} are shown]"
    )


def _data(structured: Any) -> dict[str, Any]:
    if structured is None:
        return {}
    if isinstance(structured, dict):
        return structured
    return {"value": structured}


def _block_text(block: ContentBlock) -> str:
    match block:
        case TextContent(text=text):
            return text
        case EmbeddedResource(resource=TextResourceContents(uri=uri, text=text)):
            return f"[resource {uri}]\n{text}"
        case EmbeddedResource(resource=resource):
            return f"[resource {resource.uri}: {resource.mime_type or 'binary'} data, not shown]"
        case ImageContent(mime_type=mime):
            return f"[an image ({mime}), not shown]"
        case AudioContent(mime_type=mime):
            return f"[audio ({mime}), not shown]"
        case ResourceLink(uri=uri, name=name):
            return f"[link: {name} {uri}]"
    return ""

"""One tool of an MCP server, as a Baton tool: its own name, schema and approval rule."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

import jsonschema
from mcp.types import CallToolResult, ToolAnnotations
from mcp.types import Tool as McpDefinition
from pydantic import BaseModel, ConfigDict

from agents.errors import InvalidToolArguments
from agents.mcp import tool_names
from agents.mcp.results import to_tool_result
from agents.mcp.tool_schemas import portable, short
from agents.messages import ToolSchema
from agents.tools import extract
from agents.tools.base import Tool, ToolContext, ToolResult

# `name=value` or `name="a value"` in a request, for the offline `rules` provider.
_PAIR = re.compile(r"""([A-Za-z_][\w-]*)\s*=\s*(?:"([^"]*)"|“([^”]*)”|'([^']*)'|([^\s,;]+))""")
_TRAILING = ".,;:!?)"


class Caller(Protocol):
    """What a tool calls through: its server's connection."""

    name: str

    async def call(self, tool: str, arguments: dict[str, Any], *, key: str) -> CallToolResult: ...


class McpArguments(BaseModel):
    """A call's arguments, as the server's JSON schema describes them (checked against it)."""

    model_config = ConfigDict(extra="allow")


def needs_approval(annotations: ToolAnnotations | None, override: bool | None) -> bool:
    """A person approves each call unless the tool says it only reads (and is not destructive).

    `override` is the catalog's `approvals.require` for this tool, which wins.
    """
    if override is not None:
        return override
    if annotations is None or annotations.destructive_hint is True:
        return True
    return annotations.read_only_hint is not True


class McpTool(Tool[McpArguments]):
    Args = McpArguments

    def __init__(
        self, server: Caller, definition: McpDefinition, *, require: bool | None = None
    ) -> None:
        self.server = server.name
        self.tool = definition.name
        self.name = tool_names.canonical(server.name, definition.name)
        self.description = short(definition.description or definition.title or definition.name)
        self.requires_approval = needs_approval(definition.annotations, require)
        self._model_name = tool_names.model_name(server.name, definition.name)
        self._caller = server
        self._parameters = portable(definition.input_schema)
        self._validator = _validator(definition.input_schema)

    @property
    def model_name(self) -> str:
        return self._model_name

    def schema(self) -> ToolSchema:
        return ToolSchema(
            name=self._model_name, description=self.description, parameters=self._parameters
        )

    def parse_args(self, arguments: dict[str, Any]) -> McpArguments:
        """Checked against the server's own schema (the server checks again)."""
        if self._validator is not None:
            try:
                errors = sorted(self._validator.iter_errors(arguments), key=lambda e: e.path)
            except Exception:
                errors = []  # a schema jsonschema cannot apply; the server still checks
            if errors:
                raise InvalidToolArguments(
                    "; ".join(
                        f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}"
                        for e in errors[:5]
                    )
                )
        return McpArguments.model_validate(arguments)

    async def run(self, args: McpArguments, ctx: ToolContext) -> ToolResult:
        result = await self._caller.call(
            self.tool, args.model_dump(mode="json"), key=ctx.idempotency_key
        )
        return to_tool_result(self.tool, result)

    def args_from_text(self, text: str) -> list[McpArguments]:
        """Offline: call the tool when the instruction names it, with its `name=value` pairs."""
        instruction, _ = extract.split_inputs(text)
        said = extract.plain(instruction)
        if not re.search(rf"(?<![\w-]){re.escape(self.tool)}(?![\w-])", said):
            return []
        properties: Mapping[str, Any] = self._parameters["properties"]
        found: dict[str, Any] = {}
        for match in _PAIR.finditer(said):
            key = match.group(1)
            if key in properties and key not in found:
                quoted = next((g for g in match.groups()[1:4] if g is not None), None)
                raw = quoted if quoted is not None else match.group(5).rstrip(_TRAILING)
                found[key] = _typed(raw, properties[key])
        if any(name not in found for name in self._parameters.get("required", [])):
            return []
        try:
            return [self.parse_args(found)]
        except InvalidToolArguments:
            return []


def _validator(schema: Mapping[str, Any] | None) -> jsonschema.protocols.Validator | None:
    if not schema:
        return None
    try:
        cls = jsonschema.validators.validator_for(dict(schema))
        cls.check_schema(dict(schema))
        return cls(dict(schema))
    except Exception:
        return None


def _typed(raw: str, prop: Any) -> Any:
    """A `name=value` value in the type the property asks for."""
    kind = prop.get("type") if isinstance(prop, dict) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw.lower() in ("true", "false", "yes", "no"):
        return raw.lower() in ("true", "yes")
    return raw

"""The pure parts of MCP support: names, schemas, results, approval rules, catalog checks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.types import (
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from mcp.types import Tool as McpDefinition

from agents.errors import CatalogError, InvalidToolArguments, ToolError, ToolServerError
from agents.mcp import tool_names as mcp_names
from agents.mcp.connection import Backoff
from agents.mcp.results import to_tool_result
from agents.mcp.server_entries import McpServerSpec, expand, missing_variables
from agents.mcp.servers import McpServers
from agents.mcp.status import ServerState
from agents.mcp.tool import McpTool, needs_approval
from agents.mcp.tool_schemas import portable
from agents.spec import parse_catalog
from agents.tools.registry import tool_names
from bot.app import toolbox_for
from bot.config import ConfigError, Settings


class NeverCalled:
    """A server connection for tools that are only parsed here, never called."""

    name = "shop"

    async def call(self, tool: str, arguments: dict[str, Any], *, key: str) -> CallToolResult:
        raise AssertionError("not called in these tests")


def tool(name: str = "cancel_order", **fields: Any) -> McpTool:
    schema = {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "maxLength": 12},
            "quantity": {"type": "integer"},
            "notify": {"type": "boolean"},
        },
        "required": ["order_id"],
    }
    return McpTool(
        NeverCalled(),
        McpDefinition(name=name, description="Cancel an order.", input_schema=schema, **fields),
    )


def test_model_names_say_the_server_and_stay_the_same_for_the_same_tool() -> None:
    assert mcp_names.model_name("tickets", "create") == "tickets__create"
    odd = mcp_names.model_name("tickets", "issues.create")
    assert odd == mcp_names.model_name("tickets", "issues.create")
    assert odd != mcp_names.model_name("tickets", "issues_create")
    assert odd.startswith("tickets__issues_create_")
    long = mcp_names.model_name("tickets", "x" * 120)
    assert len(long) == 64 and long != mcp_names.model_name("tickets", "x" * 121)


def test_catalog_tool_entries_parse_and_match() -> None:
    ref = mcp_names.parse("mcp:tickets/*")
    assert ref is not None and ref.everything and ref.matches("tickets", "anything")
    assert not ref.matches("docs", "anything")
    assert mcp_names.parse("mcp:tickets") is None and mcp_names.parse("http_check") is None
    assert str(mcp_names.parse("mcp:tickets/create")) == "mcp:tickets/create"


def test_portable_schemas_say_string_constraints_in_words() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 80, "description": "Short title"},
            "pattern": {"type": "string", "pattern": "^[A-Z]+$"},
            "tags": {"type": "array", "items": {"type": "string", "format": "email"}},
        },
    }
    cleaned = portable(schema)
    assert "$schema" not in cleaned
    assert cleaned["properties"]["title"] == {
        "type": "string",
        "description": "Short title (at most 80 characters)",
    }
    # A property may be called `pattern`: only the keyword moves.
    assert cleaned["properties"]["pattern"]["description"] == "(matching the pattern ^[A-Z]+$)"
    assert cleaned["properties"]["tags"]["items"] == {
        "type": "string",
        "description": "(format: email)",
    }
    assert portable(None) == {"type": "object", "properties": {}}
    assert portable({"type": "string"}) == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("annotations", "override", "asks"),
    [
        (None, None, True),
        (ToolAnnotations(read_only_hint=True), None, False),
        (ToolAnnotations(read_only_hint=True, destructive_hint=True), None, True),
        (ToolAnnotations(destructive_hint=False), None, True),
        (ToolAnnotations(destructive_hint=True), False, False),
        (ToolAnnotations(read_only_hint=True), True, True),
    ],
)
def test_a_call_asks_first_unless_the_tool_only_reads_or_the_catalog_says_otherwise(
    annotations: ToolAnnotations | None, override: bool | None, asks: bool
) -> None:
    assert needs_approval(annotations, override) is asks


def test_results_become_text_for_the_model_and_errors_become_tool_errors() -> None:
    result = CallToolResult(
        content=[
            TextContent(text="Order 7 is late"),
            ImageContent(data="aGk=", mime_type="image/png"),
            EmbeddedResource(
                resource=TextResourceContents(uri="file:///notes.txt", text="call the courier")
            ),
            ResourceLink(name="tracking", uri="https://track.example.com/7"),
        ],
        structured_content=[1, 2],
    )
    shown = to_tool_result("lookup", result)
    assert shown.summary == "lookup: Order 7 is late"
    assert shown.content.splitlines() == [
        "Order 7 is late",
        "[an image (image/png), not shown]",
        "[resource file:///notes.txt]",
        "call the courier",
        "[link: tracking https://track.example.com/7]",
    ]
    assert shown.data == {"value": [1, 2]}
    with pytest.raises(ToolError, match="no such order"):
        to_tool_result(
            "lookup", CallToolResult(content=[TextContent(text="no such order")], is_error=True)
        )
    cut = to_tool_result("dump", CallToolResult(content=[TextContent(text="y" * 50)]), limit=10)
    assert (
        cut.content
        == "yyyyyyyyyy\n[… cut: the tool returned 50 characters; the first 10 are shown]"
    )


def test_restarts_come_at_once_then_after_growing_pauses() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 10)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]


def test_arguments_are_checked_against_the_servers_schema() -> None:
    cancel = tool()
    assert cancel.parse_args({"order_id": "A1", "quantity": 2}).model_dump() == {
        "order_id": "A1",
        "quantity": 2,
    }
    with pytest.raises(InvalidToolArguments, match="order_id: 'A1234567890123' is too long"):
        cancel.parse_args({"order_id": "A1234567890123"})
    with pytest.raises(InvalidToolArguments, match="'order_id' is a required property"):
        cancel.parse_args({"quantity": 2})


def test_offline_the_tool_is_called_when_the_instruction_names_it_with_its_arguments() -> None:
    cancel = tool()
    [args] = cancel.args_from_text(
        'Call cancel_order with order_id=A-17 quantity=3 notify=yes and reason="late".'
    )
    assert args.model_dump() == {"order_id": "A-17", "quantity": 3, "notify": True}
    assert cancel.args_from_text("cancel_order please") == []  # its required argument is missing
    assert cancel.args_from_text("order_id=A-17, but do not name the tool") == []


def test_server_entries_are_checked_with_the_entry_and_what_is_wrong() -> None:
    text = """
mcp_servers:
  - {name: ops, command: [python, -m, ops]}
  - {name: both, command: [x], url: https://x.example.com/mcp}
  - {name: web, url: https://web.example.com/mcp, env: {A: b}}
  - {name: bad__name, command: [x]}
agents:
  - {name: clerk, description: d, tools: ['mcp:ops/*', 'mcp:nowhere/x', 'mcp:ops']}
approvals:
  require: {http_check: false, 'mcp:ops/lookup': false}
  tools: {'mcp:elsewhere/*': [U1]}
"""
    with pytest.raises(CatalogError) as error:
        parse_catalog(text, source="agents.yml", known_tools=tool_names())
    lines = str(error.value).splitlines()
    assert any(
        line.startswith("agents.yml: mcp_servers[1] (both)") and "either 'command'" in line
        for line in lines
    )
    assert any("mcp_servers[2] (web)" in line and "'headers'" in line for line in lines)
    assert any("mcp_servers[3] (bad__name).name" in line for line in lines)

    text = text.replace("  - {name: both, command: [x], url: https://x.example.com/mcp}\n", "")
    text = text.replace("  - {name: web, url: https://web.example.com/mcp, env: {A: b}}\n", "")
    text = text.replace("  - {name: bad__name, command: [x]}\n", "")
    with pytest.raises(CatalogError) as error:
        parse_catalog(text, source="agents.yml", known_tools=tool_names())
    assert str(error.value).splitlines() == [
        "agents.yml: agents (clerk): 'mcp:nowhere/x' names the MCP server 'nowhere', which is not in mcp_servers (ops)",
        "agents.yml: agents (clerk): 'mcp:ops' is not of the form mcp:<server>/<tool> or mcp:<server>/*",
        "agents.yml: approvals.tools: 'mcp:elsewhere/*' names the MCP server 'elsewhere', which is not in mcp_servers (ops)",
        "agents.yml: approvals.require: 'http_check' is a built-in tool, which decides for itself; list MCP tools here (mcp:<server>/<tool> or mcp:<server>/*)",
    ]


def test_a_specialist_may_call_only_what_it_lists() -> None:
    catalog = parse_catalog(
        """
mcp_servers: [{name: ops, command: [x]}, {name: docs, url: https://docs.example.com/mcp}]
agents:
  - {name: clerk, description: d, tools: [calculator, 'mcp:ops/*', 'mcp:docs/search']}
""",
        source="t",
        known_tools=tool_names(),
    )
    clerk = catalog.agent("clerk")
    assert clerk is not None
    assert clerk.permits("calculator") and clerk.permits("mcp:ops/anything")
    assert clerk.permits("mcp:docs/search") and not clerk.permits("mcp:docs/delete")
    assert not clerk.permits("http_check")


def test_secrets_come_from_the_environment_and_a_missing_one_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = McpServerSpec(
        name="web",
        url="https://web.example.com/mcp",
        headers={"Authorization": "Bearer ${WEB_TOKEN}", "X-Team": "baton"},
    )
    assert expand(spec.headers, {"WEB_TOKEN": "t0k"}) == {
        "Authorization": "Bearer t0k",
        "X-Team": "baton",
    }
    assert missing_variables([spec], {}) == [
        "mcp_servers (web): headers.Authorization names ${WEB_TOKEN}, which is not set"
    ]
    catalog = parse_catalog(
        """
mcp_servers: [{name: web, url: https://web.example.com/mcp, headers: {Authorization: 'Bearer ${WEB_TOKEN}'}}]
agents: [{name: clerk, description: d, tools: ['mcp:web/*']}]
""",
        source="t",
        known_tools=tool_names(),
    )
    monkeypatch.delenv("WEB_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as error:
        toolbox_for(catalog, settings)
    assert error.value.problems == [
        "BATON_AGENTS_FILE: mcp_servers (web): headers.Authorization names ${WEB_TOKEN}, which is not set"
    ]
    (tmp_path / ".env").write_text("WEB_TOKEN=from-dotenv\n")
    assert toolbox_for(catalog, settings).mcp is not None


async def test_a_server_that_keeps_failing_is_started_again_after_growing_pauses(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"
    crash = f"open({str(starts)!r}, 'a').write('start\\n'); raise SystemExit(1)"
    spec = McpServerSpec(name="flaky", command=[sys.executable, "-c", crash])
    servers = McpServers(
        [spec], environ={}, require={}, call_timeout=5, backoff=Backoff(first=0, base=300, most=300)
    )
    try:
        with pytest.raises(ToolServerError, match="the MCP server `flaky` is unavailable"):
            await servers.tools("flaky")
        # Tried again at once; after that failure too, the next try waits 300 s.
        for _ in range(400):
            [status] = servers.status()
            if status.retry_in is not None and status.retry_in > 200:
                break
            await asyncio.sleep(0.05)
        assert status.state == ServerState.UNAVAILABLE
        assert status.problem == "it closed the connection before answering (it may have exited)"
        with pytest.raises(ToolServerError, match="the MCP server `flaky` is unavailable"):
            await servers.tools("flaky")  # answered from the pause, without starting it
        assert starts.read_text().splitlines() == ["start", "start"]
    finally:
        await servers.aclose()
    assert servers.status()[0].state == ServerState.STOPPED

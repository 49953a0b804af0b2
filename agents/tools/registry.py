"""Every tool a specialist can be given, by name."""

from __future__ import annotations

from agents.tools.base import Tool
from agents.tools.calculator import Calculator
from agents.tools.http_check import HttpCheck
from agents.tools.json_metric import JsonMetric
from agents.tools.post_message import PostMessage
from agents.tools.slack_history import SlackHistory
from agents.tools.webhook import WebhookPost

ALL_TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        HttpCheck(),
        JsonMetric(),
        Calculator(),
        SlackHistory(),
        PostMessage(),
        WebhookPost(),
    )
}


def tool_names() -> set[str]:
    """Names of all tools, for checking an agent catalog."""
    return set(ALL_TOOLS)

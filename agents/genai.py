"""Names from OpenTelemetry's GenAI semantic conventions, and Baton's own span attributes.

The conventions are still "incubating" upstream, so the names are spelled out here rather than
imported from a module that may move. The functions below put what people and models said in
the conventions' JSON shapes; spans carry them only when content capture is on.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from agents.messages import Message, ModelResponse

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
OUTPUT_TYPE = "gen_ai.output.type"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
ERROR_TYPE = "error.type"
# Opt-in content (capture_content).
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
# Baton's own.
RUN_ID_ATTR = "baton.run.id"
RUN_STATUS_ATTR = "baton.run.status"
TASK_ID_ATTR = "baton.task.id"
TASK_STATUS_ATTR = "baton.task.status"
TASK_ATTEMPT_ATTR = "baton.task.attempt"
TOOL_OK_ATTR = "baton.tool.ok"
TEAM_ATTR = "slack.team.id"
CHANNEL_ATTR = "slack.channel.id"
THREAD_ATTR = "slack.thread.ts"

SUPERVISOR = "supervisor"


class Operation(StrEnum):
    CHAT = "chat"
    INVOKE_AGENT = "invoke_agent"
    EXECUTE_TOOL = "execute_tool"


def system_instructions(text: str) -> str:
    """`gen_ai.system_instructions`: the system prompt as one text part, as JSON."""
    return json.dumps([{"type": "text", "content": text}])


def input_messages(messages: list[Message]) -> str:
    """`gen_ai.input.messages`: each message as a role and its parts, as JSON."""
    return json.dumps([_message(m) for m in messages])


def output_message(response: ModelResponse) -> str:
    """`gen_ai.output.messages`: the model's answer as one assistant message, as JSON."""
    return json.dumps([_output(response)])


def _message(m: Message) -> dict[str, Any]:
    """A message in the conventions' `gen_ai.input.messages` shape."""
    parts: list[dict[str, Any]] = []
    if m.role == "tool":
        parts.append({"type": "tool_call_response", "id": m.tool_call_id, "response": m.content})
    elif m.content:
        parts.append({"type": "text", "content": m.content})
    parts += [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
        for c in m.tool_calls
    ]
    return {"role": m.role, "parts": parts}


def _output(response: ModelResponse) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if response.structured is not None:
        parts.append({"type": "text", "content": json.dumps(response.structured)})
    elif response.text:
        parts.append({"type": "text", "content": response.text})
    parts += [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
        for c in response.tool_calls
    ]
    finish = "tool_call" if response.tool_calls else "stop"
    return {"role": "assistant", "parts": parts, "finish_reason": finish}

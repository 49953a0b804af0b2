"""A `ModelRequest` as Chat Completions parameters, shaped by what the endpoint accepts.

Pure: capabilities in, request parameters out. `openai_provider` does the I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, assert_never, cast

from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
)
from openai.types.shared_params import (
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
)

from agents.errors import PermanentModelError
from agents.messages import Message, ModelRequest, as_data
from agents.providers.capabilities import Capabilities, Feature
from agents.providers.structured import schema_instruction
from agents.schemas import portable

OutputMode = Literal["json_schema", "json_object", "text"]

ONE_CALL_PER_TURN = "Call at most one function per reply."
SERVER_HOLDS_SCHEMA = "Reply with one JSON object, as the response format requires."


@dataclass(frozen=True)
class Shape:
    """How one request is sent: which features it uses and which of those are unconfirmed."""

    output: OutputMode | None
    send_tools: bool
    tool_results_as_text: bool  # the server drops role "tool": results go as user text
    server_schema: bool  # the server holds the answer to the schema (json_schema, or its extension)
    tool_choice: ChatCompletionToolChoiceOptionParam | None
    token_param: Literal["max_completion_tokens", "max_tokens"]
    max_tokens: int
    temperature: float | None
    stream_usage: bool
    one_call_per_turn: bool
    # The suggested tool goes with its grounded schema (a server without a working "auto").
    grounded: bool
    # Features this request relies on whose support is not known yet, most doubtful first.
    unconfirmed: tuple[Feature, ...]


def shape_for(
    request: ModelRequest,
    caps: Capabilities,
    *,
    stream: bool,
    max_output_tokens: int | None = None,
    temperature: float | None = None,
) -> Shape:
    """The features to use for `request` on an endpoint with `caps`."""
    unconfirmed: list[Feature] = []

    def use(feature: Feature) -> None:
        if caps.get(feature) is None:
            unconfirmed.append(feature)

    output: OutputMode | None = None
    if request.output_schema is not None:
        if caps.json_schema is not False:
            output = "json_schema"
            use(Feature.JSON_SCHEMA)
        elif caps.json_object is not False:
            output = "json_object"
            use(Feature.JSON_OBJECT)
        else:
            output = "text"

    choice: ChatCompletionToolChoiceOptionParam | None = None
    send_tools = bool(request.tools)
    grounded = False
    if request.tools and caps.tool_choice is not False:
        named: ChatCompletionToolChoiceOptionParam | None = None
        wanted = request.suggested_tool or (
            request.tools[0].name if len(request.tools) == 1 else None
        )
        if wanted is not None:
            named = {"type": "function", "function": {"name": wanted}}
        if caps.tool_choice_auto is False:
            # Without a usable "auto", tools go only with a named call the task still
            # needs; otherwise the model is asked for its answer, without tools.
            choice = named if request.suggested_tool else None
            send_tools = choice is not None
            grounded = choice is not None and request.grounded_tool is not None
        else:
            # Some servers (llama.cpp's function-calling formats) ignore tools without it.
            choice = "auto"
            if request.require_tool and named is not None:
                choice = named
            elif request.require_tool and caps.tool_choice_required:
                choice = "required"
            if caps.tool_choice_auto is None:
                use(Feature.TOOL_CHOICE_AUTO)
        use(Feature.TOOL_CHOICE)

    if caps.max_completion_tokens:
        token_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    else:
        # Honoured by every compatible server; OpenAI's newest models refuse it, saying so,
        # and then learning switches to max_completion_tokens.
        token_param = "max_tokens"
        use(Feature.MAX_COMPLETION_TOKENS)

    stream_usage = stream and caps.stream_usage is not False
    if stream_usage:
        use(Feature.STREAM_USAGE)

    limit = (
        request.max_tokens
        if max_output_tokens is None
        else min(request.max_tokens, max_output_tokens)
    )
    order = list(Feature)
    return Shape(
        output=output,
        send_tools=send_tools,
        tool_results_as_text=caps.tool_results is False,
        server_schema=output == "json_schema"
        or (output == "json_object" and caps.json_object_schema is True),
        tool_choice=choice,
        token_param=token_param,
        max_tokens=limit,
        temperature=temperature,
        stream_usage=stream_usage,
        one_call_per_turn=send_tools and caps.parallel_tool_calls is False,
        grounded=grounded,
        unconfirmed=tuple(sorted(unconfirmed, key=order.index)),
    )


def messages(request: ModelRequest, shape: Shape) -> list[ChatCompletionMessageParam]:
    """The conversation, with what the shape adds to the system prompt."""
    system = request.system
    extra = []
    if shape.output in ("json_object", "text") and request.output_schema is not None:
        extra.append(
            SERVER_HOLDS_SCHEMA
            if shape.server_schema
            else schema_instruction(request.output_schema)
        )
    if shape.one_call_per_turn:
        extra.append(ONE_CALL_PER_TURN)
    system = "\n\n".join(p for p in (system, *extra) if p)
    out: list[ChatCompletionMessageParam] = []
    if system:
        out.append({"role": "system", "content": system})
    results: list[str] = []
    for m in request.messages:
        if m.role == "tool" and shape.tool_results_as_text:
            results.append(f"Result of {m.name or 'the tool'}:\n{as_data(m)}")
            continue
        if results:
            out.append({"role": "user", "content": "\n\n".join(results)})
            results = []
        out.append(_message(m))
    if results:
        out.append({"role": "user", "content": "\n\n".join(results)})
    return out


def _message(m: Message) -> ChatCompletionMessageParam:
    match m.role:
        case "user":
            return {"role": "user", "content": m.content}
        case "assistant":
            if not m.tool_calls:
                return {"role": "assistant", "content": m.content}
            return {
                "role": "assistant",
                # A string, even when empty: some servers refuse null here.
                "content": m.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                    for call in m.tool_calls
                ],
            }
        case "tool":
            if m.tool_call_id is None:
                raise PermanentModelError("a tool result without the id of its call cannot be sent")
            return {"role": "tool", "tool_call_id": m.tool_call_id, "content": as_data(m)}
        case _:
            assert_never(m.role)


def tools(request: ModelRequest, shape: Shape) -> list[ChatCompletionFunctionToolParam]:
    """The tools, with portable schemas (the suggested one grounded where the shape says)."""
    grounded = request.grounded_tool if shape.grounded else None
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": portable(tool.parameters),
            },
        }
        for tool in (
            grounded if grounded is not None and t.name == grounded.name else t
            for t in request.tools
        )
    ]


def response_format(
    request: ModelRequest, shape: Shape
) -> ResponseFormatJSONSchema | ResponseFormatJSONObject | None:
    """What the server is asked to hold the answer to, if anything."""
    if request.output_schema is None or shape.output in (None, "text"):
        return None
    if shape.output == "json_object":
        if shape.server_schema:
            # llama-cpp-python's extension; the SDK's type does not know the key.
            return cast(
                ResponseFormatJSONObject,
                {"type": "json_object", "schema": portable(request.output_schema)},
            )
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": request.output_name, "schema": portable(request.output_schema)},
    }


def parameters(request: ModelRequest, shape: Shape) -> dict[str, Any]:
    """Everything but `model`, `messages` and `stream`, as keyword arguments for the SDK."""
    params: dict[str, Any] = {shape.token_param: shape.max_tokens}
    if shape.temperature is not None:
        params["temperature"] = shape.temperature
    if shape.send_tools:
        params["tools"] = tools(request, shape)
    if shape.tool_choice is not None:
        params["tool_choice"] = shape.tool_choice
    fmt = response_format(request, shape)
    if fmt is not None:
        params["response_format"] = fmt
    if shape.stream_usage:
        params["stream_options"] = {"include_usage": True}
    return params


# Words in a refusal that point at the feature refused.
_MENTIONS: dict[Feature, tuple[str, ...]] = {
    Feature.JSON_SCHEMA: ("json_schema", "response_format"),
    Feature.JSON_OBJECT: ("json_object", "response_format"),
    Feature.TOOL_CHOICE: ("tool_choice",),
    Feature.STREAM_USAGE: ("stream_options", "include_usage"),
    Feature.MAX_COMPLETION_TOKENS: ("max_tokens",),
}


def culprit(shape: Shape, error_text: str, *, validation: bool) -> Feature | None:
    """The unconfirmed feature a refusal is about: the one it names, else (for a bare
    validation error) the most doubtful one; None when the refusal is about something else."""
    text = error_text.lower()
    for feature in shape.unconfirmed:
        if any(word in text for word in _MENTIONS.get(feature, ())):
            return feature
    # Only a refusal that names max_tokens says to use max_completion_tokens instead.
    doubtful = [f for f in shape.unconfirmed if f != Feature.MAX_COMPLETION_TOKENS]
    if validation and doubtful:
        return doubtful[0]
    return None

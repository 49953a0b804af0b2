"""Anthropic through the Messages API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, assert_never

import anthropic
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    TextBlockParam,
    ToolChoiceAnyParam,
    ToolChoiceToolParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)

from agents.errors import (
    ModelBehaviorError,
    ModelError,
    PermanentModelError,
    TransientModelError,
)
from agents.messages import Message, ModelRequest, ModelResponse, ToolCall, Usage, as_data
from agents.providers import status
from agents.providers.base import TextSink
from agents.providers.structured import arguments_object
from agents.retry import parse_retry_after
from agents.schemas import portable

NOT_AN_ANSWER = "the model server answered with {what} instead of a message"

Block: TypeAlias = TextBlockParam | ToolUseBlockParam | ToolResultBlockParam


class AnthropicProvider:
    name = "anthropic"
    label = "Anthropic"

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float = 60.0) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,  # agents.retry retries, the same way for every provider
            timeout=timeout,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def complete(
        self, request: ModelRequest, *, on_text: TextSink | None = None
    ) -> ModelResponse:
        """Ask the model once; stream text to `on_text` when given."""
        try:
            if on_text is None:
                return await self._create(request)
            return await self._stream(request, on_text)
        except anthropic.APIError as exc:
            raise _translate(exc, request.model) from exc
        except json.JSONDecodeError as exc:
            raise TransientModelError(
                NOT_AN_ANSWER.format(what="broken JSON"),
                provider=self.label,
                model=request.model,
            ) from exc

    async def _create(self, request: ModelRequest) -> ModelResponse:
        message = await self._client.messages.create(
            model=request.model,
            max_tokens=request.max_tokens,
            system=request.system or anthropic.omit,
            messages=_messages(request),
            tools=_tools(request) or anthropic.omit,
            tool_choice=_tool_choice(request),
        )
        if not isinstance(message, anthropic.types.Message):
            # A proxy's error page with status 200: the SDK hands back the text as it came.
            raise TransientModelError(
                NOT_AN_ANSWER.format(what="a page of text"),
                provider=self.label,
                model=request.model,
            )
        parts: list[_Part] = []
        for block in message.content:
            if block.type == "text":
                parts.append(_Part("text", text=[block.text]))
            elif block.type == "tool_use":
                parts.append(_Part("tool_use", id=block.id, name=block.name, input=block.input))
        usage = Usage(
            input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens
        )
        return _response(request, parts, usage, cut_off=message.stop_reason == "max_tokens")

    async def _stream(self, request: ModelRequest, on_text: TextSink) -> ModelResponse:
        stream = await self._client.messages.create(
            model=request.model,
            max_tokens=request.max_tokens,
            system=request.system or anthropic.omit,
            messages=_messages(request),
            tools=_tools(request) or anthropic.omit,
            tool_choice=_tool_choice(request),
            stream=True,
        )
        parts: dict[int, _Part] = {}
        usage = Usage()
        stop_reason: str | None = None
        async with stream:
            async for event in stream:
                if isinstance(event, RawMessageStartEvent):
                    u = event.message.usage
                    usage = Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens)
                elif isinstance(event, RawContentBlockStartEvent):
                    block = event.content_block
                    if block.type == "text":
                        parts[event.index] = _Part("text")
                    elif block.type == "tool_use":
                        parts[event.index] = _Part("tool_use", id=block.id, name=block.name)
                elif isinstance(event, RawContentBlockDeltaEvent) and event.index in parts:
                    part, delta = parts[event.index], event.delta
                    if delta.type == "text_delta":
                        part.text.append(delta.text)
                        await on_text(delta.text)
                    elif delta.type == "input_json_delta":
                        part.json.append(delta.partial_json)
                elif isinstance(event, RawMessageDeltaEvent):
                    stop_reason = event.delta.stop_reason or stop_reason
                    # Counts here are running totals, so they replace rather than add.
                    usage = Usage(
                        input_tokens=event.usage.input_tokens or usage.input_tokens,
                        output_tokens=event.usage.output_tokens,
                    )
        cut_off = stop_reason == "max_tokens"
        for part in parts.values():
            if part.kind == "tool_use":
                part.input = arguments_object(
                    "".join(part.json),
                    tool=part.name,
                    cut_off=cut_off,
                    provider=AnthropicProvider.label,
                    model=request.model,
                )
        ordered = [parts[i] for i in sorted(parts)]
        return _response(request, ordered, usage, cut_off=cut_off)


@dataclass
class _Part:
    """One content block of the answer, whole or as the stream builds it."""

    kind: Literal["text", "tool_use"]
    text: list[str] = field(default_factory=list)
    id: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    json: list[str] = field(default_factory=list)


def _response(
    request: ModelRequest, parts: list[_Part], usage: Usage, *, cut_off: bool
) -> ModelResponse:
    text = "".join(t for p in parts if p.kind == "text" for t in p.text)
    uses = [p for p in parts if p.kind == "tool_use"]
    structured = None
    if request.output_schema is not None:
        output = next((p for p in uses if p.name == request.output_name), None)
        if output is None:
            hint = " (the answer was cut off at max_tokens)" if cut_off else ""
            raise ModelBehaviorError(
                f"Anthropic answered without the '{request.output_name}' output{hint}",
                provider=AnthropicProvider.label,
                model=request.model,
            )
        structured = output.input
        uses = [p for p in uses if p is not output]
    return ModelResponse(
        text=text,
        tool_calls=[ToolCall(id=p.id, name=p.name, arguments=p.input) for p in uses],
        structured=structured,
        usage=usage,
        cut_off=cut_off,
    )


def _messages(request: ModelRequest) -> list[MessageParam]:
    # Anthropic wants one user turn holding every result for the assistant turn before it,
    # so consecutive messages of the same role become one.
    turns: list[tuple[Literal["user", "assistant"], list[Block]]] = []
    for m in request.messages:
        role, blocks = _blocks(m)
        if not blocks:
            continue  # Anthropic rejects empty content
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return [_turn(role, blocks) for role, blocks in turns]


def _turn(role: Literal["user", "assistant"], blocks: list[Block]) -> MessageParam:
    if role == "user":
        return {"role": "user", "content": blocks}
    return {"role": "assistant", "content": blocks}


def _blocks(m: Message) -> tuple[Literal["user", "assistant"], list[Block]]:
    text: list[Block] = [{"type": "text", "text": m.content}] if m.content else []
    match m.role:
        case "user":
            return "user", text
        case "assistant":
            uses: list[Block] = [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in m.tool_calls
            ]
            return "assistant", text + uses
        case "tool":
            if m.tool_call_id is None:
                raise PermanentModelError("a tool result without the id of its call cannot be sent")
            result: ToolResultBlockParam = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": as_data(m),
            }
            return "user", [result]
        case _:
            assert_never(m.role)


def _tools(request: ModelRequest) -> list[ToolParam]:
    tools: list[ToolParam] = [
        {"name": t.name, "description": t.description, "input_schema": portable(t.parameters)}
        for t in request.tools
    ]
    if request.output_schema is not None:
        tools.append(
            {
                "name": request.output_name,
                "description": "Give your answer by calling this tool with it.",
                "input_schema": portable(request.output_schema),
            }
        )
    return tools


def _tool_choice(
    request: ModelRequest,
) -> ToolChoiceToolParam | ToolChoiceAnyParam | anthropic.Omit:
    if request.output_schema is not None:
        return {"type": "tool", "name": request.output_name}
    if request.require_tool and request.tools:
        return {"type": "any"}
    return anthropic.omit


def _translate(exc: anthropic.APIError, model: str) -> ModelError:
    """Sort an SDK error into worth-retrying or not, keeping what a person needs to know."""
    label = AnthropicProvider.label
    if isinstance(exc, anthropic.APITimeoutError):
        return status.timed_out(label, model)
    if isinstance(exc, anthropic.APIConnectionError):
        return status.unreachable(label, model, exc.message)
    if not isinstance(exc, anthropic.APIStatusError):
        return TransientModelError(
            f"Anthropic sent an answer that could not be read: {exc.message}",
            provider=label,
            model=model,
        )
    kind, detail = exc.type, exc.api_message or ""
    if exc.status_code < 400:
        # An error event in a stream the server had already accepted (its status is 200):
        # the request was fine, the server gave up on this answer.
        reason = "is overloaded" if kind == "overloaded_error" else "stopped answering"
        return TransientModelError(
            f"Anthropic {reason} ({kind or 'error in stream'}){': ' + detail if detail else ''}",
            provider=label,
            model=model,
        )
    return status.from_status(
        exc.status_code,
        label=label,
        model=model,
        detail=detail,
        retry_after=parse_retry_after(exc.response.headers),
    )

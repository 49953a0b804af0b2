"""OpenAI (and any OpenAI-compatible server) through the Chat Completions API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, assert_never

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall
from openai.types.shared_params import ResponseFormatJSONSchema

from agents.errors import (
    ModelBehaviorError,
    ModelError,
    PermanentModelError,
    TransientModelError,
)
from agents.messages import Message, ModelRequest, ModelResponse, ToolCall, Usage
from agents.providers.base import TextSink
from agents.retry import parse_retry_after

NOT_AN_ANSWER = "the model server answered with {what} instead of a completion"

# Local OpenAI-compatible servers usually need no key, but the SDK will not start without one.
_NO_KEY = "not-needed"


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float = 60.0) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key or _NO_KEY,
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
        except openai.APIError as exc:
            raise _translate(exc) from exc
        except json.JSONDecodeError as exc:
            raise TransientModelError(NOT_AN_ANSWER.format(what="broken JSON")) from exc

    async def _create(self, request: ModelRequest) -> ModelResponse:
        completion = await self._client.chat.completions.create(
            model=request.model,
            messages=_messages(request),
            tools=_tools(request) or openai.omit,
            response_format=_response_format(request),
            max_completion_tokens=request.max_tokens,
        )
        if not isinstance(completion, openai.types.chat.ChatCompletion):
            # A proxy's error page with status 200: the SDK hands back the text as it came.
            raise TransientModelError(NOT_AN_ANSWER.format(what="a page of text"))
        if not completion.choices:
            raise ModelBehaviorError("OpenAI answered without a message")
        choice = completion.choices[0]
        message = choice.message
        if message.refusal:
            raise ModelBehaviorError(f"OpenAI refused to answer: {message.refusal}")
        calls = [
            _PartialCall(call.id, call.function.name, call.function.arguments)
            for call in message.tool_calls or []
            if call.type == "function"
        ]
        return _response(
            request,
            text=message.content or "",
            calls=calls,
            usage=_usage(completion.usage),
            cut_off=choice.finish_reason == "length",
        )

    async def _stream(self, request: ModelRequest, on_text: TextSink) -> ModelResponse:
        stream = await self._client.chat.completions.create(
            model=request.model,
            messages=_messages(request),
            tools=_tools(request) or openai.omit,
            response_format=_response_format(request),
            max_completion_tokens=request.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        # Structured output arrives as JSON text, which is for Baton to read, not for people;
        # Anthropic sends it as a tool call and never streams it either.
        show = request.output_schema is None
        text: list[str] = []
        refusal: list[str] = []
        calls: dict[int, _PartialCall] = {}
        usage = Usage()
        finish_reason: str | None = None
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:  # only the last chunk has it
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    refusal.append(choice.delta.refusal or "")
                    if choice.delta.content:
                        text.append(choice.delta.content)
                        if show:
                            await on_text(choice.delta.content)
                    _add_fragments(calls, choice.delta.tool_calls or [])
        if any(refusal):
            raise ModelBehaviorError(f"OpenAI refused to answer: {''.join(refusal)}")
        return _response(
            request,
            text="".join(text),
            calls=[calls[i] for i in sorted(calls)],
            usage=usage,
            cut_off=finish_reason == "length",
        )


@dataclass
class _PartialCall:
    """A tool call as the stream builds it: the id and name come once, arguments in pieces."""

    id: str = ""
    name: str = ""
    arguments: str = ""


def _add_fragments(calls: dict[int, _PartialCall], fragments: list[ChoiceDeltaToolCall]) -> None:
    for fragment in fragments:
        call = calls.setdefault(fragment.index, _PartialCall())
        call.id = fragment.id or call.id
        if fragment.function is not None:
            # Some compatible servers repeat the name in every fragment; it is never split.
            call.name = fragment.function.name or call.name
            call.arguments += fragment.function.arguments or ""


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()  # some compatible servers do not count tokens
    return Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)


def _response(
    request: ModelRequest, *, text: str, calls: list[_PartialCall], usage: Usage, cut_off: bool
) -> ModelResponse:
    hint = " (the answer was cut off at max_tokens)" if cut_off else ""
    tool_calls = [
        ToolCall(
            id=c.id,
            name=c.name,
            arguments=_json_object(c.arguments, f"arguments for '{c.name}'", hint),
        )
        for c in calls
    ]
    structured = None
    if request.output_schema is not None:
        structured = _json_object(text, f"'{request.output_name}' output", hint, empty_ok=False)
    return ModelResponse(text=text, tool_calls=tool_calls, structured=structured, usage=usage)


def _json_object(raw: str, what: str, hint: str, *, empty_ok: bool = True) -> dict[str, Any]:
    if not raw.strip() and empty_ok:
        return {}  # a tool without parameters may be called with no arguments at all
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelBehaviorError(
            f"OpenAI returned {what} that is not valid JSON{hint}: {exc}"
        ) from exc
    if not isinstance(value, dict):
        raise ModelBehaviorError(f"OpenAI returned {what} that is not a JSON object{hint}")
    return value


def _messages(request: ModelRequest) -> list[ChatCompletionMessageParam]:
    out: list[ChatCompletionMessageParam] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    out.extend(_message(m) for m in request.messages)
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
                "content": m.content or None,
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
            return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
        case _:
            assert_never(m.role)


def _tools(request: ModelRequest) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in request.tools
    ]


def _response_format(request: ModelRequest) -> ResponseFormatJSONSchema | openai.Omit:
    if request.output_schema is None:
        return openai.omit
    return {
        "type": "json_schema",
        "json_schema": {"name": request.output_name, "schema": request.output_schema},
    }


def _translate(exc: openai.APIError) -> ModelError:
    """Sort an SDK error into worth-retrying or not, in words a person understands."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientModelError("OpenAI did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return TransientModelError(f"could not reach OpenAI: {exc.message}")
    if not isinstance(exc, openai.APIStatusError):
        # An error event in the middle of a stream: the server gave up on this answer.
        return TransientModelError(f"OpenAI stopped answering: {exc.message}")
    status, detail = exc.status_code, _detail(exc)
    if exc.code == "insufficient_quota":
        return PermanentModelError(f"the OpenAI account has run out of credit ({status}){detail}")
    if status == 429:
        return TransientModelError(
            f"OpenAI is rate limiting requests ({status}){detail}",
            retry_after=parse_retry_after(exc.response.headers),
        )
    if status >= 500 or status in (408, 409):
        return TransientModelError(f"OpenAI had a temporary problem ({status}){detail}")
    return PermanentModelError(
        f"{_PERMANENT.get(status, 'OpenAI refused the request')} ({status}){detail}"
    )


_PERMANENT = {
    400: "OpenAI rejected the request",
    401: "OpenAI rejected the API key",
    403: "OpenAI refused access to this model or feature",
    404: "OpenAI does not know this model or endpoint",
    422: "OpenAI could not process the request",
}


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message}" if isinstance(message, str) and message else ""

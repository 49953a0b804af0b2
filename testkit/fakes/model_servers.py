"""Local model servers that speak the real OpenAI and Anthropic wire formats, from a script.

Point the official SDK at `server.base_url`, then script what the "model" says:

    async with FakeOpenAI() as server:
        server.queue(Reply(tool_calls=[("get_weather", {"city": "Oslo"})]), Reply(text="Sunny"))
        server.when(lambda seen: "plan" in seen.system, Reply(structured={"tasks": []}))
        ...
        assert server.requests[1].body["messages"][-1]["role"] == "tool"

Each request is answered by the first matching `when` rule, else the next queued reply,
else `server.default`. A reply may be a callable that builds the `Reply` from the request.

`FakeOpenAI(quirks=LLAMA_CPP_PYTHON)` behaves like llama-cpp-python's server instead of
OpenAI: it refuses what that server refuses (with its status and error body) and ignores
what it ignores, so each of Baton's ways around them is tested without the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

from aiohttp import web

from sandbox.local_server import LocalServer


@dataclass
class Reply:
    """What the fake model answers to one request."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # OpenAI: sent as the JSON text of the message. Anthropic: a call of the forced tool.
    structured: dict[str, Any] | None = None
    status: int = 200  # >= 400 answers with the vendor's error body
    error_message: str | None = None
    # The vendor's error code: OpenAI's `error.code`, Anthropic's `error.type`.
    error_code: str | None = None
    retry_after: float | None = None  # sent as a Retry-After header
    # Streamed answers only: an error event of this type ends the stream after the text
    # (OpenAI's `error.type`, e.g. "server_error"; Anthropic's, e.g. "overloaded_error").
    stream_error: str | None = None
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer; released when the server stops
    # Streamed answers only: send this many events, then hang (a model stalled mid-answer).
    hang_after_events: int | None = None
    input_tokens: int = 12
    output_tokens: int = 5
    cut_off: bool = False  # finished at the token limit (finish_reason "length")
    # The ids given to `tool_calls` (some compatible servers reuse `call_0` every turn);
    # by default each call gets a fresh one.
    tool_call_ids: list[str] | None = None
    # Answer with exactly this body instead (a proxy's error page, truncated JSON, …).
    raw_body: str | None = None
    raw_content_type: str = "application/json"


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]
    system: str
    last_user_text: str
    tool_names: list[str]
    received_at: float  # time.monotonic()
    finished_at: float | None = None
    reply: Reply | None = None
    status: int = 200  # what the server answered with

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def overlaps(self, other: Seen) -> bool:
        """True when the two requests were being answered at the same time."""
        end, other_end = self.finished_at or time.monotonic(), other.finished_at or time.monotonic()
        return self.received_at < other_end and other.received_at < end


Answer = Reply | Callable[[Seen], Reply]
Predicate = Callable[[Seen], bool]


class _FakeModelServer(LocalServer):
    path: ClassVar[str]
    url_suffix: ClassVar[str]  # what the vendor's SDK expects after host:port in base_url
    shutdown_timeout = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Seen] = []
        self.default: Answer = Reply(text="ok")
        self.base_url = ""
        self._queue: deque[Answer] = deque()
        self._rules: list[tuple[Predicate, Answer]] = []
        self._stopping = asyncio.Event()
        self._arrived = asyncio.Event()
        self._ids = itertools.count(1)

    def queue(self, *replies: Answer) -> None:
        """Answer the next requests with these replies, in order."""
        self._queue.extend(replies)

    def when(self, predicate: Predicate, reply: Answer) -> None:
        """Answer every request matching `predicate` with `reply`, before the queue."""
        self._rules.append((predicate, reply))

    async def received(self, count: int = 1) -> list[Seen]:
        """Wait until at least `count` requests have arrived; return the first `count`."""
        while len(self.requests) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.requests[:count]

    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        return app

    def _refusal(self, seen: Seen) -> web.Response | None:
        """An error the server answers with before any reply is chosen (its restrictions)."""
        return None

    def _adjusted(self, reply: Reply, seen: Seen) -> Reply:
        """The reply as the server would really send it (what it ignores, what it caps)."""
        return reply

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None
    ) -> Self:
        self._stopping.clear()
        await super().start(host, port, sock=sock)
        self.base_url = self.root + self.url_suffix
        return self

    async def stop(self) -> None:
        self._stopping.set()  # releases hanging and delayed requests
        await super().stop()

    def _choose(self, seen: Seen) -> Reply:
        answer = next((a for p, a in self._rules if p(seen)), None)
        if answer is None:
            answer = self._queue.popleft() if self._queue else self.default
        return answer(seen) if callable(answer) else answer

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = await request.json()
        headers = {name.lower(): value for name, value in request.headers.items()}
        seen = self._seen(body, path=request.path, headers=headers)
        self.requests.append(seen)
        self._arrived.set()
        refused = self._refusal(seen)
        if refused is not None:
            seen.finished_at = time.monotonic()
            seen.status = refused.status
            return refused
        seen.reply = reply = self._adjusted(self._choose(seen), seen)
        try:
            if reply.hang or reply.delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), None if reply.hang else reply.delay
                    )
            if self._stopping.is_set():
                return web.Response(status=503, text="the fake server is stopping")
            seen.status = reply.status
            if reply.raw_body is not None:
                return web.Response(
                    status=reply.status, text=reply.raw_body, content_type=reply.raw_content_type
                )
            if reply.status >= 400:
                wait = (
                    {} if reply.retry_after is None else {"retry-after": f"{reply.retry_after:g}"}
                )
                return web.json_response(self._error_body(reply), status=reply.status, headers=wait)
            if not seen.stream:
                return web.json_response(self._answer(reply, seen, self._next_id()))
            response = web.StreamResponse(
                headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
            )
            await response.prepare(request)
            for i, event in enumerate(self._events(reply, seen, self._next_id())):
                if i == reply.hang_after_events:
                    await self._stopping.wait()
                    return response
                await response.write(event.encode())
            await response.write_eof()
            return response
        finally:
            seen.finished_at = time.monotonic()

    def _next_id(self) -> str:
        return f"{next(self._ids):04d}"

    # What each vendor fills in.
    def _seen(self, body: dict[str, Any], *, path: str, headers: dict[str, str]) -> Seen:
        raise NotImplementedError

    def _answer(self, reply: Reply, seen: Seen, rid: str) -> dict[str, Any]:
        raise NotImplementedError

    def _events(self, reply: Reply, seen: Seen, rid: str) -> Iterator[str]:
        raise NotImplementedError

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        raise NotImplementedError


def _pieces(text: str) -> list[str]:
    """Split text the way a model streams it: a word (and its trailing space) at a time."""
    return [p for p in re.split(r"(?<=\s)", text) if p]


def _json_pieces(value: dict[str, Any], size: int = 7) -> list[str]:
    raw = json.dumps(value)
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def _text_of(content: Any) -> str:
    """The text in a message's content, whether a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


@dataclass(frozen=True)
class Quirks:
    """How an OpenAI-compatible server departs from OpenAI (the defaults are OpenAI's ways)."""

    json_schema: bool = True  # False: response_format json_schema → HTTP 500 validation error
    json_object: bool = True  # False: response_format json_object → HTTP 400
    tools_need_tool_choice: bool = False  # True: tools sent without tool_choice are ignored
    tool_choice: bool = True  # False: any tool_choice → HTTP 400
    null_content: bool = True  # False: an assistant turn with content null → HTTP 500
    max_completion_tokens: bool = True  # False: ignored (only max_tokens caps the answer)
    max_tokens: bool = True  # False: refused, naming it (OpenAI's newest models)
    stream_usage: bool = True  # False: no usage chunk, whatever stream_options asks
    owned_by: str = "openai"  # what GET /v1/models says owns the models


# llama-cpp-python's server 0.3.x with --chat_format chatml-function-calling.
LLAMA_CPP_PYTHON = Quirks(
    json_schema=False,
    tools_need_tool_choice=True,
    null_content=False,
    max_completion_tokens=False,
    stream_usage=False,
    owned_by="me",
)
INVENTED = "Everything looks fine: all systems are up."


def _validation_error(message: str) -> web.Response:
    """How llama-cpp-python answers a request its pydantic models refuse."""
    error = {"message": message, "type": "internal_server_error", "param": None, "code": None}
    return web.json_response({"error": error}, status=500)


class FakeOpenAI(_FakeModelServer):
    """Serves POST /v1/chat/completions and GET /v1/models; `base_url` ends in /v1."""

    path = "/v1/chat/completions"
    url_suffix = "/v1"

    def __init__(self, *, quirks: Quirks | None = None) -> None:
        super().__init__()
        self.quirks = quirks or Quirks()
        self.model_listings = 0

    def web_app(self) -> web.Application:
        app = super().web_app()
        app.router.add_get("/v1/models", self._models)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        self.model_listings += 1
        model = {"id": "local-model", "object": "model", "owned_by": self.quirks.owned_by}
        return web.json_response({"object": "list", "data": [model]})

    def _refusal(self, seen: Seen) -> web.Response | None:
        q, body = self.quirks, seen.body
        kind = (body.get("response_format") or {}).get("type")
        if kind == "json_schema" and not q.json_schema:
            return _validation_error(
                "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
                "  Input should be 'text' or 'json_object' [type=literal_error, "
                "input_value='json_schema', input_type=str]"
            )
        if kind == "json_object" and not q.json_object:
            return web.json_response(self._error_body(Reply(status=400, error_message=(
                "Invalid parameter: 'response_format' of type 'json_object' is not supported."
            ))), status=400)  # fmt: skip
        if "max_tokens" in body and not q.max_tokens:
            return web.json_response(self._error_body(Reply(status=400, error_message=(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead."
            ))), status=400)  # fmt: skip
        if "tool_choice" in body and not q.tool_choice:
            return web.json_response(self._error_body(Reply(status=400, error_message=(
                "Unrecognized request argument supplied: tool_choice"
            ))), status=400)  # fmt: skip
        if not q.null_content:
            for i, m in enumerate(body.get("messages", [])):
                if m.get("role") == "assistant" and m.get("content", "") is None:
                    return _validation_error(
                        f"1 validation error for CreateChatCompletionRequest\nmessages.{i}."
                        "content\n  Input should be a valid string [type=string_type, "
                        "input_value=None, input_type=NoneType]"
                    )
        return None

    def _adjusted(self, reply: Reply, seen: Seen) -> Reply:
        q, body = self.quirks, seen.body
        if reply.status >= 400:
            return reply
        if reply.tool_calls and (
            not seen.tool_names or (q.tools_need_tool_choice and "tool_choice" not in body)
        ):
            # No tools reached the model, which answers anyway.
            reply = replace(reply, tool_calls=[], text=reply.text or INVENTED)
        caps = [body.get("max_tokens")]
        if q.max_completion_tokens:
            caps.append(body.get("max_completion_tokens"))
        cap = min((c for c in caps if isinstance(c, int)), default=None)
        if cap is not None and reply.output_tokens > cap:
            words = reply.text.split(" ")[:cap]
            reply = replace(reply, text=" ".join(words), output_tokens=cap, cut_off=True)
        return reply

    def _seen(self, body: dict[str, Any], *, path: str, headers: dict[str, str]) -> Seen:
        messages: list[dict[str, Any]] = body.get("messages", [])
        users = [_text_of(m.get("content")) for m in messages if m.get("role") == "user"]
        return Seen(
            path=path,
            headers=headers,
            body=body,
            system="\n".join(
                _text_of(m.get("content"))
                for m in messages
                if m.get("role") in ("system", "developer")
            ),
            last_user_text=users[-1] if users else "",
            tool_names=[t["function"]["name"] for t in body.get("tools", [])],
            received_at=time.monotonic(),
        )

    @staticmethod
    def _content(reply: Reply) -> str:
        return json.dumps(reply.structured) if reply.structured is not None else reply.text

    @staticmethod
    def _usage(reply: Reply) -> dict[str, int]:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }

    def _answer(self, reply: Reply, seen: Seen, rid: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self._content(reply) or None,
            "refusal": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": reply.tool_call_ids[i] if reply.tool_call_ids else f"call_{rid}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": seen.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish(reply),
                }
            ],
            "usage": self._usage(reply),
        }

    @staticmethod
    def _finish(reply: Reply) -> str:
        return "length" if reply.cut_off else "tool_calls" if reply.tool_calls else "stop"

    def _events(self, reply: Reply, seen: Seen, rid: str) -> Iterator[str]:
        with_usage = bool((seen.body.get("stream_options") or {}).get("include_usage"))
        with_usage = with_usage and self.quirks.stream_usage

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data: dict[str, Any] = {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": seen.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if with_usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in _pieces(self._content(reply)):
            yield chunk({"content": piece})
        if reply.stream_error is not None:
            error = {"message": "The server had an error.", "type": reply.stream_error}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
        for i, (name, args) in enumerate(reply.tool_calls):
            head = {"name": name, "arguments": ""}
            call = {"index": i, "id": f"call_{rid}_{i}", "type": "function", "function": head}
            yield chunk({"tool_calls": [call]})
            for piece in _json_pieces(args):
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        yield chunk({}, self._finish(reply))
        if with_usage:
            last = {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": seen.model,
                "choices": [],
                "usage": self._usage(reply),
            }
            yield f"data: {json.dumps(last)}\n\n"
        yield "data: [DONE]\n\n"

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        kind, code, message = _OPENAI_ERRORS.get(
            reply.status, ("server_error", None, "The server had an error processing your request.")
        )
        return {
            "error": {
                "message": reply.error_message or message,
                "type": kind,
                "param": None,
                "code": reply.error_code or code,
            }
        }


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Access denied."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
}


class FakeAnthropic(_FakeModelServer):
    """Serves POST /v1/messages; `base_url` is the bare host, as the SDK expects."""

    path = "/v1/messages"
    url_suffix = ""

    def _seen(self, body: dict[str, Any], *, path: str, headers: dict[str, str]) -> Seen:
        messages: list[dict[str, Any]] = body.get("messages", [])
        users = [
            text
            for m in messages
            if m.get("role") == "user" and (text := _text_of(m.get("content")))
        ]
        return Seen(
            path=path,
            headers=headers,
            body=body,
            system=_text_of(body.get("system", "")),
            last_user_text=users[-1] if users else "",
            tool_names=[t["name"] for t in body.get("tools", [])],
            received_at=time.monotonic(),
        )

    @staticmethod
    def _blocks(reply: Reply, seen: Seen, rid: str) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        calls = list(reply.tool_calls)
        if reply.structured is not None:
            forced = (seen.body.get("tool_choice") or {}).get("name", "result")
            calls.append((forced, reply.structured))
        for i, (name, args) in enumerate(calls):
            blocks.append(
                {"type": "tool_use", "id": f"toolu_{rid}_{i}", "name": name, "input": args}
            )
        return blocks

    def _message(self, reply: Reply, seen: Seen, rid: str) -> dict[str, Any]:
        return {
            "id": f"msg_{rid}",
            "type": "message",
            "role": "assistant",
            "model": seen.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }

    def _answer(self, reply: Reply, seen: Seen, rid: str) -> dict[str, Any]:
        blocks = self._blocks(reply, seen, rid)
        uses_tool = any(b["type"] == "tool_use" for b in blocks)
        return {
            **self._message(reply, seen, rid),
            "content": blocks,
            "stop_reason": "tool_use" if uses_tool else "end_turn",
        }

    def _events(self, reply: Reply, seen: Seen, rid: str) -> Iterator[str]:
        usage = {"input_tokens": reply.input_tokens, "output_tokens": 1}
        yield _sse(
            {
                "type": "message_start",
                "message": {**self._message(reply, seen, rid), "usage": usage},
            }
        )
        yield _sse({"type": "ping"})
        blocks = self._blocks(reply, seen, rid)
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                yield from _text_block_events(index, block["text"])
            else:
                yield from _tool_use_block_events(index, block)
            if reply.stream_error is not None:
                error = {"type": reply.stream_error, "message": "The stream failed."}
                yield _sse({"type": "error", "error": error})
                return
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        yield _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            }
        )
        yield _sse({"type": "message_stop"})

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        kind, message = _ANTHROPIC_ERRORS.get(reply.status, ("api_error", "Internal server error"))
        return {
            "type": "error",
            "error": {"type": reply.error_code or kind, "message": reply.error_message or message},
            "request_id": f"req_{self._next_id()}",
        }


def _sse(data: dict[str, Any]) -> str:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"


def _text_block_events(index: int, text: str) -> Iterator[str]:
    start = {"type": "text", "text": ""}
    yield _sse({"type": "content_block_start", "index": index, "content_block": start})
    for piece in _pieces(text):
        delta = {"type": "text_delta", "text": piece}
        yield _sse({"type": "content_block_delta", "index": index, "delta": delta})
    yield _sse({"type": "content_block_stop", "index": index})


def _tool_use_block_events(index: int, block: dict[str, Any]) -> Iterator[str]:
    start = {**block, "input": {}}  # the input comes in the deltas, as JSON text in pieces
    yield _sse({"type": "content_block_start", "index": index, "content_block": start})
    for piece in ["", *_json_pieces(block["input"])]:
        delta = {"type": "input_json_delta", "partial_json": piece}
        yield _sse({"type": "content_block_delta", "index": index, "delta": delta})
    yield _sse({"type": "content_block_stop", "index": index})


_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    529: ("overloaded_error", "Overloaded"),
}

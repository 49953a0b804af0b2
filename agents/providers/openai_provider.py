"""OpenAI (and any OpenAI-compatible server) through the Chat Completions API.

What each request may use comes from `capabilities`: a feature the endpoint is not known
to support is tried, and when the server refuses it, it is remembered as unsupported and
the request goes again without it (json_schema → json_object → the schema in the prompt).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import openai
from openai.types import CompletionUsage
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from agents.errors import (
    Failure,
    ModelBehaviorError,
    ModelError,
    PermanentModelError,
    TransientModelError,
)
from agents.messages import ModelRequest, ModelResponse, ToolCall, Usage
from agents.providers import openai_wire as wire
from agents.providers import status
from agents.providers.base import TextSink
from agents.providers.capabilities import (
    PRESETS,
    CapabilityMemory,
    CompatSettings,
    Feature,
    preset_for_models,
)
from agents.providers.openai_wire import Shape
from agents.providers.structured import arguments_object, find_object
from agents.retry import parse_retry_after

log = logging.getLogger(__name__)

NOT_AN_ANSWER = "the model server answered with {what} instead of a completion"

# Local OpenAI-compatible servers usually need no key, but the SDK will not start without one.
_NO_KEY = "not-needed"
# A 500 that is the server's request validation failing: the same request fails every time.
_VALIDATION = re.compile(
    r"\bvalidation errors? for\b|Input should be|Field required|Extra inputs are not permitted"
    r"|literal_error|Unsupported (?:value|parameter)|not supported",
    re.IGNORECASE,
)


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        compat: CompatSettings | None = None,
    ) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key or _NO_KEY,
            base_url=base_url,
            max_retries=0,  # agents.retry retries, the same way for every provider
            timeout=timeout,
        )
        host = urlsplit(base_url).netloc if base_url else ""
        self.official = not base_url or host.endswith("api.openai.com")
        self.label = "OpenAI" if self.official else f"the OpenAI-compatible server at {host}"
        self.compat = compat or CompatSettings()
        configured = self.compat.capabilities()
        self.memory = CapabilityMemory(
            configured, preset=PRESETS["openai"] if self.official else None
        )
        self._probed = self.official or self.compat.preset is not None
        self._probing = asyncio.Lock()  # concurrent first requests wait for the one probe
        self.server_kind: str | None = "openai" if self.official else self.compat.preset

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def complete(
        self, request: ModelRequest, *, on_text: TextSink | None = None
    ) -> ModelResponse:
        """Ask the model once; stream text to `on_text` when given."""
        await self._probe()
        # Each refused feature is dropped once, so this ends after at most len(Feature) + 1.
        for _ in range(len(Feature) + 1):
            shape = wire.shape_for(
                request,
                self.memory.of(request.model),
                stream=on_text is not None,
                max_output_tokens=self.compat.max_output_tokens,
                temperature=self.compat.temperature,
            )
            try:
                if on_text is None:
                    response = await self._create(request, shape)
                else:
                    response = await self._stream(request, shape, on_text)
            except openai.APIError as exc:
                error = _translate(exc, self.label, request.model)
                if not self._learn_from(error, exc, shape, request.model):
                    raise error from exc
                continue
            except json.JSONDecodeError as exc:
                raise TransientModelError(
                    NOT_AN_ANSWER.format(what="broken JSON"),
                    provider=self.label,
                    model=request.model,
                ) from exc
            for feature in shape.unconfirmed:
                if feature not in (Feature.MAX_COMPLETION_TOKENS, Feature.STREAM_USAGE):
                    self.memory.learn(request.model, feature, True)
            return response
        raise PermanentModelError(
            f"{self.label} refused every form of the request",
            provider=self.label,
            model=request.model,
        )

    async def _probe(self) -> None:
        """Once: recognise the server by its /models answer, for a preset of capabilities."""
        if self._probed:
            return
        async with self._probing:
            if self._probed:
                return
            try:
                page = await self._client.models.list(timeout=5.0)
                owners = [str(getattr(m, "owned_by", "")) for m in page.data]
            except (openai.APIError, ValueError, TypeError):
                owners = []
            preset = preset_for_models(owners)
            if preset is not None:
                self.server_kind = preset
                self.memory.recognise(PRESETS[preset])
                log.info("%s looks like %s; using what it is known to accept", self.label, preset)
            self._probed = True

    def _learn_from(
        self, error: ModelError, exc: openai.APIError, shape: Shape, model: str
    ) -> bool:
        """After a refusal: True when it was about a feature, now marked unsupported."""
        if not isinstance(error, PermanentModelError) or error.failure != Failure.REFUSED_REQUEST:
            return False
        text = f"{exc.message} {_detail(exc)}"
        feature = wire.culprit(shape, text, validation=bool(_VALIDATION.search(text)))
        if feature is None or self.memory.is_configured(feature):
            return False
        # A refusal naming max_tokens means "use max_completion_tokens"; the rest are dropped.
        supported = feature == Feature.MAX_COMPLETION_TOKENS
        self.memory.learn(model, feature, supported)
        log.warning(
            "%s refused %s for model %s (HTTP %s); %s from now on: %s",
            self.label,
            feature.value,
            model,
            error.status,
            "using it" if supported else "not sending it",
            error,
        )
        return True

    async def _create(self, request: ModelRequest, shape: Shape) -> ModelResponse:
        completion = await self._client.chat.completions.create(
            model=request.model,
            messages=wire.messages(request, shape),
            **wire.parameters(request, shape),
        )
        if not isinstance(completion, openai.types.chat.ChatCompletion):
            # A proxy's error page with status 200: the SDK hands back the text as it came.
            raise TransientModelError(
                NOT_AN_ANSWER.format(what="a page of text"),
                provider=self.label,
                model=request.model,
            )
        if not completion.choices:
            raise ModelBehaviorError(
                f"{self.label} answered without a message", provider=self.label, model=request.model
            )
        choice = completion.choices[0]
        message = choice.message
        if message.refusal:
            raise ModelBehaviorError(
                f"the model refused to answer: {message.refusal}",
                failure=Failure.DECLINED,
                provider=self.label,
                model=request.model,
            )
        calls = [
            _PartialCall(call.id, call.function.name, call.function.arguments)
            for call in message.tool_calls or []
            if call.type == "function"
        ]
        text = message.content or ""
        return self._response(
            request,
            shape,
            text=text,
            calls=calls,
            usage=_usage(completion.usage) or _estimate(request, text, calls),
            cut_off=choice.finish_reason == "length",
        )

    async def _stream(
        self, request: ModelRequest, shape: Shape, on_text: TextSink
    ) -> ModelResponse:
        stream = await self._client.chat.completions.create(
            model=request.model,
            messages=wire.messages(request, shape),
            stream=True,
            **wire.parameters(request, shape),
        )
        # Structured output arrives as JSON text, which is for Baton to read, not for people;
        # Anthropic sends it as a tool call and never streams it either.
        show = request.output_schema is None
        text: list[str] = []
        refusal: list[str] = []
        calls: dict[int, _PartialCall] = {}
        usage: Usage | None = None
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
            raise ModelBehaviorError(
                f"the model refused to answer: {''.join(refusal)}",
                failure=Failure.DECLINED,
                provider=self.label,
                model=request.model,
            )
        ordered = [calls[i] for i in sorted(calls)]
        if finish_reason is None and not text and not ordered:
            # The server began a stream (HTTP 200) and ended it without a word or a reason:
            # it failed part-way, as a 5xx would have said.
            raise TransientModelError(
                "the server ended its stream without an answer",
                failure=Failure.SERVER_ERROR,
                provider=self.label,
                model=request.model,
            )
        if shape.stream_usage:
            # Asked for, and either sent or not: now it is known.
            self.memory.learn(request.model, Feature.STREAM_USAGE, usage is not None)
        return self._response(
            request,
            shape,
            text="".join(text),
            calls=ordered,
            usage=usage or _estimate(request, "".join(text), ordered),
            cut_off=finish_reason == "length",
        )

    def _response(
        self,
        request: ModelRequest,
        shape: Shape,
        *,
        text: str,
        calls: list[_PartialCall],
        usage: Usage,
        cut_off: bool,
    ) -> ModelResponse:
        hint = " (the answer was cut off at max_tokens)" if cut_off else ""
        tool_calls = [
            ToolCall(
                id=c.id or f"call_{i}",
                name=c.name,
                arguments=arguments_object(
                    c.arguments,
                    tool=c.name,
                    cut_off=cut_off,
                    provider=self.label,
                    model=request.model,
                ),
            )
            for i, c in enumerate(calls, start=1)
        ]
        structured = None
        if request.output_schema is not None:
            structured = find_object(text)
            if structured is None:
                what = "prose" if text.strip() and "{" not in text else "no valid JSON object"
                error = ModelBehaviorError(
                    f"{self.label} returned {what} instead of the '{request.output_name}' "
                    f"output (asked as {shape.output}){hint}: {text[:300]!r}",
                    provider=self.label,
                    model=request.model,
                )
                error.usage = usage
                raise error
        return ModelResponse(
            text=text, tool_calls=tool_calls, structured=structured, usage=usage, cut_off=cut_off
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


def _usage(usage: CompletionUsage | None) -> Usage | None:
    if usage is None:
        return None
    return Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)


def _estimate(request: ModelRequest, text: str, calls: list[_PartialCall]) -> Usage:
    """A server that does not count tokens: about four characters a token, rather than zero."""
    sent = len(request.system) + sum(
        len(m.content) + sum(len(json.dumps(c.arguments)) for c in m.tool_calls)
        for m in request.messages
    )
    received = len(text) + sum(len(c.arguments) for c in calls)
    return Usage(input_tokens=-(-sent // 4), output_tokens=-(-received // 4))


def _translate(exc: openai.APIError, label: str, model: str) -> ModelError:
    """Sort an SDK error into worth-retrying or not, keeping what a person needs to know."""
    if isinstance(exc, openai.APITimeoutError):
        return status.timed_out(label, model)
    if isinstance(exc, openai.APIConnectionError):
        return status.unreachable(label, model, exc.message)
    if not isinstance(exc, openai.APIStatusError):
        # An error event in the middle of a stream: the server gave up on this answer.
        return TransientModelError(
            f"{label} stopped answering: {exc.message}", provider=label, model=model
        )
    code, detail = exc.status_code, _detail(exc)
    shown = f" ({code}){': ' + detail if detail else ''}"
    if exc.code == "insufficient_quota":
        return PermanentModelError(
            f"the {label} account has run out of credit{shown}",
            failure=Failure.NO_CREDIT,
            provider=label,
            model=model,
            status=code,
        )
    if code >= 500 and _VALIDATION.search(detail or exc.message):
        # The server's own validation refused the request: sending it again changes nothing.
        return PermanentModelError(
            f"{label} refused the request{shown}",
            failure=Failure.REFUSED_REQUEST,
            provider=label,
            model=model,
            status=code,
        )
    return status.from_status(
        code,
        label=label,
        model=model,
        detail=detail,
        retry_after=parse_retry_after(exc.response.headers),
    )


def _detail(exc: openai.APIStatusError | openai.APIError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""

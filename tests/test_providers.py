"""The OpenAI and Anthropic providers, run with the real SDKs against local fake servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from agents.errors import (
    ModelBehaviorError,
    PermanentModelError,
    TransientModelError,
)
from agents.messages import Message, ModelRequest, ModelResponse, ToolSchema, Usage
from agents.providers.anthropic_provider import AnthropicProvider
from agents.providers.openai_provider import OpenAIProvider
from agents.providers.structured import arguments_object
from agents.retry import RetryPolicy, call_with_retries
from testkit.fakes import FakeAnthropic, FakeOpenAI, Reply

Vendor = Literal["openai", "anthropic"]

WEATHER = ToolSchema(
    name="get_weather",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"tasks": {"type": "array", "items": {"type": "string"}}},
    "required": ["tasks"],
}
FAST = RetryPolicy(base_delay=0.001, max_delay=0.01)


@dataclass
class Harness:
    server: FakeOpenAI | FakeAnthropic
    provider: OpenAIProvider | AnthropicProvider


@asynccontextmanager
async def running(vendor: Vendor, *, client_timeout: float = 5.0) -> AsyncIterator[Harness]:
    server = FakeOpenAI() if vendor == "openai" else FakeAnthropic()
    async with server:
        provider = (
            OpenAIProvider(api_key="sk-test", base_url=server.base_url, timeout=client_timeout)
            if vendor == "openai"
            else AnthropicProvider(
                api_key="sk-ant-test", base_url=server.base_url, timeout=client_timeout
            )
        )
        try:
            yield Harness(server, provider)
        finally:
            await provider.aclose()


@pytest.fixture(params=["openai", "anthropic"])
async def vendor(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with running(request.param) as harness:
        yield harness


@pytest.fixture
async def openai_vendor() -> AsyncIterator[Harness]:
    async with running("openai") as harness:
        yield harness


@pytest.fixture
async def anthropic_vendor() -> AsyncIterator[Harness]:
    async with running("anthropic") as harness:
        yield harness


def ask(text: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model="test-model",
        system="You are a helpful specialist.",
        messages=[Message(role="user", content=text)],
        **kwargs,
    )


def without_ids(response: ModelResponse) -> dict[str, Any]:
    """The response minus tool call ids, which the server numbers per request."""
    return response.model_dump(exclude={"tool_calls": {"__all__": {"id"}}})


# Answers


async def test_text_answer_comes_back_with_token_usage(vendor: Harness) -> None:
    vendor.server.queue(Reply(text="Hello from the model", input_tokens=21, output_tokens=4))

    response = await vendor.provider.complete(ask("Say hello"))

    assert response.text == "Hello from the model"
    assert response.tool_calls == []
    assert response.usage == Usage(input_tokens=21, output_tokens=4)
    seen = vendor.server.requests[0]
    assert (seen.model, seen.system, seen.last_user_text) == (
        "test-model",
        "You are a helpful specialist.",
        "Say hello",
    )


async def test_api_key_reaches_the_server(vendor: Harness) -> None:
    await vendor.provider.complete(ask("Hi"))

    headers = vendor.server.requests[0].headers
    key = "sk-test" if isinstance(vendor.server, FakeOpenAI) else "sk-ant-test"
    # Anthropic's SDK has sent the key as x-api-key and, lately, as a bearer token.
    assert key in (
        headers.get("x-api-key"),
        headers.get("authorization", "").removeprefix("Bearer "),
    )


async def test_openai_tool_call_round_trip_uses_chat_completions_format(
    openai_vendor: Harness,
) -> None:
    server, provider = openai_vendor.server, openai_vendor.provider
    server.queue(Reply(tool_calls=[("get_weather", {"city": "Oslo"})]), Reply(text="Sunny, 12°C"))
    request = ask("Weather in Oslo?", tools=[WEATHER])

    first = await provider.complete(request)
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Oslo"})
    assert server.requests[0].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER.parameters,
            },
        }
    ]

    follow_up = request.model_copy(
        update={
            "messages": [
                *request.messages,
                Message(role="assistant", tool_calls=first.tool_calls),
                Message(role="tool", tool_call_id=call.id, name=call.name, content="12°C, sunny"),
            ]
        }
    )
    second = await provider.complete(follow_up)

    assert second.text == "Sunny, 12°C"
    sent = server.requests[1].body["messages"]
    assert sent[0] == {"role": "system", "content": "You are a helpful specialist."}
    assert server.requests[0].body["tool_choice"] == "auto"  # some servers ignore tools without it
    assert sent[-2] == {
        "role": "assistant",
        "content": "",  # a string: some servers refuse null beside tool calls
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    # The result travels delimited, as data rather than instructions.
    assert sent[-1] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": '<tool_result tool="get_weather">\n12°C, sunny\n</tool_result>',
    }


async def test_anthropic_tool_call_round_trip_uses_messages_format(
    anthropic_vendor: Harness,
) -> None:
    server, provider = anthropic_vendor.server, anthropic_vendor.provider
    server.queue(
        Reply(
            text="Checking both.",
            tool_calls=[("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"})],
        ),
        Reply(text="Oslo 12°C, Rome 24°C"),
    )
    request = ask("Weather in Oslo and Rome?", tools=[WEATHER])

    first = await provider.complete(request)
    oslo, rome = first.tool_calls
    assert first.text == "Checking both."
    assert [c.arguments for c in first.tool_calls] == [{"city": "Oslo"}, {"city": "Rome"}]
    assert server.requests[0].body["system"] == "You are a helpful specialist."
    assert server.requests[0].body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER.parameters,
        }
    ]

    follow_up = request.model_copy(
        update={
            "messages": [
                *request.messages,
                Message(role="assistant", content=first.text, tool_calls=first.tool_calls),
                Message(role="tool", tool_call_id=oslo.id, name=oslo.name, content="12°C"),
                Message(role="tool", tool_call_id=rome.id, name=rome.name, content="24°C"),
            ]
        }
    )
    second = await provider.complete(follow_up)

    assert second.text == "Oslo 12°C, Rome 24°C"
    sent = server.requests[1].body["messages"]
    assert sent[-2] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": oslo.id, "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": rome.id, "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    # Both results travel in the one user turn that follows the tool calls.
    assert sent[-1] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": oslo.id,
                "content": '<tool_result tool="get_weather">\n12°C\n</tool_result>',
            },
            {
                "type": "tool_result",
                "tool_use_id": rome.id,
                "content": '<tool_result tool="get_weather">\n24°C\n</tool_result>',
            },
        ],
    }


async def test_structured_output_is_parsed(vendor: Harness) -> None:
    vendor.server.queue(Reply(structured={"tasks": ["research", "write"]}))

    response = await vendor.provider.complete(
        ask("Plan it", output_schema=PLAN_SCHEMA, output_name="plan")
    )

    assert response.structured == {"tasks": ["research", "write"]}
    assert response.tool_calls == []
    body = vendor.server.requests[0].body
    if isinstance(vendor.server, FakeOpenAI):
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "plan", "schema": PLAN_SCHEMA},
        }
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "plan"}
        assert {"name": "plan", "input_schema": PLAN_SCHEMA}.items() <= body["tools"][-1].items()


async def test_structured_output_that_is_not_json_is_a_behavior_error(vendor: Harness) -> None:
    vendor.server.queue(Reply(text="Sure! Here is the plan: research, then write."))

    with pytest.raises(ModelBehaviorError, match="plan"):
        await vendor.provider.complete(
            ask("Plan it", output_schema=PLAN_SCHEMA, output_name="plan")
        )


# Streaming


async def test_streamed_text_arrives_in_order_and_matches_the_plain_answer(
    vendor: Harness,
) -> None:
    vendor.server.default = Reply(
        text="The quick brown fox jumps.", input_tokens=9, output_tokens=6
    )
    deltas: list[str] = []

    async def sink(delta: str) -> None:
        deltas.append(delta)

    plain = await vendor.provider.complete(ask("Tell me"))
    streamed = await vendor.provider.complete(ask("Tell me"), on_text=sink)

    assert deltas == ["The ", "quick ", "brown ", "fox ", "jumps."]
    assert streamed == plain
    assert [seen.stream for seen in vendor.server.requests] == [False, True]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(
            text="Looking.",
            tool_calls=[
                ("get_weather", {"city": "Oslo", "units": {"temperature": "C", "wind": "m/s"}}),
                ("get_time", {"zone": "Europe/Oslo"}),
            ],
        ),
        Reply(structured={"tasks": ["a", "b", "c"], "notes": {"why": "streamed in pieces"}}),
    ],
    ids=["tool_calls", "structured"],
)
async def test_streamed_tool_calls_and_structured_output_are_assembled(
    vendor: Harness, reply: Reply
) -> None:
    vendor.server.default = reply
    request = ask("Go", tools=[WEATHER], output_schema=None if reply.tool_calls else PLAN_SCHEMA)

    async def ignore(delta: str) -> None:
        pass

    plain = await vendor.provider.complete(request)
    streamed = await vendor.provider.complete(request, on_text=ignore)

    assert without_ids(streamed) == without_ids(plain)
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == reply.tool_calls
    assert streamed.structured == reply.structured
    assert len({c.id for c in streamed.tool_calls}) == len(reply.tool_calls)


async def test_structured_output_is_not_streamed_to_people(vendor: Harness) -> None:
    vendor.server.queue(Reply(structured={"tasks": ["a"]}))
    deltas: list[str] = []

    async def sink(delta: str) -> None:
        deltas.append(delta)

    response = await vendor.provider.complete(ask("Plan", output_schema=PLAN_SCHEMA), on_text=sink)

    assert response.structured == {"tasks": ["a"]}
    assert deltas == []


async def test_error_in_the_middle_of_a_stream_is_transient(vendor: Harness) -> None:
    error = "server_error" if isinstance(vendor.server, FakeOpenAI) else "overloaded_error"
    vendor.server.queue(Reply(text="Half an answer", stream_error=error))
    deltas: list[str] = []

    async def sink(delta: str) -> None:
        deltas.append(delta)

    with pytest.raises(TransientModelError, match=r"stopped answering|overloaded"):
        await vendor.provider.complete(ask("Hi"), on_text=sink)

    assert "".join(deltas) == "Half an answer"


# Errors


async def test_rate_limit_is_transient_and_carries_retry_after(vendor: Harness) -> None:
    vendor.server.queue(Reply(status=429, retry_after=1.5))

    with pytest.raises(TransientModelError, match="rate limiting") as caught:
        await vendor.provider.complete(ask("Hi"))

    assert caught.value.retry_after == 1.5


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_are_transient(vendor: Harness, status: int) -> None:
    vendor.server.queue(Reply(status=status))

    with pytest.raises(TransientModelError, match=f"\\({status}\\)"):
        await vendor.provider.complete(ask("Hi"))


async def test_rejected_api_key_is_permanent_and_says_so(vendor: Harness) -> None:
    vendor.server.queue(Reply(status=401))

    with pytest.raises(PermanentModelError, match=r"rejected the API key \(401\)"):
        await vendor.provider.complete(ask("Hi"))


async def test_unknown_model_is_permanent_and_says_so(vendor: Harness) -> None:
    vendor.server.queue(Reply(status=404, error_message="model: nonexistent"))

    with pytest.raises(PermanentModelError, match=r"does not know this model.*nonexistent"):
        await vendor.provider.complete(ask("Hi"))


async def test_openai_out_of_credit_is_permanent_not_a_rate_limit(openai_vendor: Harness) -> None:
    openai_vendor.server.queue(Reply(status=429, error_code="insufficient_quota"))

    with pytest.raises(PermanentModelError, match="run out of credit"):
        await openai_vendor.provider.complete(ask("Hi"))


@pytest.mark.parametrize("reply", [Reply(delay=5.0), Reply(hang=True)], ids=["slow", "hanging"])
@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_answer_slower_than_the_timeout_is_transient(name: Vendor, reply: Reply) -> None:
    async with running(name, client_timeout=0.2) as harness:
        harness.server.queue(reply)

        with pytest.raises(TransientModelError, match="did not answer in time"):
            await harness.provider.complete(ask("Hi"))


async def test_unreachable_server_is_transient() -> None:
    server = FakeOpenAI()
    await server.start()
    base_url = server.base_url
    await server.stop()
    provider = OpenAIProvider(api_key="sk-test", base_url=base_url, timeout=1.0)

    try:
        with pytest.raises(TransientModelError, match="could not reach the OpenAI-compatible"):
            await provider.complete(ask("Hi"))
    finally:
        await provider.aclose()


# Retries


async def test_two_errors_then_an_answer_succeeds_on_the_third_attempt(vendor: Harness) -> None:
    vendor.server.queue(Reply(status=500), Reply(status=429, retry_after=0.05), Reply(text="done"))
    retries: list[tuple[int, float]] = []

    async def on_retry(attempt: int, error: TransientModelError, delay: float) -> None:
        retries.append((attempt, delay))

    response = await call_with_retries(
        lambda: vendor.provider.complete(ask("Hi")), policy=FAST, on_retry=on_retry
    )

    assert response.text == "done"
    assert len(vendor.server.requests) == 3
    assert [attempt for attempt, _ in retries] == [1, 2]
    assert retries[1][1] >= 0.05  # the server's Retry-After beats the shorter backoff


async def test_permanent_error_is_not_retried(vendor: Harness) -> None:
    vendor.server.queue(Reply(status=401), Reply(text="never asked"))

    with pytest.raises(PermanentModelError):
        await call_with_retries(lambda: vendor.provider.complete(ask("Hi")), policy=FAST)

    assert len(vendor.server.requests) == 1


async def test_last_transient_error_is_raised_when_attempts_run_out(vendor: Harness) -> None:
    vendor.server.default = Reply(status=503)

    with pytest.raises(TransientModelError, match="503"):
        await call_with_retries(
            lambda: vendor.provider.complete(ask("Hi")),
            policy=RetryPolicy(max_attempts=3, base_delay=0.001),
        )

    assert len(vendor.server.requests) == 3


async def test_backoff_doubles_up_to_the_maximum_without_jitter() -> None:
    delays: list[float] = []

    async def failing() -> str:
        raise TransientModelError("busy")

    async def on_retry(attempt: int, error: TransientModelError, delay: float) -> None:
        delays.append(delay)

    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.03, jitter=False)
    with pytest.raises(TransientModelError):
        await call_with_retries(failing, policy=policy, on_retry=on_retry)

    assert delays == [0.01, 0.02, 0.03, 0.03]


def test_jittered_backoff_stays_between_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    error = TransientModelError("busy")

    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 8.0)]:
        assert all(0 <= policy.delay(attempt, error) <= ceiling for _ in range(200))


async def test_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    calls = 0

    async def rate_limited() -> str:
        nonlocal calls
        calls += 1
        raise TransientModelError("rate limited", retry_after=3600)

    with pytest.raises(TransientModelError, match="rate limited"):
        await call_with_retries(rate_limited, policy=RetryPolicy(max_retry_after=60))

    assert calls == 1


# The fake servers themselves


async def test_rules_answer_before_the_queue_and_can_read_the_request(vendor: Harness) -> None:
    vendor.server.queue(Reply(text="from the queue"))
    vendor.server.when(
        lambda seen: seen.last_user_text.startswith("Plan"),
        lambda seen: Reply(text=f"planning: {seen.last_user_text} with {seen.tool_names}"),
    )

    planned = await vendor.provider.complete(ask("Plan a launch", tools=[WEATHER]))
    queued = await vendor.provider.complete(ask("Anything else"))
    default = await vendor.provider.complete(ask("And now?"))

    assert planned.text == "planning: Plan a launch with ['get_weather']"
    assert (queued.text, default.text) == ("from the queue", "ok")


async def test_concurrent_requests_are_seen_overlapping(vendor: Harness) -> None:
    vendor.server.default = Reply(text="slowly", delay=0.2)

    await asyncio.gather(vendor.provider.complete(ask("one")), vendor.provider.complete(ask("two")))

    first, second = vendor.server.requests
    assert first.overlaps(second)


async def test_stopping_the_server_releases_a_hanging_request() -> None:
    async with running("anthropic", client_timeout=30.0) as harness:
        harness.server.queue(Reply(hang=True))
        pending = asyncio.create_task(harness.provider.complete(ask("Hi")))
        await harness.server.received(1)

        await harness.server.stop()

        with pytest.raises(TransientModelError):
            await asyncio.wait_for(pending, timeout=2.0)


def test_tool_arguments_that_are_not_one_json_object_say_what_came_instead() -> None:
    def read(raw: str, *, cut_off: bool = False) -> dict[str, Any]:
        return arguments_object(
            raw, tool="http_check", cut_off=cut_off, provider="OpenAI", model="gpt-4o"
        )

    assert read("") == {}  # a tool without parameters
    assert read('{"url": "https://example.com"}') == {"url": "https://example.com"}
    with pytest.raises(ModelBehaviorError, match=r"'http_check' that are not valid JSON \(the"):
        read('{"url": "https://exa', cut_off=True)
    with pytest.raises(ModelBehaviorError, match="not a JSON object"):
        read('["https://example.com"]')

"""OpenAI-compatible servers that are not OpenAI: what Baton sends them, and how it adapts.

Each server here is the fake with one of a real server's restrictions switched on, so every
way around them is tested in milliseconds; tests/test_real_model.py runs the real one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from agents.errors import Failure, ModelBehaviorError, PermanentModelError
from agents.messages import Message, ModelRequest, ToolSchema
from agents.providers.capabilities import CompatSettings, parse_compat
from agents.providers.openai_provider import OpenAIProvider
from agents.providers.openai_wire import ONE_CALL_PER_TURN
from agents.retry import RetryPolicy, call_with_retries
from agents.tools.http_check import HttpCheck
from orchestration.plan import Plan
from testkit.fakes import INVENTED, LLAMA_CPP_PYTHON, FakeOpenAI, Quirks, Reply

PLAN = {"title": "t", "tasks": [{"id": "a", "agent": "writer", "instruction": "write"}]}
FOUR_TRIES = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01)
CHECK = HttpCheck().schema()
OTHER = ToolSchema(name="other", description="x", parameters={"type": "object"})


@asynccontextmanager
async def serving(
    quirks: Quirks | None = None, compat: str = ""
) -> AsyncIterator[tuple[FakeOpenAI, OpenAIProvider]]:
    async with FakeOpenAI(quirks=quirks) as server:
        provider = OpenAIProvider(
            api_key="",
            base_url=server.base_url,
            timeout=5.0,
            compat=parse_compat(compat) if compat else None,
        )
        try:
            yield server, provider
        finally:
            await provider.aclose()


def plan_request(**kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model="local-model",
        system="Plan it.",
        messages=[Message(role="user", content="Request: write a haiku")],
        output_schema=Plan.model_json_schema(),
        output_name="plan",
        **kwargs,
    )


def ask(**kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model="local-model",
        system="You check sites.",
        messages=[Message(role="user", content="check https://example.com")],
        **kwargs,
    )


def formats(server: FakeOpenAI) -> list[str | None]:
    return [(s.body.get("response_format") or {}).get("type") for s in server.requests]


# --- structured output ------------------------------------------------------------------


async def test_a_server_refusing_json_schema_is_asked_for_json_object_and_that_is_remembered() -> (
    None
):
    async with serving(Quirks(json_schema=False)) as (server, provider):
        server.default = Reply(structured=PLAN)

        first = await provider.complete(plan_request())
        second = await provider.complete(plan_request())

    assert first.structured == PLAN and second.structured == PLAN
    assert formats(server) == ["json_schema", "json_object", "json_object"]
    assert [s.status for s in server.requests] == [500, 200, 200]
    # Without the schema on the wire, it travels in the prompt.
    assert '"tasks"' in server.requests[1].system and "JSON object" in server.requests[1].system


async def test_a_recognised_llama_cpp_server_is_never_sent_what_it_refuses() -> None:
    async with serving(LLAMA_CPP_PYTHON) as (server, provider):
        server.default = Reply(structured=PLAN)

        for _ in range(3):
            await provider.complete(plan_request())

    assert server.model_listings == 1  # probed once
    assert formats(server) == ["json_object"] * 3
    assert {s.status for s in server.requests} == {200}
    # Its own extension holds the answer to the schema, so the prompt need not carry it.
    sent = server.requests[0]
    assert sent.body["response_format"]["schema"]["required"] == ["tasks"]
    assert '"tasks"' not in sent.system


async def test_an_unknown_server_taking_json_object_gets_the_schema_in_the_prompt() -> None:
    async with serving(Quirks(json_schema=False, owned_by="someone")) as (server, provider):
        server.default = Reply(structured=PLAN)

        await provider.complete(plan_request())

    assert server.requests[1].body["response_format"] == {"type": "json_object"}
    assert '"tasks"' in server.requests[1].system


async def test_without_json_modes_the_json_is_found_in_the_text() -> None:
    async with serving(Quirks(json_schema=False, json_object=False)) as (server, provider):
        server.default = Reply(text=f"Sure! Here is the plan:\n```json\n{json.dumps(PLAN)}\n```")

        response = await provider.complete(plan_request())
        again = await provider.complete(plan_request())

    assert response.structured == PLAN and again.structured == PLAN
    assert formats(server) == ["json_schema", "json_object", None, None]


async def test_prose_instead_of_json_is_a_behaviour_error_the_caller_can_repair() -> None:
    async with serving(LLAMA_CPP_PYTHON) as (server, provider):
        server.default = Reply(text="I would start by writing the haiku, then review it.")

        with pytest.raises(ModelBehaviorError) as caught:
            await provider.complete(plan_request())

    assert caught.value.failure == Failure.BAD_OUTPUT and "prose" in str(caught.value)


async def test_a_refusal_of_what_was_configured_is_permanent_and_not_retried() -> None:
    async with serving(Quirks(json_schema=False), compat="json_schema=true") as (server, provider):
        with pytest.raises(PermanentModelError) as caught:
            await call_with_retries(lambda: provider.complete(plan_request()), policy=FOUR_TRIES)

    assert len(server.requests) == 1
    assert caught.value.failure == Failure.REFUSED_REQUEST and caught.value.status == 500


async def test_schemas_leave_without_constraints_a_grammar_builder_chokes_on() -> None:
    async with serving(Quirks()) as (server, provider):
        await provider.complete(ask(tools=[CHECK]))
        server.default = Reply(structured=PLAN)
        await provider.complete(plan_request())

    sent_tool = server.requests[0].body["tools"][0]["function"]["parameters"]
    sent_plan = server.requests[1].body["response_format"]["json_schema"]["schema"]
    assert CHECK.parameters["properties"]["url"]["maxLength"] == 2048  # pydantic still checks it
    for schema in (sent_tool, sent_plan):
        text = str(schema)
        assert "maxLength" not in text and "minLength" not in text and "$ref" not in text
    assert sent_plan["properties"]["tasks"]["items"]["properties"]["agent"]["type"] == "string"


# --- tools ---------------------------------------------------------------------------------


async def test_tools_go_with_tool_choice_so_servers_that_need_it_use_them() -> None:
    async with serving(Quirks(tools_need_tool_choice=True)) as (server, provider):
        server.default = Reply(tool_calls=[("http_check", {"url": "https://example.com"})])

        response = await provider.complete(ask(tools=[CHECK]))

    assert [c.name for c in response.tool_calls] == ["http_check"]
    assert server.requests[0].body["tool_choice"] == "auto"


async def test_a_task_that_needs_a_tool_names_it() -> None:
    async with serving(Quirks()) as (server, provider):
        await provider.complete(ask(tools=[CHECK], require_tool=True))
        await provider.complete(ask(tools=[CHECK, OTHER], require_tool=True))
        await provider.complete(
            ask(tools=[CHECK, OTHER], require_tool=True, suggested_tool="http_check")
        )

    one, two, three = (s.body["tool_choice"] for s in server.requests)
    assert one == three == {"type": "function", "function": {"name": "http_check"}}
    assert two == "auto"  # "required" is not known to work there, and no tool was suggested


async def test_llama_cpp_gets_tools_only_with_the_call_the_task_still_needs() -> None:
    # Its "auto" ignores max_tokens (a small model then writes until the timeout) and its
    # chat format drops tool results: Baton names each call and hands results back as text.
    async with serving(LLAMA_CPP_PYTHON) as (server, provider):
        server.default = Reply(tool_calls=[("http_check", {"url": "https://example.com"})])
        first = await provider.complete(ask(tools=[CHECK, OTHER], suggested_tool="http_check"))
        [call] = first.tool_calls
        server.default = Reply(text="It is up.")
        done = ask(tools=[CHECK, OTHER]).model_copy(
            update={
                "messages": [
                    *ask().messages,
                    Message(role="assistant", tool_calls=first.tool_calls),
                    Message(role="tool", tool_call_id=call.id, name=call.name, content="200 OK"),
                ]
            }
        )
        second = await provider.complete(done)

    asked, answered = server.requests
    assert asked.body["tool_choice"] == {"type": "function", "function": {"name": "http_check"}}
    assert "tools" not in answered.body and "tool_choice" not in answered.body
    assert answered.body["messages"][-1] == {
        "role": "user",
        "content": 'Result of http_check:\n<tool_result tool="http_check">\n200 OK\n</tool_result>',
    }
    assert second.text == "It is up."


async def test_a_server_refusing_tool_choice_gets_the_tools_without_it() -> None:
    async with serving(Quirks(tool_choice=False)) as (server, provider):
        await provider.complete(ask(tools=[CHECK]))
        await provider.complete(ask(tools=[CHECK]))

    assert ["tool_choice" in s.body for s in server.requests] == [True, False, False]
    assert all("tools" in s.body for s in server.requests)


async def test_with_tool_choice_switched_off_such_a_server_ignores_the_tools() -> None:
    async with serving(Quirks(tools_need_tool_choice=True), compat="tool_choice=false") as (
        server,
        provider,
    ):
        server.default = Reply(tool_calls=[("http_check", {"url": "https://example.com"})])

        response = await provider.complete(ask(tools=[CHECK]))

    assert response.tool_calls == [] and response.text == INVENTED


async def test_a_tool_call_turn_is_sent_with_empty_text_not_null() -> None:
    async with serving(Quirks(null_content=False)) as (server, provider):
        server.queue(Reply(tool_calls=[("http_check", {"url": "https://example.com"})]))
        first = await provider.complete(ask(tools=[CHECK]))
        [call] = first.tool_calls
        follow_up = [
            *ask(tools=[CHECK]).messages,
            Message(role="assistant", tool_calls=first.tool_calls),
            Message(role="tool", tool_call_id=call.id, name=call.name, content="200 in 5 ms"),
        ]

        second = await provider.complete(
            ask(tools=[CHECK]).model_copy(update={"messages": follow_up})
        )

    assert second.text == "ok" and server.requests[1].status == 200
    assert server.requests[1].body["messages"][2]["content"] == ""


async def test_a_server_without_parallel_tool_calls_is_told_one_call_per_reply() -> None:
    async with serving(Quirks(), compat="parallel_tool_calls=false") as (server, provider):
        await provider.complete(ask(tools=[CHECK]))
        await provider.complete(ask())

    assert ONE_CALL_PER_TURN in server.requests[0].system
    assert ONE_CALL_PER_TURN not in server.requests[1].system


# --- token limits and usage -----------------------------------------------------------------


async def test_max_tokens_is_sent_where_max_completion_tokens_is_not_known_to_work() -> None:
    async with serving(LLAMA_CPP_PYTHON) as (server, provider):
        server.default = Reply(text="word " * 713, output_tokens=713)

        capped = await provider.complete(ask(max_tokens=5))

    body = server.requests[0].body
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body
    assert capped.usage.output_tokens == 5


async def test_max_completion_tokens_alone_runs_away_on_a_server_that_ignores_it() -> None:
    # What the issue saw: told max_completion_tokens, llama.cpp wrote 713 tokens for 5.
    async with serving(LLAMA_CPP_PYTHON, compat="max_completion_tokens=true") as (server, provider):
        server.default = Reply(text="word " * 713, output_tokens=713)

        response = await provider.complete(ask(max_tokens=5))

    assert response.usage.output_tokens == 713


async def test_a_server_that_refuses_max_tokens_by_name_gets_max_completion_tokens() -> None:
    async with serving(Quirks(max_tokens=False)) as (server, provider):
        await provider.complete(ask(max_tokens=50))
        await provider.complete(ask(max_tokens=50))

    assert ["max_tokens" in s.body for s in server.requests] == [True, False, False]
    assert [s.body.get("max_completion_tokens") for s in server.requests[1:]] == [50, 50]


async def test_a_ceiling_on_answers_and_a_temperature_go_with_every_request() -> None:
    compat = "max_output_tokens=64,temperature=0"
    async with serving(LLAMA_CPP_PYTHON, compat=compat) as (server, provider):
        await provider.complete(ask(max_tokens=2048))
        await provider.complete(ask(max_tokens=16))

    assert [s.body["max_tokens"] for s in server.requests] == [64, 16]
    assert [s.body["temperature"] for s in server.requests] == [0, 0]


async def test_a_stream_without_usage_is_estimated_and_the_option_not_sent_again() -> None:
    async with serving(Quirks(stream_usage=False)) as (server, provider):
        server.default = Reply(text="sixteen characters " * 4)
        deltas: list[str] = []

        async def sink(delta: str) -> None:
            deltas.append(delta)

        first = await provider.complete(ask(), on_text=sink)
        await provider.complete(ask(), on_text=sink)

    assert first.usage.output_tokens == len("sixteen characters " * 4) // 4
    assert first.usage.input_tokens > 0
    assert ["stream_options" in s.body for s in server.requests] == [True, False]


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("llama-cpp-python", {"preset": "llama-cpp-python"}),
        ("json_schema=false, tool_choice=true", {"json_schema": False, "tool_choice": True}),
        (
            "llama-cpp-python,max_output_tokens=64",
            {"preset": "llama-cpp-python", "max_output_tokens": 64},
        ),
        ("stream_usage=auto", {"stream_usage": None}),
    ],
)
def test_openai_compat_reads_a_preset_and_feature_settings(
    text: str, expected: dict[str, Any]
) -> None:
    assert parse_compat(text).model_dump(exclude_unset=True) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("json_schema=maybe", "use true, false or auto"),
        ("vllm", "preset"),
        ("json_scheme=false", "json_scheme"),
        ("max_output_tokens=0", "max_output_tokens"),
    ],
)
def test_openai_compat_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_compat(text)


def test_the_environment_wins_over_the_catalog_key_by_key() -> None:
    catalog = CompatSettings(preset="llama-cpp-python", json_object=False, max_output_tokens=10)
    merged = parse_compat("json_object=true").over(catalog)

    assert (merged.preset, merged.json_object, merged.max_output_tokens) == (
        "llama-cpp-python",
        True,
        10,
    )
    assert merged.capabilities().json_schema is False  # from the preset


async def test_requests_that_start_together_wait_for_the_one_probe() -> None:
    async with serving(LLAMA_CPP_PYTHON) as (server, provider):
        server.default = Reply(structured=PLAN)

        await asyncio.gather(*(provider.complete(plan_request()) for _ in range(3)))

    assert server.model_listings == 1
    assert formats(server) == ["json_object"] * 3  # none went out before the server was known

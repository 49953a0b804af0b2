"""Traces: a run's spans after the GenAI conventions, without prompt text, exported only on request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agents.retry import RetryPolicy
from agents.telemetry import Telemetry, trace_id_of
from bot import approval_blocks as ui
from orchestration.limits import Limits
from sandbox.web_api import SlackStandIn
from storage import runs
from storage.models import RunStatus
from testkit.databases import Site
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.fakes.otlp_receiver import OtlpReceiver
from testkit.harness import Bot, running_bot
from tests.test_approvals import approval_messages, start_playbook, value_of, write_catalog

CATALOG = """
agents:
  - name: counter
    description: Counts things exactly.
    model: openai:gpt-4.1-mini
    tools: [calculator]
  - name: writer
    description: Writes the summary.
    model: openai:gpt-4.1-mini
"""
# Words that appear only in what people and models say: none may reach a span by default.
REQUEST = "tally the zebra-ledger for the quarterly-walrus"
INSTRUCTION = "Add the zebra-ledger figures"
EXPRESSION = "1234 + 5678"
PLAN = {
    "title": "Count, then write",
    "tasks": [
        {"id": "count", "agent": "counter", "instruction": INSTRUCTION, "depends_on": []},
        {"id": "write", "agent": "writer", "instruction": "Summarise", "depends_on": ["count"]},
    ],
}
SECRETS = ("zebra", "walrus", "1234", "5678", "6912", "marmot-answer", "ibis-summary")


def planner(seen: Seen) -> bool:
    return "Turn the request into a plan" in seen.system


def synthesis(seen: Seen) -> bool:
    return "Write the final answer" in seen.system


def counter(seen: Seen) -> Reply:
    if any(m.get("role") == "tool" for m in seen.body["messages"]):
        return Reply(text="marmot-answer: 6912", input_tokens=30, output_tokens=7)
    return Reply(tool_calls=[("calculator", {"expression": EXPRESSION})], input_tokens=20)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        server.when(planner, Reply(structured=PLAN, input_tokens=100, output_tokens=50))
        server.when(lambda s: s.system.startswith("You are counter,"), counter)
        server.when(lambda s: s.system.startswith("You are writer,"), Reply(text="ibis-summary"))
        server.when(synthesis, Reply(text="marmot-answer and ibis-summary"))
        yield server


def model_bot(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path, telemetry: Telemetry
) -> Any:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(CATALOG)
    return running_bot(
        slack,
        sqlite_url,
        limits=Limits(retry=RetryPolicy(max_attempts=2, base_delay=0.01), task_timeout=10),
        telemetry=telemetry,
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        baton_model="openai:gpt-4.1-mini",
        baton_agents_file=catalog,
    )


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[str]:
    assert parent.context is not None
    return sorted(
        s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    )


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    [found] = [s for s in spans if s.name == name]
    return found


def everything_recorded(spans: list[ReadableSpan]) -> str:
    """Names, attributes, events and statuses of every span, as one text."""
    return json.dumps(
        [
            {
                "name": s.name,
                "attributes": dict(s.attributes or {}),
                "events": [(e.name, dict(e.attributes or {})) for e in s.events],
                "status": s.status.description,
            }
            for s in spans
        ],
        default=str,
    )


async def status_reply(bot: Bot, run_id: str) -> str:
    status, body = await bot.slash(f"status {run_id}")
    assert status == 200 and body is not None
    return json.dumps(body)


async def test_a_run_is_one_trace_of_supervisor_specialists_model_and_tool_calls(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    async with model_bot(
        slack, openai, sqlite_url, tmp_path, Telemetry.create(exporter=exporter, batch=False)
    ) as bot:
        await bot.mention(REQUEST)
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None and run.status == RunStatus.SUCCEEDED
        status = await status_reply(bot, run.id)

    spans = list(exporter.get_finished_spans())
    root = one(spans, "invoke_agent supervisor")
    assert root.parent is None
    assert root.context is not None
    assert {s.context.trace_id for s in spans if s.context} == {root.context.trace_id}
    trace_id = format(root.context.trace_id, "032x")
    assert trace_id_of(run.traceparent) == trace_id
    assert f"trace `{trace_id}`" in status

    assert children(spans, root) == [
        "chat gpt-4.1-mini",  # the plan
        "chat gpt-4.1-mini",  # the answer
        "invoke_agent counter",
        "invoke_agent writer",
    ]
    count, write = one(spans, "invoke_agent counter"), one(spans, "invoke_agent writer")
    assert children(spans, count) == [
        "chat gpt-4.1-mini",
        "chat gpt-4.1-mini",
        "execute_tool calculator",
    ]
    assert children(spans, write) == ["chat gpt-4.1-mini"]

    assert dict(root.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "supervisor",
        "gen_ai.conversation.id": run.id,
        "baton.run.id": run.id,
        "slack.team.id": "T0BATON",
        "slack.channel.id": "C0GENERAL",
        "slack.thread.ts": run.thread_ts,
        "baton.run.status": "succeeded",
    }
    assert count.attributes is not None
    assert count.attributes["gen_ai.agent.name"] == "counter"
    assert count.attributes["baton.task.id"] == "count"
    assert count.attributes["baton.task.status"] == "succeeded"
    model_calls = [s for s in spans if s.name.startswith("chat ")]
    assert all(
        s.attributes is not None
        and s.attributes["gen_ai.operation.name"] == "chat"
        and s.attributes["gen_ai.provider.name"] == "openai"
        and s.attributes["gen_ai.request.model"] == "gpt-4.1-mini"
        for s in model_calls
    )
    tokens = sorted(
        (s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"])
        for s in model_calls
        if s.attributes is not None
    )
    assert tokens == [(12, 5), (12, 5), (20, 5), (30, 7), (100, 50)]
    assert sum(i + o for i, o in tokens) == run.input_tokens + run.output_tokens
    tool = one(spans, "execute_tool calculator")
    [request_with_call] = [s for s in openai.requests if s.body.get("tools")][:1]
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["baton.tool.ok"] is True
    assert request_with_call is not None and tool.attributes["gen_ai.tool.call.id"]

    recorded = everything_recorded(spans)
    assert not [word for word in SECRETS if word in recorded]


async def test_prompts_and_answers_are_in_spans_only_when_capture_is_on(
    slack: SlackStandIn, openai: FakeOpenAI, sqlite_url: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry.create(exporter=exporter, batch=False, capture_content=True)
    async with model_bot(slack, openai, sqlite_url, tmp_path, telemetry) as bot:
        await bot.mention(REQUEST)
        await bot.idle()

    spans = list(exporter.get_finished_spans())
    plan_call = next(
        s
        for s in spans
        if s.name.startswith("chat ")
        and s.attributes is not None
        and s.attributes.get("gen_ai.output.type") == "json"
    )
    assert plan_call.attributes is not None
    messages = json.loads(str(plan_call.attributes["gen_ai.input.messages"]))
    assert messages[0]["role"] == "user"
    assert REQUEST in messages[0]["parts"][0]["content"]
    tool = one(spans, "execute_tool calculator")
    assert tool.attributes is not None
    assert json.loads(str(tool.attributes["gen_ai.tool.call.arguments"])) == {
        "expression": EXPRESSION
    }
    assert "6912" in str(tool.attributes["gen_ai.tool.call.result"])


async def test_a_run_resumed_after_an_approval_continues_its_trace(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(tmp_path),
        telemetry=Telemetry.create(exporter=exporter, batch=False),
    ) as bot:
        run_id = await start_playbook(bot, "announce")
        [message] = approval_messages(slack)
        await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
        await bot.idle()
        status = await status_reply(bot, run_id)

    spans = list(exporter.get_finished_spans())
    first, second = sorted(
        (s for s in spans if s.name == "invoke_agent supervisor"), key=lambda s: s.start_time or 0
    )
    assert first.context is not None and second.context is not None
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert {s.context.trace_id for s in spans if s.context} == {first.context.trace_id}
    assert first.attributes is not None and first.attributes["baton.run.status"] == "waiting"
    assert second.attributes is not None and second.attributes["baton.run.status"] == "succeeded"
    asked, performed = sorted(
        (s for s in spans if s.name == "invoke_agent announcer"), key=lambda s: s.start_time or 0
    )
    assert asked.parent is not None and asked.parent.span_id == first.context.span_id
    assert performed.parent is not None and performed.parent.span_id == second.context.span_id
    # Before the decision the model asked for the call; only after it was the tool run.
    assert asked.attributes is not None and asked.attributes["baton.task.status"] == "waiting"
    assert children(spans, asked) == ["chat rules"]
    assert performed.attributes is not None
    assert performed.attributes["baton.task.status"] == "succeeded"
    assert children(spans, performed) == ["chat rules", "execute_tool post_message"]
    assert f"trace `{format(first.context.trace_id, '032x')}`" in status


async def test_spans_reach_an_otlp_http_collector_when_an_endpoint_is_set(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with (
        OtlpReceiver() as collector,
        running_bot(slack, sqlite_url, otel_exporter_otlp_endpoint=collector.root) as bot,
    ):
        await bot.mention(f"is {site.url('/ok')} up?")
        await bot.idle()
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")

    # Closing the bot exported what was still queued (the collector stopped after it).
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert collector.requests >= 1 and set(collector.content_types) == {"application/x-protobuf"}
    names = sorted(s.name for s in collector.spans)
    assert "invoke_agent supervisor" in names and "execute_tool http_check" in names
    root = next(s for s in collector.spans if s.name == "invoke_agent supervisor")
    assert root.trace_id == trace_id_of(run.traceparent)
    assert root.resource["service.name"] == "baton"
    assert root.attributes["baton.run.id"] == run.id
    assert root.attributes["slack.team.id"] == "T0BATON"
    assert {s.trace_id for s in collector.spans} == {root.trace_id}
    assert site.url("/ok") not in json.dumps([s.attributes for s in collector.spans])


async def test_without_an_endpoint_no_span_leaves_the_process(
    slack: SlackStandIn, sqlite_url: str, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with OtlpReceiver() as collector:
        # The exporter's own variable is not enough: Baton exports only with the base endpoint.
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.root}/v1/traces")
        async with running_bot(slack, sqlite_url) as bot:
            await bot.mention(f"is {site.url('/ok')} up?")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None
            status = await status_reply(bot, run.id)

    assert collector.requests == 0
    trace_id = trace_id_of(run.traceparent)
    assert trace_id is not None and f"trace `{trace_id}`" in status


async def test_a_failed_model_call_marks_its_spans_with_the_error_type_and_not_its_message(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    async with FakeOpenAI() as openai:
        openai.when(planner, Reply(structured=PLAN))
        openai.when(lambda s: s.system.startswith("You are counter,"), counter)
        # The server's message quotes the prompt: it may reach the bot's log, never a span.
        openai.when(
            lambda s: s.system.startswith("You are writer,"),
            Reply(status=400, error_message="cannot summarise the quarterly-walrus"),
        )
        openai.when(synthesis, Reply(text="marmot-answer"))
        async with model_bot(
            slack, openai, sqlite_url, tmp_path, Telemetry.create(exporter=exporter, batch=False)
        ) as bot:
            await bot.mention(REQUEST)
            await bot.idle()

    spans = list(exporter.get_finished_spans())
    write = one(spans, "invoke_agent writer")
    [call] = children(spans, write)
    [call_span] = [s for s in spans if s.name == call and s.parent == write.context]
    assert call_span.status.status_code is StatusCode.ERROR
    assert call_span.attributes is not None
    error_type = call_span.attributes["error.type"]
    assert isinstance(error_type, str)
    assert error_type == call_span.status.description
    assert error_type.endswith("Error") and " " not in error_type
    assert write.status.status_code is StatusCode.ERROR
    assert write.attributes is not None and write.attributes["baton.task.status"] == "failed"
    # The spans that ended well are not marked.
    count = one(spans, "invoke_agent counter")
    assert count.status.status_code is StatusCode.UNSET
    assert "error.type" not in (count.attributes or {})
    assert not [word for word in SECRETS if word in everything_recorded(spans)]

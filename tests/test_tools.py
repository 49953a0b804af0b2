"""The tools specialists call, against real local HTTP servers and a tiny Slack stand-in."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel, ValidationError

from agents.errors import ToolError
from agents.runner import first_prompt
from agents.tools.base import Scope, ToolContext
from agents.tools.calculator import Calculator, CalculatorArgs
from agents.tools.http_check import HttpCheck, HttpCheckArgs
from agents.tools.json_metric import JsonMetric, JsonMetricArgs
from agents.tools.netguard import _GuardedResolver, check_url
from agents.tools.post_message import PostMessage, PostMessageArgs
from agents.tools.registry import ALL_TOOLS, tool_names
from agents.tools.slack_history import SlackHistory, SlackHistoryArgs
from agents.tools.webhook import WebhookArgs, WebhookPost

DOCUMENT: dict[str, Any] = {"data": {"items": [{"value": 42}, {"value": 7}], "status": "ok"}}


@dataclass
class Site:
    base: str
    port: int
    received: list[dict[str, Any]] = field(default_factory=list)

    def ctx(self, **changes: Any) -> ToolContext:
        options: dict[str, Any] = {"http_allow_hosts": frozenset({f"127.0.0.1:{self.port}"})}
        options.update(changes)
        return ToolContext(run_id="run-1", task_id="task-1", **options)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    routes = web.RouteTableDef()
    state = Site(base="", port=0)

    @routes.get("/ok")
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="<h1>All systems Operational</h1>", content_type="text/html")

    @routes.get("/down")
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    @routes.get("/moved")
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    @routes.get("/to-localhost")
    async def to_localhost(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{state.port}/ok")

    @routes.get("/to-metadata")
    async def to_metadata(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    @routes.get("/loop")
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    @routes.get("/stats.json")
    async def stats(request: web.Request) -> web.Response:
        return web.json_response(DOCUMENT)

    @routes.get("/not-json")
    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>")

    @routes.post("/hook")
    async def hook(request: web.Request) -> web.Response:
        state.received.append({"headers": dict(request.headers), "body": await request.json()})
        return web.json_response({"accepted": True}, status=202)

    @routes.post("/hook-broken")
    async def hook_broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{state.port}"
    yield state
    await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- http_check ---------------------------------------------------------------------------


async def test_site_that_answers_200_is_up_with_latency(site: Site) -> None:
    result = await HttpCheck().run(HttpCheckArgs(url=f"{site.base}/ok"), site.ctx())

    assert result.ok
    assert result.data["status"] == 200
    assert isinstance(result.data["latency_ms"], int)
    assert result.summary.startswith(f"{site.base}/ok → 200 in ")
    assert "\n" not in result.summary


async def test_keyword_present_is_found_ignoring_case(site: Site) -> None:
    args = HttpCheckArgs(url=f"{site.base}/ok", keyword="operational")

    result = await HttpCheck().run(args, site.ctx())

    assert result.ok
    assert result.data["keyword_found"] is True
    assert result.summary.endswith("'operational' found")


async def test_keyword_absent_fails_the_check(site: Site) -> None:
    args = HttpCheckArgs(url=f"{site.base}/ok", keyword="degraded")

    result = await HttpCheck().run(args, site.ctx())

    assert not result.ok
    assert result.data["keyword_found"] is False
    assert "'degraded' NOT found" in result.summary


async def test_503_is_a_failed_check_not_an_error(site: Site) -> None:
    result = await HttpCheck().run(HttpCheckArgs(url=f"{site.base}/down"), site.ctx())

    assert not result.ok
    assert result.data["status"] == 503
    assert "503" in result.summary and "expected 2xx/3xx" in result.summary


async def test_expected_status_makes_a_503_pass(site: Site) -> None:
    args = HttpCheckArgs(url=f"{site.base}/down", expect_status=503)

    assert (await HttpCheck().run(args, site.ctx())).ok


async def test_closed_port_is_reported_down(site: Site) -> None:
    port = closed_port()
    ctx = site.ctx(http_allow_hosts=frozenset({"127.0.0.1"}))

    result = await HttpCheck().run(HttpCheckArgs(url=f"http://127.0.0.1:{port}/"), ctx)

    assert not result.ok
    assert result.summary == f"http://127.0.0.1:{port}/ → DOWN: connection refused"
    assert result.data["status"] is None


async def test_slow_site_times_out_as_down(site: Site) -> None:
    result = await HttpCheck().run(
        HttpCheckArgs(url=f"{site.base}/slow"), site.ctx(http_timeout=0.2)
    )

    assert not result.ok
    assert "DOWN: no answer within 0.2 s" in result.summary


async def test_redirect_on_the_same_allowed_host_is_followed(site: Site) -> None:
    result = await HttpCheck().run(HttpCheckArgs(url=f"{site.base}/moved"), site.ctx())

    assert result.ok
    assert result.data["final_url"] == f"{site.base}/ok"
    assert result.data["redirects"] == 1


async def test_redirect_to_a_loopback_host_not_allowlisted_is_refused(site: Site) -> None:
    with pytest.raises(ToolError) as refused:
        await HttpCheck().run(HttpCheckArgs(url=f"{site.base}/to-localhost"), site.ctx())

    # localhost may resolve to ::1 first; either way the loopback address is named.
    assert re.fullmatch(
        r"Refused to follow a redirect from 127\.0\.0\.1: localhost resolves to "
        r"(127\.0\.0\.1|::1), a loopback address; add localhost to http_allow_hosts to allow it",
        str(refused.value),
    )


async def test_redirect_to_cloud_metadata_address_is_refused(site: Site) -> None:
    with pytest.raises(ToolError, match=r"169\.254\.169\.254 is a link-local address"):
        await HttpCheck().run(HttpCheckArgs(url=f"{site.base}/to-metadata"), site.ctx())


async def test_endless_redirects_stop_after_five(site: Site) -> None:
    with pytest.raises(ToolError, match="Stopped after 5 redirects"):
        await HttpCheck().run(HttpCheckArgs(url=f"{site.base}/loop"), site.ctx())


async def test_loopback_site_is_refused_without_allowlist(site: Site) -> None:
    with pytest.raises(ToolError) as refused:
        await HttpCheck().run(
            HttpCheckArgs(url=f"{site.base}/ok"), site.ctx(http_allow_hosts=frozenset())
        )

    assert str(refused.value) == (
        "127.0.0.1 is a loopback address; add it to http_allow_hosts to allow it"
    )


# --- the SSRF guard -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://localhost:8080/admin", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:9000/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00::1]/", "private"),
        ("http://[2002:c0a8:101::1]/", "private"),  # 6to4 wrapping 192.168.1.1
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "private"),
        ("http://0x7f.1/", "loopback"),  # an old numeric spelling of 127.0.0.1
    ],
)
async def test_non_public_addresses_are_refused_without_allowlist(url: str, kind: str) -> None:
    with pytest.raises(ToolError) as refused:
        await check_url(url, frozenset())

    assert f"a {kind} address" in str(refused.value)
    assert "add" in str(refused.value) and "to http_allow_hosts to allow it" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://10.0.0.5/", "10.0.0.5"),
        ("http://10.0.0.5:8080/", "10.0.0.5:8080"),
        ("http://[::1]:9000/", "[::1]:9000"),
        ("http://LOCALHOST/", "localhost"),
    ],
)
async def test_allowlisted_host_or_host_port_is_let_through(url: str, allowed: str) -> None:
    await check_url(url, frozenset({allowed}))


async def test_allowlist_entry_with_another_port_does_not_count() -> None:
    with pytest.raises(ToolError, match="private address"):
        await check_url("http://10.0.0.5:9999/", frozenset({"10.0.0.5:8080"}))


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/", "https://[2606:4700:4700::1111]/dns-query"]
)
async def test_public_addresses_pass_the_guard(url: str) -> None:
    await check_url(url, frozenset())


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/", "example.com"]
)
async def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(ToolError, match="Only http and https URLs can be fetched"):
        await check_url(url, frozenset())


async def test_addresses_used_at_connect_time_are_checked_too() -> None:
    # The connector resolves again; a name that turned private since the first check is caught.
    resolver = _GuardedResolver(frozenset())
    try:
        with pytest.raises(ToolError, match=r"localhost resolves to .*, a loopback address"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


# --- json_metric --------------------------------------------------------------------------


async def test_json_value_above_threshold_passes(site: Site) -> None:
    args = JsonMetricArgs(
        url=f"{site.base}/stats.json", path="data.items.0.value", op=">", threshold=5
    )

    result = await JsonMetric().run(args, site.ctx())

    assert result.ok
    assert result.data["value"] == 42
    assert result.data["passed"] is True
    assert result.summary == f"data.items.0.value = 42 at {site.base}/stats.json (passes > 5)"


async def test_json_value_failing_threshold_is_not_ok(site: Site) -> None:
    args = JsonMetricArgs(
        url=f"{site.base}/stats.json", path="data.items[1].value", op=">=", threshold=10
    )

    result = await JsonMetric().run(args, site.ctx())

    assert not result.ok
    assert result.data["value"] == 7
    assert "FAILS >= 10" in result.summary


async def test_json_text_value_compares_with_equals(site: Site) -> None:
    args = JsonMetricArgs(
        url=f"{site.base}/stats.json", path="data.status", op="==", threshold="ok"
    )

    assert (await JsonMetric().run(args, site.ctx())).ok


async def test_json_value_without_threshold_is_just_read(site: Site) -> None:
    args = JsonMetricArgs(url=f"{site.base}/stats.json", path="data.items")

    result = await JsonMetric().run(args, site.ctx())

    assert result.ok
    assert result.data["value"] == DOCUMENT["data"]["items"]


async def test_missing_json_key_names_what_is_there(site: Site) -> None:
    args = JsonMetricArgs(url=f"{site.base}/stats.json", path="data.queue.depth")

    with pytest.raises(ToolError) as missing:
        await JsonMetric().run(args, site.ctx())

    assert (
        str(missing.value) == "There is no 'queue' at data of the JSON (keys there: items, status)"
    )


async def test_json_index_past_the_end_says_how_many_items(site: Site) -> None:
    args = JsonMetricArgs(url=f"{site.base}/stats.json", path="data.items.5.value")

    with pytest.raises(ToolError, match=r"data\.items has 2 items, so there is no item 5"):
        await JsonMetric().run(args, site.ctx())


async def test_page_that_is_not_json_is_an_error(site: Site) -> None:
    with pytest.raises(ToolError, match="did not return JSON"):
        await JsonMetric().run(JsonMetricArgs(url=f"{site.base}/not-json"), site.ctx())


async def test_ordering_a_text_value_is_an_error(site: Site) -> None:
    args = JsonMetricArgs(url=f"{site.base}/stats.json", path="data.status", op="<", threshold=3)

    with pytest.raises(ToolError, match=r'data\.status is "ok"; it cannot be compared with <'):
        await JsonMetric().run(args, site.ctx())


def test_operator_without_threshold_is_invalid() -> None:
    with pytest.raises(ValidationError, match="give both op and threshold"):
        JsonMetricArgs(url="https://api.example.com/stats", path="a", op=">")


# --- calculator ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("2 + 2", "4"),
        ("(3 + 4) * 2", "14"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("2 ** 10", "1024"),
        ("2^10", "1024"),
        ("-3 + +5", "2"),
        ("0.1 + 0.2", "0.3"),
        ("15% of 80", "12"),
        ("12 x 7", "84"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(2.567, 2)", "2.57"),
        ("max(1, 5, 3) - min(4, 2)", "3"),
        ("round(2 * pi, 4)", "6.2832"),
    ],
)
async def test_calculator_gives_the_right_answer(expression: str, shown: str) -> None:
    ctx = ToolContext(run_id="run-1", task_id="task-1")

    result = await Calculator().run(CalculatorArgs(expression=expression), ctx)

    assert result.summary == f"{expression} = {shown}"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "is not allowed"),
        ("os", "'os' is not allowed"),
        ("(1).real", "is not allowed"),
        ("abs.__class__", "is not allowed"),
        ("True + 1", "'True' is not allowed"),
        ("'a' * 3", "is not allowed"),
        ("[1, 2]", "is not allowed"),
        ("2 ** 5000", "The exponent 5000 is too large"),
        ("9 ** 999 * 9 ** 999", "more than 1000 digits"),
        ("1e308 * 10", "is too large"),
        ("1 / 0", "divides by zero"),
        ("round(10, -10 ** 9)", "round() takes a whole number of digits"),
        ("2 +", "not an arithmetic expression"),
    ],
)
async def test_calculator_refuses_anything_but_arithmetic(expression: str, message: str) -> None:
    ctx = ToolContext(run_id="run-1", task_id="task-1")

    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await Calculator().run(CalculatorArgs(expression=expression), ctx)


# --- Slack tools --------------------------------------------------------------------------


class FakeSlack:
    """The SlackGateway edge, answering like Slack does: newest message first."""

    def __init__(
        self, messages: list[dict[str, Any]], members: dict[str, set[str]] | None = None
    ) -> None:
        self.messages = messages
        self.members = members or {}
        self.history_calls: list[tuple[str, int]] = []
        self.posted: list[tuple[str, str]] = []

    async def is_member(self, channel: str, user: str) -> bool:
        return user in self.members.get(channel, set())

    async def history(self, channel: str, *, limit: int) -> list[dict[str, Any]]:
        self.history_calls.append((channel, limit))
        return self.messages[:limit]

    async def post_message(self, channel: str, text: str) -> str:
        self.posted.append((channel, text))
        return "1700000100.000200"


async def test_history_lists_messages_oldest_first() -> None:
    slack = FakeSlack(
        [
            {"user": "U2", "text": "rolled back\n  all good now", "ts": "1700000060.000100"},
            {"user": "U1", "text": "deploy failed", "ts": "1700000000.000100"},
        ]
    )
    ctx = ToolContext(
        run_id="run-1", task_id="task-1", slack=slack, scope=Scope(channel="C0123ABCD")
    )

    result = await SlackHistory().run(SlackHistoryArgs(channel="<#C0123ABCD|ops>", limit=10), ctx)

    assert slack.history_calls == [("C0123ABCD", 10)]
    assert result.summary == "Read 2 messages from <#C0123ABCD>"
    assert result.content.splitlines()[1:] == [
        "[2023-11-14 22:13] U1: deploy failed",
        "[2023-11-14 22:14] U2: rolled back all good now",
    ]
    assert result.data == {"channel": "C0123ABCD", "count": 2, "newest_ts": "1700000060.000100"}


async def test_history_without_slack_is_a_clear_error() -> None:
    ctx = ToolContext(run_id="run-1", task_id="task-1")

    with pytest.raises(ToolError, match="Slack is not connected"):
        await SlackHistory().run(SlackHistoryArgs(channel="C0123ABCD"), ctx)


def test_channel_must_be_an_id_or_a_mention() -> None:
    with pytest.raises(ValidationError, match="use a channel id like C0123ABCD"):
        SlackHistoryArgs(channel="general chat")


async def test_post_message_posts_to_the_channel() -> None:
    slack = FakeSlack([])
    ctx = ToolContext(
        run_id="run-1",
        task_id="task-1",
        slack=slack,
        scope=Scope(channel="C0GENERAL", post_channels=frozenset({"C0456EFGH"})),
    )

    result = await PostMessage().run(
        PostMessageArgs(channel="<#C0456EFGH|releases>", text="Deploy finished"), ctx
    )

    assert slack.posted == [("C0456EFGH", "Deploy finished")]
    assert result.summary == "Posted to <#C0456EFGH>: “Deploy finished”"
    assert result.data["ts"] == "1700000100.000200"


async def test_history_of_another_channel_needs_the_catalog_and_the_requesters_membership() -> None:
    slack = FakeSlack([{"user": "U2", "text": "q3 numbers", "ts": "1700000000.000100"}])
    args = SlackHistoryArgs(channel="C0EXEC")
    own = Scope(requester="U0BOB", channel="C0GENERAL")
    widened = Scope(requester="U0BOB", channel="C0GENERAL", read_channels=frozenset({"*"}))

    assert SlackHistory().out_of_reach(args, own) == (
        "this specialist may read only the channel the request was made in, not <#C0EXEC> "
        "(the catalog's `reach.read_channels` can widen that)"
    )
    assert SlackHistory().out_of_reach(args, widened) is None
    with pytest.raises(ToolError, match="not a member of <#C0EXEC>"):
        await SlackHistory().run(
            args, ToolContext(run_id="r", task_id="t", slack=slack, scope=widened)
        )
    assert slack.history_calls == []

    slack.members["C0EXEC"] = {"U0BOB"}
    result = await SlackHistory().run(
        args, ToolContext(run_id="r", task_id="t", slack=slack, scope=widened)
    )
    assert result.summary == "Read 1 message from <#C0EXEC>"


async def test_post_message_targets_only_the_catalogs_channels_whatever_it_is_asked() -> None:
    slack = FakeSlack([], members={"C0RANDOM": {"U0ALICE"}})
    listed = Scope(requester="U0ALICE", channel="C0GENERAL", post_channels=frozenset({"C0OPS"}))
    anywhere_of_theirs = Scope(
        requester="U0ALICE", channel="C0GENERAL", post_channels=frozenset({"*"})
    )

    assert (
        PostMessage().out_of_reach(PostMessageArgs(channel="C0GENERAL", text="x"), listed) is None
    )
    assert PostMessage().out_of_reach(PostMessageArgs(channel="C0OPS", text="x"), listed) is None
    assert PostMessage().out_of_reach(PostMessageArgs(channel="C0EXEC", text="x"), listed) == (
        "this specialist may post only in the request's own channel, <#C0OPS>, not in "
        "<#C0EXEC> (the catalog's `reach.post_channels` lists where it may)"
    )
    with pytest.raises(ToolError, match="may post only"):
        await PostMessage().run(
            PostMessageArgs(channel="C0EXEC", text="x"),
            ToolContext(run_id="r", task_id="t", slack=slack, scope=listed),
        )
    with pytest.raises(ToolError, match="not a member of <#C0EXEC>"):
        await PostMessage().run(
            PostMessageArgs(channel="C0EXEC", text="x"),
            ToolContext(run_id="r", task_id="t", slack=slack, scope=anywhere_of_theirs),
        )
    assert slack.posted == []
    await PostMessage().run(
        PostMessageArgs(channel="C0RANDOM", text="hi"),
        ToolContext(run_id="r", task_id="t", slack=slack, scope=anywhere_of_theirs),
    )
    assert slack.posted == [("C0RANDOM", "hi")]


async def test_webhook_post_calls_only_the_specialists_webhooks(site: Site) -> None:
    ctx = site.ctx(
        webhooks={"deploys": f"{site.base}/hook", "billing": f"{site.base}/hook"},
        scope=Scope(webhooks=frozenset({"deploys"})),
    )

    with pytest.raises(ToolError, match="may not call the webhook 'billing'"):
        await WebhookPost().run(WebhookArgs(name="billing"), ctx)

    assert site.received == []


async def test_post_message_without_slack_is_a_clear_error() -> None:
    ctx = ToolContext(run_id="run-1", task_id="task-1")

    with pytest.raises(ToolError, match="Slack is not connected"):
        await PostMessage().run(PostMessageArgs(channel="C0456EFGH", text="hi"), ctx)


# --- webhook ------------------------------------------------------------------------------


async def test_webhook_sends_json_body_and_idempotency_key(site: Site) -> None:
    ctx = site.ctx(webhooks={"deploys": f"{site.base}/hook"}, idempotency_key="run-1:task-1:call-1")

    result = await WebhookPost().run(
        WebhookArgs(name="deploys", payload={"event": "deploy", "version": "1.2.0"}), ctx
    )

    assert result.ok
    assert result.data == {
        "name": "deploys",
        "status": 202,
        "latency_ms": result.data["latency_ms"],
    }
    assert result.summary.startswith("Webhook 'deploys' → 202 in ")
    [received] = site.received
    assert received["body"] == {"event": "deploy", "version": "1.2.0"}
    assert received["headers"]["Idempotency-Key"] == "run-1:task-1:call-1"
    assert received["headers"]["Content-Type"] == "application/json"


async def test_webhook_error_status_is_not_ok(site: Site) -> None:
    ctx = site.ctx(webhooks={"broken": f"{site.base}/hook-broken"})

    result = await WebhookPost().run(WebhookArgs(name="broken"), ctx)

    assert not result.ok
    assert result.summary.endswith("→ 500 in " + str(result.data["latency_ms"]) + " ms, failed")


async def test_unknown_webhook_name_is_refused(site: Site) -> None:
    ctx = site.ctx(webhooks={"deploys": f"{site.base}/hook"})

    with pytest.raises(ToolError) as refused:
        await WebhookPost().run(WebhookArgs(name="billing"), ctx)

    assert str(refused.value) == "There is no webhook named 'billing' (known: deploys)"
    assert site.received == []


async def test_webhook_on_a_private_address_needs_the_allowlist(site: Site) -> None:
    ctx = site.ctx(webhooks={"deploys": f"{site.base}/hook"}, http_allow_hosts=frozenset())

    with pytest.raises(ToolError, match=r"127\.0\.0\.1 is a loopback address"):
        await WebhookPost().run(WebhookArgs(name="deploys"), ctx)

    assert site.received == []


async def test_unreachable_webhook_is_named_without_its_url() -> None:
    port = closed_port()
    ctx = ToolContext(
        run_id="run-1",
        task_id="task-1",
        webhooks={"deploys": f"http://127.0.0.1:{port}/secret-token"},
        http_allow_hosts=frozenset({"127.0.0.1"}),
    )

    with pytest.raises(ToolError) as failed:
        await WebhookPost().run(WebhookArgs(name="deploys"), ctx)

    assert str(failed.value) == "Webhook 'deploys' could not be reached: connection refused"


def test_webhook_name_is_not_a_url() -> None:
    with pytest.raises(ValidationError):
        WebhookArgs(name="https://evil.example.com/hook")


# --- args_from_text -----------------------------------------------------------------------


def dumped(found: list[BaseModel]) -> list[dict[str, Any]]:
    return [a.model_dump(exclude_none=True) for a in found]


def test_http_check_reads_slack_links_and_a_quoted_keyword() -> None:
    text = (
        "Is <https://status.example.com|status.example.com> up? Check it for “operational”, "
        "and also <https://api.example.com/health?region=eu&amp;deep=1> and https://example.org/."
    )

    assert dumped(HttpCheck().args_from_text(text)) == [
        {"url": "https://status.example.com", "keyword": "operational"},
        {"url": "https://api.example.com/health?region=eu&deep=1", "keyword": "operational"},
        {"url": "https://example.org/", "keyword": "operational"},
    ]


def test_http_check_reads_contains_and_expected_status() -> None:
    text = "make sure https://example.com/login (the login page) contains 'Sign in' and returns 200"

    assert dumped(HttpCheck().args_from_text(text)) == [
        {"url": "https://example.com/login", "keyword": "Sign in", "expect_status": 200}
    ]


def test_http_check_finds_nothing_without_a_url() -> None:
    assert HttpCheck().args_from_text("is the website up?") == []


def test_json_metric_reads_url_path_and_comparison() -> None:
    text = "Alert if <https://api.example.com/stats> path=data.queue.depth is &gt; 100"

    assert dumped(JsonMetric().args_from_text(text)) == [
        {
            "url": "https://api.example.com/stats",
            "path": "data.queue.depth",
            "op": ">",
            "threshold": 100.0,
        }
    ]


def test_json_metric_understands_words_for_comparisons() -> None:
    text = "is the field uptime.percent at https://api.example.com/sla at least 99.9?"

    [args] = JsonMetric().args_from_text(text)

    assert dumped([args]) == [
        {
            "url": "https://api.example.com/sla",
            "path": "uptime.percent",
            "op": ">=",
            "threshold": 99.9,
        }
    ]


def test_calculator_pulls_expressions_out_of_a_sentence() -> None:
    text = "What's 15% of 80, and (3 + 4) * 2? Also 2^10 - we had 3 outages in 2024."

    assert [a.model_dump() for a in Calculator().args_from_text(text)] == [
        {"expression": "15% of 80"},
        {"expression": "(3 + 4) * 2"},
        {"expression": "2^10"},
    ]


def test_slack_history_reads_channel_mentions_and_a_count() -> None:
    text = "summarize the last 50 messages in <#C0123ABCD|ops> and <#C0999ZZZZ>"

    assert dumped(SlackHistory().args_from_text(text)) == [
        {"channel": "C0123ABCD", "limit": 50},
        {"channel": "C0999ZZZZ", "limit": 50},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("post “Deploy finished ✅” to <#C0456EFGH|releases>", "Deploy finished ✅"),
        ("tell <#C0456EFGH|releases> the deploy finished", "the deploy finished"),
        ("post in <#C0456EFGH|releases>: v1.2 is out", "v1.2 is out"),
        ("say that we are done in <#C0456EFGH>", "we are done"),
    ],
)
def test_post_message_reads_channel_and_text(text: str, message: str) -> None:
    assert dumped(PostMessage().args_from_text(text)) == [{"channel": "C0456EFGH", "text": message}]


def test_post_message_needs_a_channel() -> None:
    assert PostMessage().args_from_text("post 'hello' somewhere") == []


def test_webhook_reads_name_and_json_body() -> None:
    text = 'send {"event": "deploy", "version": "1.2"} to the deploys webhook'

    assert dumped(WebhookPost().args_from_text(text)) == [
        {"name": "deploys", "payload": {"event": "deploy", "version": "1.2"}}
    ]


def test_webhook_reads_quoted_text_as_the_body() -> None:
    text = "ping webhook alerts with “disk almost full”"

    assert dumped(WebhookPost().args_from_text(text)) == [
        {"name": "alerts", "payload": {"text": "disk almost full"}}
    ]


# --- registry -----------------------------------------------------------------------------


def test_registry_holds_each_tool_once_with_its_permission_flag() -> None:
    assert tool_names() == {
        "http_check",
        "json_metric",
        "calculator",
        "slack_history",
        "post_message",
        "webhook_post",
    }
    approval = {name for name, tool in ALL_TOOLS.items() if tool.requires_approval}
    assert approval == {"post_message", "webhook_post"}


def test_every_argument_is_described_for_the_model() -> None:
    for tool in ALL_TOOLS.values():
        schema = tool.schema().parameters
        assert json.dumps(schema)  # plain JSON, as providers send it
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


def test_post_message_posts_what_the_task_it_depends_on_wrote() -> None:
    prompt = first_prompt(
        "Post the digest to the channel named in the request.\n\n"
        "The request adds: https://status.example.com <#C0456EFGH|releases>",
        {"digest (writer)": "✅ No problems found.\n• https://status.example.com → 200"},
    )

    assert dumped(PostMessage().args_from_text(prompt)) == [
        {
            "channel": "C0456EFGH",
            "text": "✅ No problems found.\n• https://status.example.com → 200",
        }
    ]


def test_post_message_ignores_channels_mentioned_only_in_earlier_results() -> None:
    prompt = first_prompt(
        "Post the summary to <#C0456EFGH|releases>",
        {"read (channel-reader)": "Read 3 messages from <#C0999ZZZZ>"},
    )

    [args] = PostMessage().args_from_text(prompt)

    assert args.model_dump()["channel"] == "C0456EFGH"

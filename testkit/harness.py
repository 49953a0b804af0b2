"""Drive a real Baton over HTTP, as Slack does: signed requests in, the stand-in's Web API out.

Payloads start from Slack's real samples in tests/slack/payloads and get this test's
channel, user and text filled in.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from agents.telemetry import Telemetry
from bot.app import Baton, create
from bot.config import Settings
from bot.delivery import DeliveryOptions
from bot.progress import ProgressOptions
from bot.transports import web_app
from orchestration.limits import Limits
from sandbox.launch import Sandbox
from sandbox.signing import FORM, JSON_TYPE, signed_headers
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage.clock import REAL, Clock

if TYPE_CHECKING:
    from playwright.async_api import Browser

PAYLOADS = Path(__file__).resolve().parents[1] / "tests" / "slack" / "payloads"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FAST = ProgressOptions(
    streaming=True, stream_interval=0.05, update_interval=0.05, status_interval=0.05
)
# Retries of Slack posts come quickly in tests (the waits are Baton's own, not Slack's).
QUICK_DELIVERY = DeliveryOptions(base_delay=0.05, max_delay=0.5)


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


_serial = iter(range(1, 1_000_000))


@dataclass
class Bot:
    baton: Baton
    url: str
    slack: SlackStandIn
    session: aiohttp.ClientSession

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        retry_num: int | None = None,
        secret: str = SECRET,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        sent = signed_headers(
            secret, body, content_type=content_type, timestamp=timestamp, retry_num=retry_num
        )
        if headers is not None:
            sent = headers
        async with self.session.post(f"{self.url}/slack/events", data=body, headers=sent) as resp:
            await resp.read()
            return resp

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        template: str = "app_mention_event_callback.slack_docs.json",
    ) -> int:
        envelope = sample(template)
        envelope.update(
            team_id=self.slack.workspace.team_id,
            api_app_id="A0BATON",
            event=event,
            event_id=event_id or f"Ev{next(_serial):08d}",
            event_time=int(time.time()),
        )
        for auth in envelope.get("authorizations", []):
            auth.update(
                team_id=self.slack.workspace.team_id,
                user_id=self.slack.workspace.bot.id,
                is_bot=True,
            )
        resp = await self.post(json.dumps(envelope).encode(), JSON_TYPE, retry_num=retry_num)
        return resp.status

    async def mention(
        self,
        text: str,
        *,
        channel: str = "C0GENERAL",
        user: str = "U0ALICE",
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> Message:
        """A person posts `@Baton <text>` (in a thread when `thread_ts`); Slack delivers app_mention."""
        full = f"<@{self.slack.workspace.bot.id}> {text}"
        msg = await self.slack.post_as_user(channel, user, full, thread_ts=thread_ts)
        event = copy.deepcopy(sample("app_mention_event_callback.slack_docs.json")["event"])
        event.update(user=user, text=full, ts=msg.ts, channel=channel, event_ts=msg.ts)
        if thread_ts:
            event["thread_ts"] = thread_ts
        assert await self.event(event, event_id=event_id) == 200
        return msg

    async def say(
        self,
        text: str,
        *,
        channel: str = "C0GENERAL",
        user: str = "U0ALICE",
        thread_ts: str | None = None,
        event_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Message:
        """A person posts in a channel (a thread reply when `thread_ts`); Slack delivers
        `message.channels` to Baton, as it does for every message of a channel it is in."""
        msg = await self.slack.post_as_user(channel, user, text, thread_ts=thread_ts)
        event = copy.deepcopy(
            sample("message_im_in_thread_event_callback.bolt_tests.json")["event"]
        )
        for key in ("user_team", "source_team", "user_profile", "parent_user_id", "thread_ts"):
            event.pop(key, None)
        event.update(
            user=user,
            text=text,
            ts=msg.ts,
            channel=channel,
            event_ts=msg.ts,
            channel_type="channel",
        )
        if thread_ts:
            event["thread_ts"] = thread_ts
        event.update(extra or {})
        template = "message_im_in_thread_event_callback.bolt_tests.json"
        assert await self.event(event, event_id=event_id, template=template) == 200
        return msg

    async def dm(self, text: str, *, user: str = "U0ALICE") -> Message:
        channel = f"D{user[1:]}"
        msg = await self.slack.post_as_user(channel, user, text)
        event = copy.deepcopy(sample("message_im_event_callback.slack_docs.json")["event"])
        event.update(user=user, text=text, ts=msg.ts, channel=channel, event_ts=msg.ts)
        assert await self.event(event, template="message_im_event_callback.slack_docs.json") == 200
        return msg

    async def slash(
        self, text: str, *, user: str = "U0ALICE", channel: str = "C0GENERAL"
    ) -> tuple[int, dict[str, Any] | None]:
        """`/baton <text>`; the HTTP status and Baton's reply to the person: in the ack, or —
        when the ack is empty — what it sent to the command's response URL once its work was
        done (None when there was none)."""
        before = len(self.slack.calls)
        status, ack = await self.slash_ack(text, user=user, channel=channel)
        if ack:
            return status, ack
        await self.idle()
        replies = [
            c.args
            for c in self.slack.calls[before:]
            if c.method == "response_url" and c.args.get("channel") == channel
        ]
        return status, (replies[-1] if replies else None)

    async def command(
        self, text: str, *, user: str = "U0ALICE", channel: str = "C0GENERAL"
    ) -> dict[str, Any]:
        """`/baton <text>` while other work may go on: Baton's reply, from the ack or from
        the command's response URL, as soon as it comes (runs are not waited for)."""
        before = len(self.slack.calls)
        _, ack = await self.slash_ack(text, user=user, channel=channel)
        if ack:
            return ack

        def replied() -> dict[str, Any]:
            found = [
                c.args
                for c in self.slack.calls[before:]
                if c.method == "response_url" and c.args.get("channel") == channel
            ]
            return found[-1] if found else {}

        return await self.slack.wait_for(replied, timeout=20)

    async def slash_ack(
        self, text: str, *, user: str = "U0ALICE", channel: str = "C0GENERAL"
    ) -> tuple[int, dict[str, Any] | None]:
        """`/baton <text>`; the HTTP status and the ack's body, as soon as Slack would have them."""
        from urllib.parse import urlencode

        fields = dict(
            line.split("=", 1)
            for line in (PAYLOADS / "slash_command_body.slack_docs.txt")
            .read_text()
            .strip()
            .split("&")
        )
        fields.update(
            team_id=self.slack.workspace.team_id,
            channel_id=channel,
            user_id=user,
            command="/baton",
            text=text,
            response_url=self.slack.response_url(channel, user),
            trigger_id=self.slack.trigger_id(user),
        )
        body = urlencode(fields).encode()
        headers = signed_headers(SECRET, body, content_type=FORM)
        async with self.session.post(
            f"{self.url}/slack/events", data=body, headers=headers
        ) as resp:
            raw = await resp.text()
            return resp.status, (json.loads(raw) if raw.strip() else None)

    async def click(self, action_id: str, value: str, *, user: str, message: Message) -> int:
        payload = sample("block_actions_button_click.bolt_tests.json")
        payload.update(
            user={"id": user, "username": user.lower(), "team_id": self.slack.workspace.team_id},
            trigger_id=self.slack.trigger_id(user),
            team={"id": self.slack.workspace.team_id},
            api_app_id="A0BATON",
        )
        payload["container"].update(message_ts=message.ts, channel_id=message.channel)
        payload["channel"] = {"id": message.channel}
        payload["message"] = {
            "type": "message",
            "ts": message.ts,
            "text": message.text,
            "blocks": message.blocks or [],
        }
        if message.thread_ts:  # as Slack sends a click on a message in a thread
            payload["container"]["thread_ts"] = message.thread_ts
            payload["message"]["thread_ts"] = message.thread_ts
        payload["actions"] = [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "action_ts": str(time.time()),
            }
        ]
        payload["response_url"] = self.slack.response_url(message.channel, user)
        from sandbox.signing import block_actions_body

        resp = await self.post(block_actions_body(payload), FORM)
        return resp.status

    async def submit(
        self, *, user: str, view: dict[str, Any], values: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        from sandbox.signing import view_submission_body

        payload = sample("view_submission.bolt_tests.json")
        payload["user"] = {
            "id": user,
            "username": user.lower(),
            "team_id": self.slack.workspace.team_id,
        }
        payload["team"] = {"id": self.slack.workspace.team_id}
        payload["view"] = {**payload["view"], **view, "state": {"values": values}}
        body = view_submission_body(payload)
        headers = signed_headers(SECRET, body, content_type=FORM)
        async with self.session.post(
            f"{self.url}/slack/events", data=body, headers=headers
        ) as resp:
            raw = await resp.text()
            return resp.status, (json.loads(raw) if raw.strip() else None)

    async def idle(self) -> None:
        """Wait until every run started so far has finished or is waiting for a person."""
        await self.baton.background.drain()

    def thread(self, msg: Message) -> list[Message]:
        return self.slack.thread(msg.channel, msg.ts)


async def wait_until(check: Callable[[], Any], within: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` (a function or a coroutine function) until it is truthy; its result."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def settings_for(slack: SlackStandIn, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.token,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.api_url,
        "baton_database_url": db_url,
        "baton_http_allow_hosts": ["127.0.0.1"],
        # Test databases are new, as the sandbox's are: made at head on start, whatever the URL.
        "baton_auto_migrate": True,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running_bot(
    slack: SlackStandIn,
    db_url: str,
    *,
    progress: ProgressOptions = FAST,
    limits: Limits | None = None,
    telemetry: Telemetry | None = None,
    delivery: DeliveryOptions = QUICK_DELIVERY,
    clock: Clock = REAL,
    **overrides: Any,
) -> AsyncIterator[Bot]:
    baton = await create(
        settings_for(slack, db_url, **overrides),
        mode="http",
        progress=progress,
        limits=limits,
        telemetry=telemetry,
        delivery=delivery,
        clock=clock,
    )
    runner = web.AppRunner(web_app(baton), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        try:
            yield Bot(baton=baton, url=f"http://127.0.0.1:{port}", slack=slack, session=session)
        finally:
            await baton.background.drain()
            await runner.cleanup()
            await baton.close()


@asynccontextmanager
async def running_sandbox(**overrides: Any) -> AsyncIterator[Sandbox]:
    """`baton sandbox` in this process: stand-in, demo shop, Baton over HTTP, and the page."""
    sandbox = Sandbox(Settings(_env_file=None, **overrides))
    await sandbox.start(port=0)
    try:
        yield sandbox
    finally:
        await sandbox.stop()


CHROMIUM = Path("/usr/bin/chromium")


def chromium_path() -> str:
    """Where Chromium is; a missing browser fails the test with what to install (never skips)."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"The browser tests need Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
        )
    return str(CHROMIUM)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright (its own browser downloads cannot work here)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()

"""Slack's assistant container: a thread's welcome and prompts, its context, its status line.

Everything here runs after the ack. None of it is an answer: the answer and approvals still
come from the outbox. A status that could not be set is logged and left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import assistant_ui as ui
from bot.names import Names
from bot.slack_ops import post_text, slack_error
from storage import approvals, assistant_threads
from storage.db import Database
from storage.models import ApprovalStatus, AssistantThread, Run

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)


def _thread_of(payload: dict[str, Any]) -> tuple[str, str, str, str | None] | None:
    """(DM channel, thread ts, person, channel they look at) of an assistant event."""
    t = payload.get("assistant_thread")
    if not isinstance(t, dict):
        return None
    channel, ts, user = t.get("channel_id"), t.get("thread_ts"), t.get("user_id")
    if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(user, str)):
        return None
    looking = (t.get("context") or {}).get("channel_id")
    return channel, ts, user, looking if isinstance(looking, str) and looking else None


async def started(baton: Baton, payload: dict[str, Any], *, team_id: str | None = None) -> None:
    """A person opened the container: remember the thread, welcome them, suggest prompts."""
    found = _thread_of(payload)
    if found is None:
        log.info("ignored an assistant_thread_started without its thread")
        return
    channel, ts, user, looking = found
    name = await baton.names_for(team_id).channel(looking) if looking else None
    thread = AssistantThread(
        channel_id=channel,
        thread_ts=ts,
        user_id=user,
        context_channel_id=looking,
        context_channel_name=name,
    )
    if not await assistant_threads.start(baton.db, thread):
        return  # Slack delivering the event again: the thread was welcomed
    client = baton.client_for(team_id)
    await post_text(client, channel=channel, thread_ts=ts, text=ui.welcome(baton.catalog))
    try:
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=channel,
            thread_ts=ts,
            title=ui.PROMPTS_TITLE,
            prompts=ui.suggested_prompts(baton.catalog),
        )
    except SlackApiError as e:
        log.warning("could not suggest prompts in %s/%s: %s", channel, ts, slack_error(e))


async def context_changed(
    baton: Baton, payload: dict[str, Any], *, team_id: str | None = None
) -> None:
    """The person moved to another channel with the container open: the planner hears of it."""
    found = _thread_of(payload)
    if found is None:
        return
    channel, ts, user, looking = found
    if looking is None:
        return
    name = await baton.names_for(team_id).channel(looking)
    if not await assistant_threads.look_at(
        baton.db, channel, ts, context_id=looking, context_name=name
    ):
        # A thread opened before Baton knew of threads (or whose start was lost): keep it now.
        await assistant_threads.start(
            baton.db,
            AssistantThread(
                channel_id=channel,
                thread_ts=ts,
                user_id=user,
                context_channel_id=looking,
                context_channel_name=name,
            ),
        )


def planner_context(thread: AssistantThread) -> str | None:
    """What the planner is told about where the person is (a channel it may read)."""
    if not thread.context_channel_id:
        return None
    name = f"#{thread.context_channel_name} " if thread.context_channel_name else ""
    return (
        f"The person is looking at the channel {name}(<#{thread.context_channel_id}>) while "
        "asking; 'this channel' or 'here' means that one."
    )


class StatusLine:
    """A run's status under its assistant thread.

    Changes are coalesced: at most one `setStatus` per interval, showing the newest text (a
    busy run changes it many times a second). Waiting for a person and the end are shown at
    once, and nothing older can overwrite them.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        db: Database,
        names: Names,
        run: Run,
        *,
        interval: float = 1.0,
    ) -> None:
        self.client, self.db, self.names, self.run = client, db, names, run
        self.interval = interval
        self.thread: AssistantThread | None = None
        self._shown: str | None = None
        self._wanted: str | None = None
        self._pending: asyncio.Task[None] | None = None
        self._last = 0.0
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        if self.run.channel_id and self.run.thread_ts and self.run.channel_id.startswith("D"):
            self.thread = await assistant_threads.get(
                self.db, self.run.channel_id, self.run.thread_ts
            )

    @property
    def active(self) -> bool:
        return self.thread is not None

    async def name_thread(self) -> None:
        """The first request names the thread (once, whichever run or process gets here)."""
        if self.thread is None:
            return
        if not await assistant_threads.take_title(
            self.db, self.thread.channel_id, self.thread.thread_ts
        ):
            return
        try:
            await self.client.assistant_threads_setTitle(
                channel_id=self.thread.channel_id,
                thread_ts=self.thread.thread_ts,
                title=ui.thread_title(self.run.request or self.run.playbook or ""),
            )
        except SlackApiError as e:
            log.info("could not name assistant thread of run %s: %s", self.run.id, slack_error(e))

    async def show(self, text: str, *, now: bool = False) -> None:
        """Show `text` soon (the newest wins), or `now`."""
        if self.thread is None:
            return
        self._wanted = text
        if now:
            task, self._pending = self._pending, None
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._send()
        elif self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._send_later())

    async def _send_later(self) -> None:
        # Until the newest text is shown: one that came while a call was on its way found
        # this task still going, and left it to this loop.
        while self._wanted != self._shown:
            wait = self._last + self.interval - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._send()

    async def _send(self) -> None:
        assert self.thread is not None
        async with self._lock:
            text = self._wanted
            if text is None or text == self._shown:
                return
            self._shown = text
            self._last = asyncio.get_running_loop().time()
            try:
                await self.client.assistant_threads_setStatus(
                    channel_id=self.thread.channel_id, thread_ts=self.thread.thread_ts, status=text
                )
            except SlackApiError as e:
                log.info("could not set the status of run %s: %s", self.run.id, slack_error(e))
            except Exception as e:  # a timeout, a connection cut: only the status line is late
                log.info("could not set the status of run %s: %r", self.run.id, e)

    async def waiting(self) -> None:
        """`is waiting for Bob's approval`, named from the run's pending approvals."""
        if self.thread is None:
            return
        people: list[str] = []
        for a in await approvals.for_run(self.db, self.run.id):
            if a.status != ApprovalStatus.PENDING:
                continue
            for who in a.approvers:
                name = (
                    "someone in their group" if who.startswith("S") else await self.names.user(who)
                )
                if name not in people:
                    people.append(name)
        await self.show(ui.waiting_for(people), now=True)

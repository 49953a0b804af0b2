"""The answer as the supervisor writes it, streamed into its own message in the thread.

A preview, never the record: the answer itself is stored with the run and delivered by the
outbox (`bot/delivery.py`), which edits this message into the answer — so a person sees the
text grow and then settle, in one message, and a restart mid-stream neither loses the answer
nor shows it twice (the next drive writes over what the last one left, and the outbox edits
it once). Calls are coalesced: at most one per interval for the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import section
from bot.slack_ops import post_text, slack_error
from storage import runs
from storage.db import Database
from storage.models import Run

log = logging.getLogger(__name__)

# Slack takes at most this much text in one chat.appendStream call.
MAX_APPEND = 12_000
# What an edited preview shows: the end of the text, within a section's 3,000 characters.
SHOWN = 2_800
WRITING = "_Writing the answer…_"


class AnswerPreview:
    def __init__(
        self, client: AsyncWebClient, db: Database, run: Run, *, stream: bool, interval: float
    ) -> None:
        self.client, self.db, self.run = client, db, run
        self.interval = interval
        self.mode = "stream" if stream else "update"
        # A message an earlier drive streamed into: this drive writes over it.
        self.ts: str | None = run.answer_preview_ts
        self._inherited = self.ts is not None
        self.text = ""  # everything written in this drive
        self._unsent = ""  # written since the last append (stream mode)
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None
        self._last = 0.0
        self._gone = False  # Slack refused the message: no more preview, the answer still comes
        self._waiting = False  # the pending flush is only waiting for its turn
        self._finished = False

    async def add(self, text: str) -> None:
        if self._gone or self._finished or not self.run.channel_id:
            return
        self.text += text
        self._unsent += text
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._flush_later())

    async def finish(self) -> None:
        """Stop the stream (its text stays until the outbox edits the message into the answer)."""
        task, self._pending = self._pending, None
        self._finished = True  # nothing more is sent after what is in flight
        if task is not None and not task.done():
            # A wait is cut short; a call in flight is let finish (its message must be known).
            if self._waiting:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        async with self._lock:
            if self.ts is not None and self.mode == "stream" and not self._gone:
                # What was written since the last append ends the stream, in the same call.
                rest, self._unsent = self._unsent[:MAX_APPEND], ""
                try:
                    await self.client.chat_stopStream(
                        channel=self._channel, ts=self.ts, markdown_text=rest or None
                    )
                except Exception as e:  # the outbox's edit stops it if it is still going
                    log.info("answer preview of run %s: stop failed (%r)", self.run.id, e)
                self.mode = "update"

    @property
    def _channel(self) -> str:
        assert self.run.channel_id is not None
        return self.run.channel_id

    async def _flush_later(self) -> None:
        wait = self._last + self.interval - asyncio.get_running_loop().time()
        if wait > 0:
            self._waiting = True
            try:
                await asyncio.sleep(wait)
            finally:
                self._waiting = False
        async with self._lock:
            try:
                await self._flush()
            except SlackApiError as e:
                log.info("answer preview of run %s stopped: %s", self.run.id, slack_error(e))
                self._gone = True
            except Exception as e:  # a timeout, a connection cut: the answer still comes
                log.info("answer preview of run %s stopped: %r", self.run.id, e)
                self._gone = True
        self._last = asyncio.get_running_loop().time()
        if self._unsent and not (self._gone or self._finished):
            self._pending = asyncio.create_task(self._flush_later())

    async def _flush(self) -> None:
        unsent, self._unsent = self._unsent, ""
        if not unsent and not self._inherited:
            return
        if self._inherited:
            # What an earlier drive left (maybe still streaming) is replaced by this drive's text.
            self._inherited = False
            with contextlib.suppress(SlackApiError):
                await self.client.chat_stopStream(channel=self._channel, ts=self.ts or "")
            self.mode = "update"
        if self.ts is None:
            await self._open(unsent)
            return
        if self.mode == "stream":
            try:
                await self.client.chat_appendStream(
                    channel=self._channel,
                    ts=self.ts,
                    chunks=[MarkdownTextChunk(text=unsent[:MAX_APPEND])],
                )
                return
            except SlackApiError as e:
                # The stream ended (Slack closes it after a while): edit the message instead.
                log.info("answer stream of run %s ended (%s)", self.run.id, slack_error(e))
                self.mode = "update"
        await self.client.chat_update(
            channel=self._channel, ts=self.ts, text=self._shown(), blocks=[section(self._shown())]
        )

    async def _open(self, first: str) -> None:
        if self.mode == "stream":
            try:
                resp = await self.client.chat_startStream(
                    channel=self._channel,
                    thread_ts=self.run.thread_ts or "",
                    recipient_team_id=self.run.team_id,
                    recipient_user_id=self.run.user_id,
                    chunks=[MarkdownTextChunk(text=first[:MAX_APPEND])],
                )
                self.ts = str(resp["ts"])
            except SlackApiError as e:
                log.info("answer of run %s not streamed (%s); editing a message", self.run.id, e)
                self.mode = "update"
        if self.ts is None:
            self.ts = await post_text(
                self.client,
                channel=self._channel,
                thread_ts=self.run.thread_ts,
                text=self._shown(),
                blocks=[section(self._shown())],
            )
        if self.ts is not None:
            await runs.set_answer_preview(self.db, self.run.id, self.ts)
        else:
            self._gone = True

    def _shown(self) -> str:
        tail = self.text if len(self.text) <= SHOWN else "…" + self.text[-SHOWN:]
        return f"{WRITING}\n{tail}"

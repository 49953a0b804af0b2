"""Turns one run's events into Slack messages in the request's thread.

Prefers Slack's streaming API: the plan renders as a live task list (`plan_update` and
`task_update` chunks) with a Stop button. Where streaming fails or is switched off, one status
message is edited in place with `chat.update`. Either way updates are coalesced (at most one
Slack call per interval per run) and sent in order.

The task list is one message for the whole run: its ts is stored (`status_message_ts`), and a
run resumed after an approval or a restart — in any process — continues that message (the
stream if it is still open, else by editing it). Approval requests and the answer come from
the outbox (`bot/delivery.py`), so they are posted exactly once whatever happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks.block_elements import UrlSourceElement
from slack_sdk.models.messages.chunk import BlocksChunk, Chunk, PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from agents.tools.extract import urls
from bot import assistant_ui, blocks
from bot.answer_preview import AnswerPreview
from bot.assistant_container import StatusLine
from bot.blocks import RunView, TaskLine
from bot.names import Names
from bot.slack_ops import post_text, slack_error
from bot.text import truncate
from bot.workspaces import DEAD_TOKEN
from orchestration.run_events import (
    AnswerDelta,
    ApprovalDecided,
    ApprovalRequested,
    PlanReady,
    PlanRevised,
    RunAccepted,
    RunEvent,
    RunFinished,
    RunWaiting,
    TaskFinished,
    TaskProgress,
    TaskStarted,
)
from storage import runs
from storage.db import Database
from storage.models import Run

log = logging.getLogger(__name__)

# Slack's task_update statuses.
STREAM_STATUS = {
    "pending": "pending",
    "waiting": "pending",
    "running": "in_progress",
    "succeeded": "complete",
    "failed": "error",
    "skipped": "error",
    "rejected": "error",
    "unverified": "error",
    "cancelled": "error",
}
# Links shown under one task card.
MAX_SOURCES = 5
# chat.update answers these when the message is gone or no longer Baton's to edit.
MESSAGE_GONE = (
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "channel_not_found",
)


# Slack edits one message about once a second at most: the last edit of the task list (its
# final state) keeps this gap after the one before too, where the interval is not shorter.
EDIT_GAP = 1.0


@dataclass(frozen=True)
class ProgressOptions:
    streaming: bool = True
    # Seconds between two Slack calls for one run (appendStream is Tier 4, chat.update Tier 3).
    stream_interval: float = 1.0
    update_interval: float = 1.5
    # Seconds between two assistant.threads.setStatus calls for one run.
    status_interval: float = 1.0


# Delivers the run's outbox (approval requests, the answer) now, in order.
DeliverRun = Callable[[str], Awaitable[None]]
# Starts a task the process keeps track of (see bot/background.py).
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class SlackProgress:
    """The EventSink for one run, shown in its Slack thread."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        db: Database,
        run: Run,
        options: ProgressOptions,
        deliver: DeliverRun,
        spawn: Spawn = asyncio.create_task,
        names: Names | None = None,
    ) -> None:
        self.client = client
        # The status line under an assistant-container thread (inactive elsewhere).
        self.names = names or Names(client)
        self.status = StatusLine(client, db, self.names, run, interval=options.status_interval)
        # Steps in progress: task id -> (agent, what it is doing), for the status line.
        self._running: dict[str, tuple[str, str]] = {}
        self.db = db
        self.run = run
        self.options = options
        self._deliver = deliver
        # Delayed flushes run as their own tasks: the process's background set keeps them,
        # so a shutdown cancels and waits for them as it does for the run itself.
        self._spawn = spawn
        self.view = RunView(run_id=run.id, status=run.status.value)
        can_stream = options.streaming and bool(run.thread_ts)
        # Slack needs a recipient to stream into a channel; DMs and people's requests have one.
        if run.channel_id and not run.channel_id.startswith("D"):
            can_stream = can_stream and bool(run.user_id and run.team_id)
        self.mode = "stream" if can_stream else "update"
        # A run that already has its task list (resumed after an approval or a restart)
        # continues that message: the stream if it is still open, else by editing it.
        self._ts: str | None = run.status_message_ts
        # The list was posted anew once (its message was gone); if that one goes too, the
        # thread keeps what it shows and the answer still comes.
        self._replaced = False
        self._frozen = False
        self._dirty: set[str] = set()
        self._title_dirty = False
        # The answer as the supervisor writes it, in its own message (which the outbox then
        # turns into the answer).
        self.preview = AnswerPreview(
            client,
            db,
            run,
            stream=self.mode == "stream",
            interval=options.stream_interval if self.mode == "stream" else options.update_interval,
        )
        self._lock = asyncio.Lock()
        self._pending_flush: asyncio.Task[None] | None = None
        self._due_flush: asyncio.Task[Any] | None = None  # the pending flush, once its turn came
        self._last_flush = 0.0
        self._loaded = False

    @property
    def channel(self) -> str:
        assert self.run.channel_id is not None
        return self.run.channel_id

    async def publish(self, event: RunEvent) -> None:
        if not self.run.channel_id:
            return
        try:
            await self._apply(event)
        except Exception:
            log.exception(
                "progress for run %s: could not show %s", self.run.id, type(event).__name__
            )

    async def _apply(self, event: RunEvent) -> None:
        await self._load()
        try:
            await self._show_status(event)
        except Exception:
            # The status line is a courtesy: the task list and the answer still go out.
            log.exception("run %s: could not show the assistant status", self.run.id)
        match event:
            case RunAccepted():
                async with self._lock:
                    await self._open()
            case PlanReady(title=title, tasks=tasks, estimate=estimate):
                self.view.title = title
                self.view.estimate = blocks.estimate_text(estimate) if estimate else ""
                self.view.status = "running"
                self.view.tasks = {
                    t.id: TaskLine(id=t.id, agent=t.agent, title=await self.names.readable(t.title))
                    for t in tasks
                }
                self._title_dirty = True
                self._touch(*self.view.tasks)
            case PlanRevised(title=title, tasks=tasks):
                self.view.title = title
                for t in tasks:
                    self.view.tasks[t.id] = TaskLine(id=t.id, agent=t.agent, title=t.title)
                self._title_dirty = True
                self._touch(*(t.id for t in tasks))
            case TaskStarted(task_id=task_id):
                self._set(task_id, status="running", summary="")
            case TaskProgress(task_id=task_id, detail=detail):
                line = self.view.tasks.get(task_id)
                if line is not None:
                    line.details = [*line.details[-2:], detail]
                    self._touch(task_id)
            case TaskFinished(task_id=task_id, status=status, summary=summary, output=output):
                line = self.view.tasks.get(task_id)
                if line is not None and status == "succeeded":
                    line.sources = urls(output)[:MAX_SOURCES]
                self._set(task_id, status=status, summary=summary)
            case ApprovalRequested(task_id=task_id):
                self._set(task_id, status="waiting")
                await self._flush_now()
                await self._deliver(self.run.id)
            case ApprovalDecided(task_id=task_id):
                line = self.view.tasks.get(task_id)
                if line is not None and line.status == "waiting":
                    self._set(task_id, status="pending", summary="decided; resuming")
                await self._deliver(self.run.id)
            case RunWaiting():
                self.view.status = "waiting"
                await self._close(
                    final_note="Waiting for a person's decision (see the buttons below)."
                )
            case RunFinished():
                self.view.status = event.status
                await self._close()
                # The preview stops growing; the outbox puts the answer in its place.
                await self.preview.finish()
                await self._deliver(self.run.id)
            case AnswerDelta(text=text):
                await self.preview.add(text)

    async def _show_status(self, event: RunEvent) -> None:
        """The assistant thread's status line: what the run is doing now, cleared at its end."""
        if not self.status.active:
            return
        match event:
            case RunAccepted():
                await self.status.name_thread()
                await self.status.show(assistant_ui.PLANNING)
            case TaskStarted(task_id=task_id):
                line = self.view.tasks.get(task_id)
                if line is not None:
                    self._running[task_id] = (line.agent, f"working on: {line.title}")
                await self.status.show(assistant_ui.working(list(self._running.values())))
            case TaskProgress(task_id=task_id, detail=detail) if task_id in self._running:
                agent = self._running[task_id][0]
                self._running[task_id] = (agent, assistant_ui.doing(detail))
                await self.status.show(assistant_ui.working(list(self._running.values())))
            case TaskFinished(task_id=task_id):
                self._running.pop(task_id, None)
                if self._running:
                    await self.status.show(assistant_ui.working(list(self._running.values())))
            case RunWaiting():
                await self.status.waiting()
            case RunFinished():
                await self.status.show(assistant_ui.CLEARED, now=True)
            case _:
                pass

    async def _load(self) -> None:
        """A run resumed in this process: rebuild the task list from the database once."""
        if self._loaded:
            return
        self._loaded = True
        await self.status.load()
        if not self.run.plan:
            return
        revision = self.run.plan.get("revision") or {}
        self.view.title = str(revision.get("title") or self.run.plan.get("title") or "Plan")
        self.view.status = "running"
        for t in await runs.list_tasks(self.db, self.run.id):
            self.view.tasks[t.task_id] = TaskLine(
                id=t.task_id,
                agent=t.agent,
                title=truncate(
                    await self.names.readable(
                        t.instruction.strip().splitlines()[0] if t.instruction.strip() else t.agent
                    ),
                    80,
                ),
                status=t.status.value,
                summary=t.error or "",
            )

    def _set(self, task_id: str, *, status: str, summary: str | None = None) -> None:
        line = self.view.tasks.get(task_id)
        if line is None:
            return
        line.status = status
        if summary is not None:
            line.summary = summary
        self._touch(task_id)

    def _touch(self, *task_ids: str) -> None:
        self._dirty.update(task_ids)
        if self._pending_flush is None or self._pending_flush.done():
            self._pending_flush = self._spawn(self._flush_later())

    @property
    def _interval(self) -> float:
        return (
            self.options.stream_interval if self.mode == "stream" else self.options.update_interval
        )

    async def _flush_later(self) -> None:
        wait = self._last_flush + self._interval - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._due_flush = asyncio.current_task()  # from here on it is not cancelled
        async with self._lock:
            await self._flush()

    async def _after_gap(self) -> None:
        """Wait until the message may be edited again (an edit that cannot wait a whole
        interval: an approval's, the final state's)."""
        if self._ts is None:
            return  # nothing posted yet: the next call posts it
        gap = min(self._interval, EDIT_GAP)
        wait = self._last_flush + gap - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _drop_pending_flush(self) -> None:
        """Cancel a flush that waits for its turn, and wait until it has stopped. One whose
        turn has come is let finish: cut off mid-call, Slack could have shown its lines
        while this side took them as not sent (and sent them again)."""
        task, self._pending_flush = self._pending_flush, None
        if task is not None and not task.done():
            if task is not self._due_flush:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _flush_now(self) -> None:
        await self._drop_pending_flush()
        async with self._lock:
            await self._after_gap()
            await self._flush()

    # --- Slack I/O; always called with the lock held -------------------------------------

    async def _open(self) -> None:
        """Show that the run has started: a stream, or a status message."""
        if self._ts is not None or self._frozen:
            return
        if self.mode == "stream":
            try:
                resp = await self.client.chat_startStream(
                    channel=self.channel,
                    thread_ts=self.run.thread_ts or "",
                    recipient_team_id=self.run.team_id,
                    recipient_user_id=self.run.user_id,
                    task_display_mode="plan",
                    chunks=[
                        PlanUpdateChunk(title=self._title()),
                        *self._task_chunks(),
                        BlocksChunk(blocks=[blocks.stop_actions(self.run.id)]),
                    ],
                )
                self._ts = str(resp["ts"])
                self._dirty.clear()
                self._title_dirty = False
            except SlackApiError as e:
                log.info("streaming unavailable (%s); using a status message", slack_error(e))
                self.mode = "update"
        if self.mode == "update":
            self._ts = await post_text(
                self.client,
                channel=self.channel,
                thread_ts=self.run.thread_ts,
                text=blocks.status_text(self.view),
                blocks=blocks.status_blocks(self.view),
            )
            self._dirty.clear()
        self._last_flush = asyncio.get_running_loop().time()
        if self._ts is not None:
            await runs.set_status_message(self.db, self.run.id, self._ts)

    async def _flush(self) -> None:
        if self._frozen:
            return
        if self._ts is None:
            await self._open()
            return
        if not (self._dirty or self._title_dirty):
            return
        # Take what changed now: a change landing while this call is in flight marks anew.
        dirty, title_dirty = self._dirty, self._title_dirty
        self._dirty, self._title_dirty = set(), False
        if self.mode == "stream":
            chunks: list[Chunk] = []
            if title_dirty:
                chunks.append(PlanUpdateChunk(title=self._title()))
            chunks += self._task_chunks(dirty)
            try:
                await self.client.chat_appendStream(
                    channel=self.channel, ts=self._ts, chunks=chunks
                )
            except SlackApiError as e:
                # The stream ended (Slack closes it after about 5 minutes; a wait for an
                # approval closes it too) or failed: the same message is edited from now on.
                log.info(
                    "stream for run %s ended (%s); editing its message instead",
                    self.run.id,
                    slack_error(e),
                )
                self.mode = "update"
                await self._edit()
                return
        else:
            await self._edit()
            return
        self._last_flush = asyncio.get_running_loop().time()

    async def _edit(self) -> None:
        """Show the whole list in the status message; post it anew once if it is gone."""
        assert self._ts is not None
        try:
            await self.client.chat_update(
                channel=self.channel,
                ts=self._ts,
                text=blocks.status_text(self.view),
                blocks=blocks.status_blocks(self.view),
            )
        except SlackApiError as e:
            code = slack_error(e)
            if code in DEAD_TOKEN:
                # Uninstalled (or its token revoked): nothing can be shown there any more.
                log.warning(
                    "run %s: Baton can no longer post in its workspace (%s); no more live updates",
                    self.run.id,
                    code,
                )
                self._frozen = True
                return
            if code not in MESSAGE_GONE:
                raise
            if self._replaced:
                log.warning(
                    "status message of run %s cannot be edited (%s); no more live updates",
                    self.run.id,
                    code,
                )
                self._frozen = True
                return
            log.info("status message of run %s is gone (%s); posting it anew", self.run.id, code)
            self._replaced, self._ts, self.mode = True, None, "update"
            await self._open()
            return
        self._dirty.clear()
        self._title_dirty = False
        self._last_flush = asyncio.get_running_loop().time()

    async def _close(self, *, final_note: str | None = None) -> None:
        """Final state of the task list; a stream is stopped (a wait may outlive it)."""
        await self._drop_pending_flush()
        async with self._lock:
            if self._ts is None:
                await self._open()
            if self._frozen:
                return
            await self._after_gap()
            if self.mode == "stream" and self._ts is not None:
                # Every task, not only those marked changed: a change that landed while an
                # append was in flight was cleared with it, and the final list must be right.
                chunks: list[Chunk] = [
                    PlanUpdateChunk(title=self._title()),
                    *self._task_chunks(),
                ]
                try:
                    kwargs: dict[str, Any] = {}
                    if final_note:
                        kwargs["markdown_text"] = final_note
                    await self.client.chat_stopStream(
                        channel=self.channel, ts=self._ts, chunks=chunks, **kwargs
                    )
                except SlackApiError as e:
                    log.info("could not stop stream for run %s: %s", self.run.id, slack_error(e))
                    self.mode = "update"
                    await self._edit()
                    return
                # The message stays the run's task list: a resumed run edits it.
                self.mode = "update"
                self._dirty.clear()
            else:
                self._title_dirty = True
                await self._flush()

    # --- rendering -----------------------------------------------------------------------

    def _title(self) -> str:
        status = blocks.RUN_STATUS_TEXT.get(self.view.status, self.view.status)
        # The estimate guides while work goes on; the answer's footer has what was spent.
        going = self.view.status in ("planning", "running", "waiting")
        parts = [self.view.title, status] + (
            [self.view.estimate] if going and self.view.estimate else []
        )
        return truncate(" · ".join(parts), 150)

    def _task_chunks(self, only: set[str] | None = None) -> list[Chunk]:
        """Chunks for the tasks in `only` (every task when None), in plan order."""
        ids = [t for t in self.view.tasks if only is None or t in only]
        chunks: list[Chunk] = []
        for task_id in ids:
            t = self.view.tasks[task_id]
            details = "waiting for approval" if t.status == "waiting" else "\n".join(t.details[-3:])
            chunks.append(
                TaskUpdateChunk(
                    id=t.id,
                    title=truncate(f"{t.agent}: {t.title}", 150),
                    status=STREAM_STATUS.get(t.status, "pending"),
                    details=truncate(details, 500) or None,
                    output=truncate(t.summary, 500) or None,
                    sources=[
                        UrlSourceElement(url=u, text=truncate(u.split("://", 1)[-1], 60))
                        for u in t.sources
                    ]
                    or None,
                )
            )
        return chunks

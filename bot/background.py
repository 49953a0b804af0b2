"""Work that outlives the Slack request that started it (Slack wants an ack within 3 s)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

log = logging.getLogger(__name__)
T = TypeVar("T")


class Background:
    """Keeps a reference to every task (so none is garbage-collected) and can wait for all."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def after(
        self,
        future: asyncio.Future[T],
        then: Callable[[T], Coroutine[Any, Any, Any] | None],
        *,
        name: str,
    ) -> None:
        """Once `future` is done, `then` with its result; a task only for the work `then`
        returns. Most requests need nothing after their write (the workers were told of the
        run as it was stored), and a task each, made before the ack, slowed a burst's acks.
        `drain` waits for the future too."""
        self._tasks.add(future)

        def done(f: asyncio.Future[T]) -> None:
            try:
                if f.cancelled():
                    return
                work = then(f.result())
                if work is not None:
                    self.spawn(work, name=name)
            except Exception:
                log.exception("background work %s failed", name)
            finally:
                self._tasks.discard(f)

        future.add_done_callback(done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until no background work is left (work may start more work)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel every task and wait for each to end, including any started meanwhile
        (a cancelled run may flush its progress once more on its way out)."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def ack_then_respond(
    background: Background,
    ack: AsyncAck,
    respond: AsyncRespond,
    reply: Awaitable[dict[str, Any]],
    *,
    sorry: str,
    failure: str,
    name: str,
) -> None:
    """Ack a command at once; its reply follows through the response URL once the work is
    done, or `sorry` when it failed (logged as `failure`)."""
    await ack()

    async def answer() -> None:
        try:
            await respond(**await reply)
        except Exception:
            log.exception(failure)
            await respond(response_type="ephemeral", text=sorry)

    background.spawn(answer(), name=name)

"""Where a request from Slack is taken in: stored before the ack, worked on after it.

Slack wants its answer within 3 s and retries an event it did not get one for. So a listener
starts one write — the run with the event's id (or the click, in the inbox) — and acks once it
is stored, or after at most INTAKE_SECONDS. Runs asked for together are stored together
(`storage.new_runs.IntakeQueue`: a burst costs a few transactions, not one each).
Everything that talks to Slack or a model happens after the ack, in `Background`. A write
that failed (the database is down) is not marked seen, so Slack's retry of it gets through;
a write that is only slow (a busy SQLite file) finishes after the ack; a crash after the ack
loses nothing, because the sweep finds what was stored and finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.assistant_container import planner_context
from bot.errors import BotError
from bot.slack_ops import post_text
from bot.thread_ops import gather
from bot.work import external, hand_over, handed_over
from orchestration.driving import let_go
from storage import assistant_threads, inbox, run_states, runs, slack_events
from storage.db import is_unavailable, utcnow
from storage.models import (
    Delivery,
    EventKind,
    InboxItem,
    Run,
    RunSource,
    RunStatus,
)
from storage.new_runs import NewRun, Taken
from storage.runs import Lease
from storage.writes import new_row

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)
T = TypeVar("T")
W = TypeVar("W")

# The one write before the ack may take this long; Slack's limit is 3 s.
INTAKE_SECONDS = 2.0
WAIT_NOTICE = "I'll answer this when the current run finishes."
BUSY = (
    "I couldn't take this request right now (my database is not answering). "
    "Nothing was started; please try again in a minute."
)
CANNOT_POST = (
    "I can't post in this conversation ({error}). Invite me with `/invite @Baton`, "
    "or DM me the request."
)


def clean(text: str) -> str:
    """Text Baton can store: PostgreSQL refuses NUL characters, and no person types them."""
    return text.replace("\x00", "")


class IntakeFailed(BotError):
    """The request could not be stored; nothing of it was kept."""


@dataclass(frozen=True)
class Stored(Generic[T]):
    """How a write ended: its value, or why it failed."""

    value: T | None = None
    error: Exception | None = None


# A write that may still be going on after the ack: how it ended, once it has (never an
# exception of its own).
Pending = asyncio.Future[Stored[T]]


@dataclass(frozen=True)
class Accepted:
    taken: Taken  # the run's row, and whether it waits for the thread's current run
    # With BATON_WORKERS=external, a reply's run is stored under this process's lease, so no
    # worker plans it before its thread has been read (`begin` lets go and wakes them).
    held: Lease | None = None

    @property
    def run_id(self) -> str:
        return str(self.taken.run_id)

    @property
    def run(self) -> Run:
        run = self.taken.run
        assert run is not None
        return run


async def accept_message(
    baton: Baton,
    *,
    source: RunSource,
    request: str,
    channel_id: str,
    thread_ts: str,
    user_id: str | None,
    team_id: str | None,
    event_id: str | None,
    playbook: str | None = None,
    context: str | None = None,
    follow_up_only: bool = False,
    reply: bool = False,
    new_thread: bool = False,
) -> Pending[Accepted | None]:
    """Store a request made in a thread (a mention, a DM, a reply in a thread Baton answered);
    the value is None for a retry of one stored before, and with `follow_up_only` for a
    message in a thread Baton has not spoken in. A `reply` has its thread read after the
    ack (`begin`) before anyone plans it. `new_thread`: the request's own message starts
    the thread (a mention outside a thread, a new DM), so no run can be going in it yet."""
    run_id = runs.new_id()
    row = new_row(
        Run,
        id=run_id,
        source=source,
        request=clean(request),
        playbook=playbook,
        team_id=team_id,
        channel_id=channel_id,
        thread_ts=thread_ts,
        user_id=user_id,
        context=clean(context) if context else None,
    )
    if reply and external(baton):
        row["lease_owner"] = f"{baton.orchestrator.owner}:intake:{run_id}"
        row["lease_until"] = utcnow() + timedelta(seconds=baton.orchestrator.limits.lease_seconds)

    new_run = NewRun(
        row,
        seen=event_id,
        in_thread=True,
        new_thread=new_thread,
        notice=WAIT_NOTICE,
        follow_up_only=follow_up_only,
    )
    if not channel_id.startswith("D") or new_thread:
        return await _bounded(baton.intake.submit(new_run), _accepted)

    async def store() -> Taken:
        # In the assistant container (whose messages are all in threads), the channel the
        # person is looking at is context.
        thread = await assistant_threads.get(baton.db, channel_id, thread_ts)
        looking = planner_context(thread) if thread is not None else None
        if looking:
            row["context"] = "\n\n".join(p for p in (looking, row["context"]) if p)
        return await baton.intake.store(new_run)

    return await _bounded(_begun(baton, store()), _accepted)


def _accepted(taken: Taken) -> Accepted | None:
    if taken.row is None:
        return None
    # The run's id as stored (a new one if the first was taken: `new_runs.store`).
    owner = taken.row.get("lease_owner")
    held = Lease(run_id=taken.row["id"], token=owner, wakeups=0) if owner else None
    return Accepted(taken, held)


async def accept_command(
    baton: Baton, command: dict[str, Any], *, request: str, playbook: str | None
) -> Pending[Taken]:
    """Store a slash command's run: the run alone, with the command's trigger id. Whoever
    drives it first posts its request to make its thread (`bot.work.post_request`).

    The value says how it was stored: with no run for a replay of a command stored before
    (same trigger id).
    """
    trigger = str(command.get("trigger_id") or "")
    row = new_row(
        Run,
        id=runs.new_id(),
        source=RunSource.COMMAND,
        request=clean(request),
        playbook=playbook,
        team_id=str(command.get("team_id") or "") or None,
        channel_id=str(command.get("channel_id") or ""),
        user_id=str(command.get("user_id") or "") or None,
        response_url=command.get("response_url"),
    )
    request_run = NewRun(row, seen=f"command:{trigger}" if trigger else None)
    return await _bounded(baton.intake.submit(request_run), _as_is)


async def record_click(
    baton: Baton, *, key: str, kind: str, body: dict[str, Any]
) -> Pending[InboxItem | None]:
    """Store a click or submission; the value is None for a replay of one stored before."""
    record = inbox.record(baton.db, key=key, kind=kind, body=body)
    return await _bounded(_begun(baton, record), _as_is)


def _begun(baton: Baton, work: Coroutine[Any, Any, W]) -> asyncio.Future[W]:
    """A write that needs a task of its own (it reads something first), begun: its outcome
    as a future for `_bounded`. A failure is the write's, told through that future, not a
    background task's."""
    outcome: asyncio.Future[W] = asyncio.get_running_loop().create_future()

    async def write() -> None:
        try:
            outcome.set_result(await work)
        except asyncio.CancelledError:
            outcome.cancel()
            raise
        except Exception as e:
            outcome.set_exception(e)

    baton.background.spawn(write(), name="intake")
    return outcome


def _as_is(value: T) -> T:
    return value


async def _bounded(write: asyncio.Future[W], value: Callable[[W], T]) -> Pending[T]:
    """Wait for a write begun (a group's, `IntakeQueue.submit`, or a task's) up to
    INTAKE_SECONDS. IntakeFailed when it failed within that time for want of a database;
    otherwise how it ended or will end, with `value` made of what it stored.

    No task of its own: every request of a burst waits here before its ack, and a task
    each, made and stepped by the event loop, was much of what the web process spent per
    request beyond a bare Bolt app's ack (README, "What an ack costs")."""
    pending: Pending[T] = asyncio.get_running_loop().create_future()

    def settle(done: asyncio.Future[W]) -> None:
        if done.cancelled():
            pending.cancel()
            return
        try:
            pending.set_result(Stored(value=value(done.result())))
        except Exception as e:
            pending.set_result(Stored(error=e))

    write.add_done_callback(settle)
    await asyncio.wait({pending}, timeout=INTAKE_SECONDS)
    if pending.done() and not pending.cancelled():
        error = pending.result().error
        if error is not None and is_unavailable(error):
            raise IntakeFailed(str(error)) from error
        if error is not None:
            raise error
    return pending


async def stored(pending: Pending[T], what: str) -> T | None:
    """After the ack: the write's value; None (and a log line) when it failed late."""
    return value_of(await pending, what)


def value_of(outcome: Stored[T], what: str) -> T | None:
    """`stored` for a write that has ended."""
    if outcome.error is None:
        return outcome.value
    if is_unavailable(outcome.error):
        log.warning("%s was acked but could not be stored: %s", what, outcome.error)
    else:
        log.error("%s could not be stored", what, exc_info=outcome.error)
    return None


def begin(
    baton: Baton,
    pending: Pending[Accepted | None],
    *,
    channel: str | None = None,
    thread_ts: str | None = None,
    team_id: str | None = None,
    reply_ts: str | None = None,
    bot_user_id: str | None = None,
) -> None:
    """Once the request is stored (after the ack): start the run, or tell the thread it
    waits its turn. A request that could not be stored after all is answered with a
    sentence in its thread.

    `reply_ts` is the request's own message when it is a reply in a thread: what people
    wrote there before it is read first, for the models to see.
    """

    def then(outcome: Stored[Accepted | None]) -> Coroutine[Any, Any, None] | None:
        if outcome.error is not None:
            return _not_stored(
                baton, outcome, channel=channel, thread_ts=thread_ts, team_id=team_id
            )
        accepted = outcome.value
        if accepted is None:
            return None  # a retry of a request stored before
        alone = reply_ts is None and accepted.held is None and not accepted.taken.queued
        if alone and handed_over(baton, woken=accepted.taken.woken):
            return None  # nothing to read or say first, and a worker takes it
        return _start(baton, accepted, reply_ts=reply_ts, bot_user_id=bot_user_id)

    baton.background.after(pending, then, name="begin-run")


async def _not_stored(
    baton: Baton,
    outcome: Stored[Any],
    *,
    channel: str | None,
    thread_ts: str | None,
    team_id: str | None,
) -> None:
    value_of(outcome, "a request")
    if channel:
        await post_text(baton.client_for(team_id), channel=channel, thread_ts=thread_ts, text=BUSY)


async def _start(
    baton: Baton, accepted: Accepted, *, reply_ts: str | None, bot_user_id: str | None
) -> None:
    if reply_ts is not None:
        await gather(baton, accepted.run, request_ts=reply_ts, bot_user_id=bot_user_id)
    if accepted.held is not None:
        # Read: the workers may plan it now (or, if it waits its turn, when its turn comes).
        await let_go(baton.db, accepted.held)
        await baton.wake_workers()
    if accepted.taken.queued:
        await baton.deliverer.deliver_run(accepted.run_id)
    else:
        await hand_over(baton, accepted.run_id, woken=accepted.taken.woken)


async def request_not_postable(baton: Baton, delivery: Delivery, error: str) -> None:
    """A slash command's request could not be posted: tell the person, end the run."""
    from slack_sdk.webhook.async_client import AsyncWebhookClient

    with contextlib.suppress(run_states.IllegalTransition):  # it had ended already
        await run_states.run_ended(
            baton.db,
            delivery.run_id,
            EventKind.RUN_FAILED,
            RunStatus.FAILED,
            answer=None,
            error=CANNOT_POST.format(error=error),
            data={"error": error},
        )
    url = (delivery.data or {}).get("response_url")
    if url:
        try:
            await AsyncWebhookClient(str(url)).send(
                text=CANNOT_POST.format(error=error), response_type="ephemeral"
            )
        except Exception as e:
            log.warning("could not tell the requester of run %s: %s", delivery.run_id, e)


async def say_busy(respond: AsyncRespond) -> None:
    """After an ack: the request was not stored; say so rather than stay silent."""
    try:
        await respond(response_type="ephemeral", text=BUSY)
    except Exception as e:
        log.warning("could not say the request was not taken: %s", e)


async def reply_once(
    baton: Baton,
    event_id: str | None,
    channel: str,
    thread_ts: str,
    text: str,
    *,
    team_id: str | None = None,
) -> None:
    """Answer in the thread, unless Slack is delivering this event again (after the ack)."""
    if event_id is not None and not await slack_events.first_sighting(baton.db, event_id):
        return
    await post_text(baton.client_for(team_id), channel=channel, thread_ts=thread_ts, text=text)

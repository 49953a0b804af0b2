"""The outbox: whatever Slack answers, each message is posted once, in order — at least once, too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.delivery import DeliveryOptions
from sandbox.web_api import SlackStandIn
from storage import outbox, runs
from storage.clock import MovedClock
from storage.models import DeliveryPurpose, DeliveryState, RunStatus
from testkit.fakes.model_servers import FakeOpenAI, Reply
from testkit.harness import Bot, running_bot
from tests.trust_helpers import answers, approval_requests, model_settings, write_catalog

QUICK = DeliveryOptions(base_delay=0.05, max_delay=0.2)
PARAGRAPH = "A long finding with figures and a sentence that goes on for a while. " * 10


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        # Long enough for three messages.
        long_text = "\n\n".join(f"{i}. {PARAGRAPH}" for i in range(1, 12))
        server.when(lambda s: s.system.startswith("You are thinker"), Reply(text=long_text))
        yield server


def bot_for(
    slack: SlackStandIn,
    sqlite_url: str,
    tmp_path: Path,
    openai: FakeOpenAI,
    *,
    delivery: DeliveryOptions = QUICK,
    **overrides: Any,
) -> Any:
    return running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(tmp_path),
        delivery=delivery,
        **{**model_settings(openai.base_url), **overrides},
    )


def piece(index: int) -> Callable[[dict[str, Any]], bool]:
    """Matches the posting of piece `index` of an outbox row."""

    def matches(args: dict[str, Any]) -> bool:
        payload = (args.get("metadata") or {}).get("event_payload") or {}
        return bool(payload.get("piece") == index and "delivery" in payload)

    return matches


async def finished_run(bot: Bot, playbook: str = "think") -> str:
    """A mention's run (so the first message Baton posts is the answer's first piece)."""
    await bot.mention(f"run {playbook}")
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status.is_final
    return run.id


def paragraphs(pieces: list[str]) -> list[int]:
    """Every numbered paragraph of the answer, in the order the pieces show them."""
    return [int(ln.split(".")[0]) for p in pieces for ln in p.splitlines() if ln[:1].isdigit()]


def numbers(pieces: list[str]) -> list[int]:
    """The first numbered paragraph in each piece of the answer."""
    found = []
    for p in pieces:
        line = next(ln for ln in p.splitlines() if ln[:1].isdigit())
        found.append(int(line.split(".")[0]))
    return found


def answer_pieces(slack: SlackStandIn, run_id: str) -> list[str]:
    """The answer's messages in the thread, in order: they end with the one with the footer."""
    [last] = answers(slack, run_id)
    thread = [m for m in slack.messages("C0GENERAL") if m.thread_ts == last.thread_ts]
    posted = [m for m in thread if (m.metadata or {}).get("event_type") == "baton_delivery"]
    return [m.text for m in posted if m.blocks and m.blocks[0].get("type") == "section"]


@pytest.mark.parametrize(
    "fault",
    ["http_500", "html_200", "ratelimited_12_times"],
)
async def test_an_answer_gets_through_slack_failing_on_the_way(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI, fault: str
) -> None:
    async with bot_for(slack, sqlite_url, tmp_path, openai) as bot:
        if fault == "http_500":
            slack.fail("chat.postMessage", "internal_error", status=500)
        elif fault == "html_200":
            slack.html("chat.postMessage")
        else:
            slack.ratelimit("chat.postMessage", times=12, retry_after=0)
        run_id = await finished_run(bot)
        rows = await outbox.for_run(bot.baton.db, run_id)
    pieces = answer_pieces(slack, run_id)
    assert numbers(pieces) == [1, 5, 9] and "11. " in pieces[-1]
    assert len(answers(slack, run_id)) == 1
    assert [r.state for r in rows] == [DeliveryState.DELIVERED]
    assert rows[0].attempts >= 2


async def test_a_failure_on_the_second_piece_posts_the_rest_once_in_order(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    async with bot_for(slack, sqlite_url, tmp_path, openai) as bot:
        second = slack.hold("chat.postMessage", when=piece(1))
        started = asyncio.create_task(finished_run(bot))
        await asyncio.wait_for(second.arrived.wait(), timeout=20)
        second.release(apply=False)  # Slack answers 503: it did not post it
        run_id = await started
    pieces = answer_pieces(slack, run_id)
    assert numbers(pieces) == [1, 5, 9]
    assert len(answers(slack, run_id)) == 1


@pytest.mark.parametrize("slack_had_posted_it", [True, False])
async def test_a_call_cut_off_by_a_timeout_is_looked_up_before_it_is_posted_again(
    slack: SlackStandIn,
    sqlite_url: str,
    tmp_path: Path,
    openai: FakeOpenAI,
    slack_had_posted_it: bool,
) -> None:
    async with bot_for(slack, sqlite_url, tmp_path, openai, baton_slack_timeout=1) as bot:
        first = slack.hold("chat.postMessage", when=piece(0))
        lookup = slack.hold("conversations.replies")
        started = asyncio.create_task(finished_run(bot))
        await asyncio.wait_for(first.arrived.wait(), timeout=20)
        # Baton's client gives up on the hanging call and tries again; it looks first.
        await asyncio.wait_for(lookup.arrived.wait(), timeout=20)
        first.release(apply=slack_had_posted_it)
        await asyncio.sleep(0)  # let the stand-in finish the released call first
        await slack.wait_for(lambda: first.args and slack.calls_to("chat.postMessage"))
        lookup.release()
        run_id = await started
    assert numbers(answer_pieces(slack, run_id)) == [1, 5, 9]
    assert len(answers(slack, run_id)) == 1


async def test_a_message_slack_finds_too_long_is_split_smaller_and_still_posted(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    async with bot_for(slack, sqlite_url, tmp_path, openai) as bot:
        slack.fail("chat.postMessage", "msg_too_long")
        run_id = await finished_run(bot)
    pieces = answer_pieces(slack, run_id)
    assert len(pieces) > 3 and paragraphs(pieces) == list(range(1, 12))
    assert len(answers(slack, run_id)) == 1


async def test_a_refusal_that_will_not_change_ends_the_delivery_in_the_audit_trail(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    async with bot_for(slack, sqlite_url, tmp_path, openai) as bot:
        slack.fail("chat.postMessage", "not_in_channel")
        run_id = await finished_run(bot)
        [row] = await outbox.for_run(bot.baton.db, run_id)
        kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
    assert row.state == DeliveryState.FAILED and row.last_error == "not_in_channel"
    assert row.attempts == 1 and "delivery_failed" in kinds
    assert "answer_delivered" not in kinds


async def test_an_answer_slack_keeps_refusing_is_delivered_by_the_next_process(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    patient = DeliveryOptions(base_delay=0.05, max_delay=0.05, attempts_now=2)
    async with bot_for(slack, sqlite_url, tmp_path, openai, delivery=patient) as bot:
        slack.fail("chat.postMessage", "internal_error", times=2, status=500)
        run_id = await finished_run(bot)
        [row] = await outbox.for_run(bot.baton.db, run_id)
        assert row.state == DeliveryState.PENDING and answers(slack, run_id) == []
        run = await runs.get_run(bot.baton.db, run_id)
        assert run is not None and run.status == RunStatus.SUCCEEDED

    # The next process starts after the retry fell due (the clock moves instead of a sleep).
    later = MovedClock()
    later.move(timedelta(seconds=1))
    async with bot_for(slack, sqlite_url, tmp_path, openai, clock=later) as restarted:
        await restarted.baton.deliverer.sweep()
        [row] = await outbox.for_run(restarted.baton.db, run_id)
    assert row.state == DeliveryState.DELIVERED
    assert len(answer_pieces(slack, run_id)) == 3 and len(answers(slack, run_id)) == 1


async def test_approval_buttons_held_when_the_process_stops_are_posted_once_after_it(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, openai: FakeOpenAI
) -> None:
    async with bot_for(slack, sqlite_url, tmp_path, openai) as bot:
        buttons = slack.hold(
            "chat.postMessage", when=lambda a: "approval:" in json.dumps(a.get("blocks") or [])
        )
        await bot.slash_ack("run deploy")
        await asyncio.wait_for(buttons.arrived.wait(), timeout=20)
        await bot.baton.background.cancel_all()  # the process stops mid-call
        buttons.release(apply=False)
        run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
        assert run is not None and approval_requests(slack) == []

    # The next process starts after the retry fell due (the clock moves instead of a sleep).
    later = MovedClock()
    later.move(timedelta(seconds=1))
    async with bot_for(slack, sqlite_url, tmp_path, openai, clock=later) as restarted:
        await restarted.baton.deliverer.sweep()
        await restarted.idle()
        rows = await outbox.for_run(restarted.baton.db, run.id)
    [gate] = approval_requests(slack)
    [row] = [r for r in rows if r.purpose == DeliveryPurpose.APPROVAL]
    assert row.state == DeliveryState.DELIVERED and row.posted == [gate.ts]

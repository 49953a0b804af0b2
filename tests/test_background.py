"""Work after the ack: `Background` keeps every task and waits for all of it, including the
work that follows a write still going on (`after`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.background import Background


async def test_work_after_a_write_runs_once_it_ends_and_drain_waits_for_both() -> None:
    background = Background()
    write: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done: list[str] = []

    async def follow(value: str) -> None:
        await asyncio.sleep(0)
        done.append(value)

    background.after(write, follow, name="follow")
    draining = asyncio.create_task(background.drain())
    await asyncio.sleep(0)
    assert not draining.done()  # the write has not ended: drain waits for it
    write.set_result("stored")
    await draining
    assert done == ["stored"]


async def test_what_follows_a_write_is_decided_once_with_its_value() -> None:
    background = Background()
    write: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[int] = []

    def nothing(value: int) -> None:
        seen.append(value)

    background.after(write, nothing, name="nothing")
    write.set_result(7)
    await background.drain()
    assert seen == [7]


async def test_a_failure_deciding_what_follows_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    background = Background()
    write: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def broken(_: int) -> None:
        raise RuntimeError("cannot decide")

    background.after(write, broken, name="broken")
    write.set_result(1)
    with caplog.at_level(logging.ERROR, logger="bot.background"):
        await background.drain()
    assert "background work broken failed" in caplog.text


async def test_a_cancelled_write_is_followed_by_nothing() -> None:
    background = Background()
    write: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    called: list[int] = []

    def note(value: int) -> None:
        called.append(value)

    background.after(write, note, name="cancelled")
    write.cancel()
    await background.drain()
    assert called == []

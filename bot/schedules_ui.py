"""`/baton schedule …` (placeholder until schedules land)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck

if TYPE_CHECKING:
    from bot.app import Baton


async def handle_schedule_command(
    baton: Baton, ack: AsyncAck, command: dict[str, Any], args: str
) -> None:
    await ack(
        response_type="ephemeral", text="Schedules are not available in this version of Baton yet."
    )

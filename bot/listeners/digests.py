"""A digest's buttons: Acknowledge, Snooze 1h / 1d, Investigate now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import digest_blocks as ui
from bot.clicks import Click, take

if TYPE_CHECKING:
    from bot.parts import Baton


def register(baton: Baton) -> None:
    for action_id in (ui.ACKNOWLEDGE, ui.SNOOZE_HOUR, ui.SNOOZE_DAY, ui.INVESTIGATE):
        _listen(baton, action_id)


def _listen(baton: Baton, action_id: str) -> None:
    @baton.app.action(action_id)
    async def on_click(ack: AsyncAck, body: dict[str, Any]) -> None:
        await take(baton, ack, Click.DIGEST, body)

"""Bolt listeners, one module per Slack surface."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.listeners import actions, assistant_events, commands, digests, mentions, uninstalls

if TYPE_CHECKING:
    from bot.parts import Baton


def register(baton: Baton) -> None:
    """Every listener of every surface, on `baton.app`. Bolt tries each listener's matchers in
    this order until one matches, so the requests that come most come first: `/baton`,
    then mentions and messages."""
    commands.register(baton)
    assistant_events.register(baton)
    mentions.register(baton)
    if baton.workspaces is not None:
        uninstalls.register(baton)
    actions.register(baton)
    digests.register(baton)
    _ignore_the_rest(baton)


def _ignore_the_rest(baton: Baton) -> None:
    """Slack sends more than Baton handles; a 404 would make it retry (or give up on Baton)."""
    anything = re.compile(".*")

    @baton.app.event(anything)
    async def other_event() -> None:
        return None

    @baton.app.action(anything)
    async def other_action(ack: AsyncAck) -> None:
        await ack()

"""Bolt listeners, one module per Slack surface."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import Baton


def register(baton: Baton) -> None:
    from bot.listeners import actions, commands, digests, events

    events.register(baton)
    commands.register(baton)
    actions.register(baton)
    digests.register(baton)

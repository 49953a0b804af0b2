"""Who is in a channel (`conversations.members`), remembered for a short while.

Asked only after the ack: schedule owners and the reach of `slack_history` depend on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_ops import slack_error

log = logging.getLogger(__name__)

# Long enough to spare Slack a call per click, short enough that someone who left is soon out.
TTL_SECONDS = 60.0


class ChannelMembers:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._known: dict[str, tuple[float, frozenset[str]]] = {}

    async def of(self, channel: str) -> frozenset[str]:
        """The channel's members; none when Slack will not say (so nobody is let in by it)."""
        now = self.clock()
        cached = self._known.get(channel)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        found: set[str] = set()
        cursor: str | None = None
        try:
            while True:
                resp = await self.client.conversations_members(
                    channel=channel, limit=1000, **({"cursor": cursor} if cursor else {})
                )
                found.update(str(m) for m in resp.get("members") or [])
                cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError as e:
            log.warning("could not read the members of %s: %s", channel, slack_error(e))
            return frozenset()
        members = frozenset(found)
        self._known[channel] = (now, members)
        return members

    async def has(self, channel: str, user: str) -> bool:
        return bool(user) and user in await self.of(channel)

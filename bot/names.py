"""Names for Slack ids (people, channels) and message permalinks, asked once and kept.

Called only after the ack. A name Slack will not give (a missing scope, a deleted channel)
falls back to the mention syntax, which Slack itself renders as a name.
"""

from __future__ import annotations

import logging
import re

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_ops import slack_error

log = logging.getLogger(__name__)

# Slack's markup in text: <#C…|name>, <@U…>, <!subteam^S…>, <https://…|label>.
_MARKUP = re.compile(r"<([#@!][^>|]*|https?://[^>|]+)(?:\|([^>]*))?>")
# An id already unwrapped (`#C0DEPLOYS`, `@U0BOB`), as plain-text titles carry them.
_BARE_ID = re.compile(r"(?<![\w<])([#@])([CGUW][A-Z0-9]{6,})\b")


class Names:
    """One process's cache; names change rarely and a stale one is only cosmetic."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._users: dict[str, str] = {}
        self._channels: dict[str, str] = {}
        self._links: dict[tuple[str, str], str] = {}

    async def user(self, user_id: str) -> str:
        """`Bob` for U0BOB (real name, else display name, else the handle)."""
        if user_id not in self._users:
            try:
                resp = await self.client.users_info(user=user_id)
                u = resp.get("user") or {}
                profile = u.get("profile") or {}
                name = (
                    profile.get("real_name")
                    or u.get("real_name")
                    or profile.get("display_name")
                    or u.get("name")
                )
                self._users[user_id] = str(name or user_id)
            except SlackApiError as e:
                log.info("no name for %s: %s", user_id, slack_error(e))
                return user_id
        return self._users[user_id]

    async def channel(self, channel_id: str) -> str | None:
        """`deploys` for C0DEPLOYS; None when Slack will not say."""
        if channel_id not in self._channels:
            try:
                resp = await self.client.conversations_info(channel=channel_id)
                name = (resp.get("channel") or {}).get("name")
            except SlackApiError as e:
                log.info("no name for %s: %s", channel_id, slack_error(e))
                return None
            if not name:
                return None
            self._channels[channel_id] = str(name)
        return self._channels[channel_id]

    async def readable(self, text: str) -> str:
        """Text for a plain-text field (a task card's title): names for ids, links as their
        label, and no mrkdwn marks left to show literally."""
        parts: list[str] = []
        last = 0
        for m in _MARKUP.finditer(text):
            parts.append(text[last : m.start()])
            target, label = m.group(1), m.group(2)
            if target.startswith("#"):
                shown = label or await self.channel(target[1:]) or target[1:]
                parts.append(f"#{shown}")
            elif target.startswith("@"):
                parts.append(f"@{label or await self.user(target[1:])}")
            elif target.startswith("!"):
                parts.append(label or "@" + target.split("^")[-1].lstrip("!"))
            else:
                parts.append(label or target)
            last = m.end()
        parts.append(text[last:])
        out = "".join(parts)
        for m in reversed(list(_BARE_ID.finditer(out))):
            sign, ident = m.group(1), m.group(2)
            if sign == "#":
                name = await self.channel(ident) or ident
            else:
                name = await self.user(ident)
            out = out[: m.start()] + sign + name + out[m.end() :]
        return out.replace("`", "")

    async def permalink(self, channel_id: str, ts: str) -> str | None:
        key = (channel_id, ts)
        if key not in self._links:
            try:
                resp = await self.client.chat_getPermalink(channel=channel_id, message_ts=ts)
            except SlackApiError as e:
                log.info("no permalink for %s/%s: %s", channel_id, ts, slack_error(e))
                return None
            link = resp.get("permalink")
            if not link:
                return None
            self._links[key] = str(link)
        return self._links[key]

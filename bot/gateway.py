"""The Slack calls tools may make (`agents.tools.base.SlackGateway`), over the bot's client."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from agents.errors import ToolError
from bot.members import ChannelMembers
from bot.slack_ops import slack_error

_HINTS = {
    "not_in_channel": "Baton is not in that channel: invite it with /invite @Baton",
    "channel_not_found": "that channel does not exist or Baton cannot see it",
    "missing_scope": "the app lacks a permission for this; reinstall it from manifest.yml",
}


class SlackToolGateway:
    def __init__(self, client: AsyncWebClient, members: ChannelMembers) -> None:
        self.client = client
        self.members = members

    async def is_member(self, channel: str, user: str) -> bool:
        return await self.members.has(channel, user)

    async def history(self, channel: str, *, limit: int) -> list[dict[str, Any]]:
        try:
            resp = await self.client.conversations_history(channel=channel, limit=limit)
        except SlackApiError as e:
            raise ToolError(_explain(e, channel)) from e
        return list(resp.get("messages") or [])

    async def post_message(self, channel: str, text: str) -> str:
        try:
            resp = await self.client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as e:
            raise ToolError(_explain(e, channel)) from e
        return str(resp["ts"])


def _explain(e: SlackApiError, channel: str) -> str:
    code = slack_error(e)
    return f"Slack refused for <#{channel}>: {_HINTS.get(code, code)}"

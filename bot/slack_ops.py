"""Slack Web API calls made directly (not from the outbox), and errors turned into sentences."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Block

log = logging.getLogger(__name__)


def slack_error(e: SlackApiError) -> str:
    """Slack's error code (`ratelimited`, `channel_not_found`, …)."""
    return str(e.response.get("error", "unknown_error"))


async def post_text(
    client: AsyncWebClient,
    *,
    channel: str,
    thread_ts: str | None,
    text: str,
    blocks: list[Block] | None = None,
) -> str | None:
    """Post one message; log and return None if Slack refuses (the caller carries on)."""
    try:
        resp = await client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=text, blocks=blocks, unfurl_links=False
        )
    except SlackApiError as e:
        log.warning("chat.postMessage to %s failed: %s", channel, slack_error(e))
        return None
    return str(resp["ts"])

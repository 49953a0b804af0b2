"""Slack Web API calls that need care: long answers, and errors turned into sentences."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Block, answer_blocks
from bot.text import MESSAGE_LIMIT, split_message

log = logging.getLogger(__name__)

SMALLEST_PIECE = 500


def slack_error(e: SlackApiError) -> str:
    """Slack's error code (`ratelimited`, `channel_not_found`, …)."""
    return str(e.response.get("error", "unknown_error"))


async def post_answer(
    client: AsyncWebClient,
    *,
    channel: str,
    thread_ts: str | None,
    text: str,
    footer: Block | None = None,
) -> list[str]:
    """Post `text` as one or more messages in the thread, in order; the footer goes last.

    Pieces are split under Slack's limits; if Slack still says `msg_too_long`, the piece is
    split again, smaller, so the answer is never lost. Returns the posted timestamps.
    """
    posted: list[str] = []
    queue = split_message(text or "(empty answer)", MESSAGE_LIMIT)
    while queue:
        piece = queue.pop(0)
        last = not queue
        try:
            resp = await client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=piece,
                blocks=answer_blocks(piece, footer_block=footer if last else None),
                unfurl_links=False,
            )
        except SlackApiError as e:
            if slack_error(e) == "msg_too_long" and len(piece) > SMALLEST_PIECE:
                queue[:0] = split_message(piece, max(len(piece) // 2, SMALLEST_PIECE))
                continue
            raise
        posted.append(str(resp["ts"]))
    return posted


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

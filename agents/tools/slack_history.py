"""`slack_history`: what was said recently in a channel."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from agents.errors import ToolError
from agents.tools import extract
from agents.tools.base import ANY_CHANNEL, Scope, SlackGateway, Tool, ToolContext, ToolResult
from agents.wording import truncate

MAX_MESSAGE_CHARS = 500


class SlackHistoryArgs(BaseModel):
    channel: str = Field(
        min_length=1,
        max_length=200,
        description="Channel id (C0123ABCD) or a mention like <#C0123ABCD|general>.",
    )
    limit: int = Field(default=20, ge=1, le=200, description="How many recent messages to read.")

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        return extract.channel_id(value)


def gateway(ctx: ToolContext) -> SlackGateway:
    """The Slack connection, or a ToolError saying there is none."""
    if ctx.slack is None:
        raise ToolError("Slack is not connected here, so channels cannot be read or posted to")
    return ctx.slack


def _line(message: dict[str, Any]) -> str:
    who = message.get("user") or message.get("username") or message.get("bot_id") or "unknown"
    text = re.sub(r"\s+", " ", str(message.get("text") or "")).strip()
    text = truncate(text, MAX_MESSAGE_CHARS)
    try:
        when = datetime.fromtimestamp(float(message["ts"]), UTC).strftime("%Y-%m-%d %H:%M")
    except (KeyError, TypeError, ValueError):
        return f"{who}: {text}"
    return f"[{when}] {who}: {text}"


def _ts(message: dict[str, Any]) -> float:
    try:
        return float(message.get("ts") or 0)
    except (TypeError, ValueError):
        return 0.0


class SlackHistory(Tool[SlackHistoryArgs]):
    name = "slack_history"
    description = "Read a Slack channel's recent messages (author and text, oldest first)."
    Args = SlackHistoryArgs

    def out_of_reach(self, args: SlackHistoryArgs, scope: Scope) -> str | None:
        if args.channel == scope.channel:
            return None
        if ANY_CHANNEL in scope.read_channels or args.channel in scope.read_channels:
            return None
        return (
            f"this specialist may read only the channel the request was made in, not "
            f"<#{args.channel}> (the catalog's `reach.read_channels` can widen that)"
        )

    async def run(self, args: SlackHistoryArgs, ctx: ToolContext) -> ToolResult:
        """Read the messages, with the requester's reach; the content lists them newest last."""
        slack = gateway(ctx)
        if refusal := self.out_of_reach(args, ctx.scope):
            raise ToolError(refusal)
        # Another channel is read only for someone who could read it themselves.
        if args.channel != ctx.scope.channel and not (
            ctx.scope.requester and await slack.is_member(args.channel, ctx.scope.requester)
        ):
            raise ToolError(
                f"the person who asked is not a member of <#{args.channel}>, so it is not read "
                "for them"
            )
        messages = await slack.history(args.channel, limit=args.limit)
        # Slack answers newest first; a person reads a conversation the other way round.
        messages = sorted(messages, key=_ts)
        where = f"<#{args.channel}>"
        if not messages:
            content = f"There are no messages in {where}."
        else:
            lines = "\n".join(_line(m) for m in messages)
            content = f"The last {len(messages)} messages in {where}, oldest first:\n{lines}"
        noun = "message" if len(messages) == 1 else "messages"
        return ToolResult(
            summary=f"Read {len(messages)} {noun} from {where}",
            content=content,
            data={
                "channel": args.channel,
                "count": len(messages),
                "newest_ts": messages[-1].get("ts") if messages else None,
            },
        )

    def args_from_text(self, text: str) -> list[SlackHistoryArgs]:
        """One read per channel mentioned as `<#C0123|name>`, with a count like 'last 50'."""
        count = re.search(r"\b(?:last|latest|recent|past)\s+(\d{1,3})\b", text, re.IGNORECASE)
        limit = min(max(int(count.group(1)), 1), 200) if count else 20
        return [SlackHistoryArgs(channel=c, limit=limit) for c in extract.channels(text)]

"""`post_message`: say something in another channel, once a person has approved it."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from agents.errors import ToolError
from agents.tools import extract
from agents.tools.base import ANY_CHANNEL, Scope, Tool, ToolContext, ToolResult
from agents.tools.slack_history import gateway
from agents.wording import first_line

_MENTION = re.compile(r"\s*\b(?:to|in|into|on)?\s*<#[CG][A-Z0-9]+(?:\|[^>]*)?>", re.IGNORECASE)
_VERB = re.compile(
    r"\b(?:say|post|send|write|tell|announce|share)\b\s*(?:(?:a|the)\s+message\s*)?(?:that\s+|:\s*)?",
    re.IGNORECASE,
)


class PostMessageArgs(BaseModel):
    channel: str = Field(
        min_length=1,
        max_length=200,
        description="Channel id (C0123ABCD) or a mention like <#C0123ABCD|general>.",
    )
    text: str = Field(
        min_length=1, max_length=4000, description="The message to post (Slack mrkdwn)."
    )

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        return extract.channel_id(value)


class PostMessage(Tool[PostMessageArgs]):
    name = "post_message"
    description = "Post a message to a Slack channel. A person approves each call first."
    Args = PostMessageArgs
    requires_approval = True

    def out_of_reach(self, args: PostMessageArgs, scope: Scope) -> str | None:
        if args.channel == scope.channel or args.channel in scope.post_channels:
            return None
        if ANY_CHANNEL in scope.post_channels:
            return None  # any channel of the requester's: checked when the call is made
        listed = "".join(f", <#{c}>" for c in sorted(scope.post_channels))
        return (
            f"this specialist may post only in the request's own channel{listed}, not in "
            f"<#{args.channel}> (the catalog's `reach.post_channels` lists where it may)"
        )

    async def run(self, args: PostMessageArgs, ctx: ToolContext) -> ToolResult:
        """Post the message, only where the specialist may (and, for `*`, the requester can)."""
        slack = gateway(ctx)
        scope = ctx.scope
        if refusal := self.out_of_reach(args, scope):
            raise ToolError(refusal)
        if (
            args.channel != scope.channel
            and args.channel not in scope.post_channels
            and not (scope.requester and await slack.is_member(args.channel, scope.requester))
        ):
            raise ToolError(
                f"the person who asked is not a member of <#{args.channel}>, so nothing is "
                "posted there for them"
            )
        ts = await slack.post_message(args.channel, args.text)
        preview = first_line(args.text, 60)
        return ToolResult(
            summary=f"Posted to <#{args.channel}>: “{preview}”",
            content=f"Posted the message to <#{args.channel}> (ts {ts}).",
            data={"channel": args.channel, "ts": ts},
        )

    def args_from_text(self, text: str) -> list[PostMessageArgs]:
        """The channels the instruction mentions, and what to post there.

        What to post: the instruction's quoted text, else its words after 'say'/'post',
        except that an instruction to post what an earlier task wrote ("post the digest")
        posts the last dependency's output.
        """
        instruction, inputs = extract.split_inputs(text)
        quotes = extract.quoted(extract.plain(instruction))
        if quotes:
            message = quotes[0]
        elif inputs:
            message = inputs[-1][1]
        else:
            verb = _VERB.search(extract.plain(_MENTION.sub("", instruction)))
            message = verb.string[verb.end() :].strip(" :,") if verb else ""
        if not message:
            return []
        return [
            PostMessageArgs(channel=c, text=message[:4000]) for c in extract.channels(instruction)
        ]

"""Pure text helpers for Slack: mentions, mrkdwn escaping and writing, splitting long messages."""

from __future__ import annotations

import re

from agents.wording import truncate as truncate  # one way to cut text, for bot and agents

# Slack starts failing with msg_too_long near 4,000 characters for one text; section text
# is capped at 3,000. Stay under both.
MESSAGE_LIMIT = 2900

_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


def strip_mentions(text: str, user_id: str | None = None) -> str:
    """The request without the bot's own @-mention (or any, when the id is unknown)."""
    if user_id:
        text = re.sub(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>", "", text)
    else:
        text = _MENTION.sub("", text, count=1)
    return " ".join(text.split()) if "\n" not in text else text.strip()


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Code (fenced, then inline) is left as written.
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
# Markdown's **bold**, not a power such as 2**10: no letter or digit just outside the pair.
_BOLD = re.compile(r"(?<![\w*])\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*(?![\w*])")


def mrkdwn(markdown: str) -> str:
    """Markdown (as Baton's answers are stored, and as models write) as Slack's mrkdwn shows
    it: `**bold**` is `*bold*`; code, `_italics_` and lists read the same in both."""
    parts = _CODE.split(markdown)
    return "".join(part if i % 2 else _BOLD.sub(r"*\1*", part) for i, part in enumerate(parts))


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split at paragraph, then line, then word boundaries; code fences stay balanced."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _cut_point(rest, limit)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n")
        if head.count("```") % 2 == 1:  # close the fence here, reopen it in the next piece
            head += "\n```"
            rest = "```\n" + rest
        pieces.append(head)
    if rest.strip():
        pieces.append(rest)
    return pieces


def _cut_point(text: str, limit: int) -> int:
    room = limit - 4  # space for a closing fence
    for sep in ("\n\n", "\n", " "):
        at = text.rfind(sep, 0, room)
        if at > room // 2:
            return at + len(sep)
    return room


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 approval`, `2 approvals`, `0 problems` (`many` for irregular words)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"

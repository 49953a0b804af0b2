"""What a person types in the sandbox's composer, turned into what Slack would send. Pure.

Slack escapes `&`, `<` and `>`, wraps links as `<https://…>`, and turns `@name` and
`#channel` into `<@U…>` and `<#C…|name>` before any app sees a message; a line that starts
with `/` is a slash command instead of a message. In the message's `rich_text` block a
shortcode such as `:tada:` becomes an `emoji` element.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.emoji import EMOJI
from sandbox.workspace import JSON, Workspace

_URL = re.compile(r"(?<![<|\w])(https?://[^\s<>]+[^\s<>.,;:!?)\]'\"])")
_AT = re.compile(r"(?<![\w])@([\w.-]*\w)")
_HASH = re.compile(r"(?<![\w&])#([\w-]+)")
_LINK = re.compile(r"(<[^<>]*>)")
_TOKEN = re.compile(r"<([@#]?)([^<>|]+)(?:\|([^<>]*))?>")
_SHORTCODE = re.compile(r":([a-z0-9_+-]+):")
_SLASH = re.compile(r"^/([\w-]+)(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class SlashCommand:
    """`/baton run deploy` as typed: the command with its slash, and the rest."""

    command: str
    text: str


def slash_command(typed: str) -> SlashCommand | None:
    """The slash command a composer line holds, or None for an ordinary message."""
    match = _SLASH.match(typed.strip())
    if match is None:
        return None
    return SlashCommand(command=f"/{match.group(1).lower()}", text=(match.group(2) or "").strip())


def slack_text(typed: str, ws: Workspace) -> str:
    """The message text Slack stores and sends to apps for what a person typed."""
    text = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _URL.sub(r"<\1>", text)
    people = {}
    for user in ws.users.values():
        people[user.name.lower()] = user.id
        people.setdefault((user.real_name or user.name).lower(), user.id)
    channels = {c.name.lower(): c for c in ws.channels.values() if not c.is_im}

    def person(m: re.Match[str]) -> str:
        found = people.get(m.group(1).lower())
        return f"<@{found}>" if found else m.group(0)

    def channel(m: re.Match[str]) -> str:
        found = channels.get(m.group(1).lower())
        return f"<#{found.id}|{found.name}>" if found else m.group(0)

    # Links are already wrapped; names are only looked for between them.
    parts = _LINK.split(text)
    return "".join(
        part if i % 2 else _HASH.sub(channel, _AT.sub(person, part)) for i, part in enumerate(parts)
    )


def mentions(text: str, user_id: str) -> bool:
    """Whether Slack text mentions `user_id` (what makes Slack send `app_mention`)."""
    return re.search(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>", text) is not None


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _plain(text: str) -> list[JSON]:
    """Text elements, with each known `:shortcode:` as an `emoji` element."""
    out: list[JSON] = []
    at = 0
    for m in _SHORTCODE.finditer(text):
        glyph = EMOJI.get(m.group(1))
        if glyph is None:
            continue
        if m.start() > at:
            out.append({"type": "text", "text": text[at : m.start()]})
        unicode = "-".join(f"{ord(c):x}" for c in glyph)
        out.append({"type": "emoji", "name": m.group(1), "unicode": unicode})
        at = m.end()
    if at < len(text):
        out.append({"type": "text", "text": text[at:]})
    return out


def rich_text(text: str, *, block_id: str) -> JSON:
    """The `rich_text` block Slack attaches to a person's message with Slack `text`."""
    elements: list[JSON] = []
    at = 0
    for m in _TOKEN.finditer(text):
        if m.start() > at:
            elements += _plain(_unescape(text[at : m.start()]))
        sigil, target, label = m.group(1), m.group(2), m.group(3)
        if sigil == "@":
            elements.append({"type": "user", "user_id": target})
        elif sigil == "#":
            elements.append({"type": "channel", "channel_id": target})
        else:
            link: JSON = {"type": "link", "url": _unescape(target)}
            if label:
                link["text"] = _unescape(label)
            elements.append(link)
        at = m.end()
    if at < len(text):
        elements += _plain(_unescape(text[at:]))
    return {
        "type": "rich_text",
        "block_id": block_id,
        "elements": [{"type": "rich_text_section", "elements": elements}],
    }

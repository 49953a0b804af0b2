"""Reading tool arguments out of a Slack message, for the offline `rules` provider.

Slack sends links as `<https://x|label>`, channels as `<#C0123|name>`, and escapes
`&`, `<` and `>` in the rest of the text; these helpers undo that.
"""

from __future__ import annotations

import re

_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>")
_CHANNEL_MENTION = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_URL = re.compile(r"https?://[^\s<>\"'`|]+")
# A single quote only counts next to a non-letter, so "don't" does not open a quotation.
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<!\w)'([^']+)'(?!\w)|‘([^’]+)’|`([^`]+)`")
_TRAILING = ".,;:!?"
# How a specialist's first prompt introduces its dependencies' outputs (see agents.runner).
INPUTS_HEADING = "Results of the tasks this one depends on:"


def unescape(text: str) -> str:
    """Undo Slack's escaping of `&`, `<` and `>`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def plain(text: str) -> str:
    """The text as a person typed it: links become their URL, channels `#name` (or the id)."""
    text = _SLACK_LINK.sub(lambda m: m.group(1), text)
    text = _CHANNEL_MENTION.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    return unescape(text)


def urls(text: str) -> list[str]:
    """Every http(s) URL in the text, in order, without duplicates or trailing punctuation."""
    found: list[str] = []
    for raw in _URL.findall(plain(text)):
        url = raw.rstrip(_TRAILING)
        # A closing bracket belongs to the URL only when the URL opened one.
        while url[-1:] in ")]" and url.count(url[-1]) > url.count("(" if url[-1] == ")" else "["):
            url = url[:-1].rstrip(_TRAILING)
        if url not in found:
            found.append(url)
    return found


def channels(text: str) -> list[str]:
    """Ids of the channels mentioned as `<#C0123|name>`, in order, without duplicates."""
    found: list[str] = []
    for m in _CHANNEL_MENTION.finditer(text):
        if m.group(1) not in found:
            found.append(m.group(1))
    return found


def quoted(text: str) -> list[str]:
    """Text between straight, curly or back quotes, in order."""
    return [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(text)]


def channel_id(value: str) -> str:
    """A channel id from `C0123`, `#C0123` or Slack's `<#C0123|name>`; ValueError otherwise."""
    value = value.strip()
    mention = _CHANNEL_MENTION.fullmatch(value)
    if mention:
        return mention.group(1)
    value = value.removeprefix("#")
    if not _CHANNEL_ID.match(value):
        raise ValueError("use a channel id like C0123ABCD or a mention like <#C0123ABCD|general>")
    return value


def quoted_after(text: str, words: str) -> str | None:
    """The first quotation that directly follows one of `words` (a regex alternation)."""
    text = plain(text)
    for m in re.finditer(rf"\b(?:{words})\b\s*:?\s*", text, re.IGNORECASE):
        q = _QUOTED.match(text, m.end())
        if q:
            return next(g for g in q.groups() if g is not None)
    return None


def split_inputs(prompt: str) -> tuple[str, list[tuple[str, str]]]:
    """A first prompt's instruction, and its dependencies' outputs as (label, text) pairs."""
    instruction, _, inputs = prompt.partition(INPUTS_HEADING)
    sections: list[tuple[str, str]] = []
    for section in re.split(r"^### ", inputs, flags=re.MULTILINE):
        label, _, body = section.strip().partition("\n")
        if label.strip():
            sections.append((label.strip(), body.strip()))
    return instruction.strip(), sections

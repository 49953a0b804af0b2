"""Secrets out of text: whatever is shown, stored or logged passes through `redact`.

Two nets: the shapes of well-known credentials (model API keys, Slack tokens, bearer
tokens), and the exact values this process was configured with (`remember`), which also
catches secrets without a recognisable shape, such as a Slack signing secret or a database
password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HIDDEN = "[redacted]"

_SHAPES = (
    # OpenAI (`sk-…`, `sk-proj-…`) and Anthropic (`sk-ant-…`) keys, whole or as servers echo
    # them partly masked (`sk-abc***********wxyz`).
    re.compile(r"\bsk-[A-Za-z0-9_*.\-]{6,}"),
    # Slack bot, user, app-level and refresh tokens.
    re.compile(r"\bx(?:ox[abprs]|app)-[A-Za-z0-9\-]{6,}"),
    # An Authorization header's credential.
    re.compile(r"(?i)(?<=\bbearer )[A-Za-z0-9._~+/\-]{8,}=*"),
)

# Values shorter than this are not hunted for verbatim: they would match ordinary words.
_MIN_KNOWN = 8
_known: set[str] = set()


def remember(values: Iterable[str | None]) -> None:
    """Add this process's configured secrets (tokens, keys, passwords) to what is hidden."""
    _known.update(v for v in values if v and len(v) >= _MIN_KNOWN)


def redact(text: str) -> str:
    """`text` with every secret it contains replaced by `[redacted]`."""
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, HIDDEN)
    for shape in _SHAPES:
        text = shape.sub(HIDDEN, text)
    return text

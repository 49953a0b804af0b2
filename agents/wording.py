"""Wording Baton writes itself: counting in English ("1 check", "Both checks look fine"),
and cutting text to a first line or a length."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 check`, `3 checks`."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def all_fine(n: int, noun: str) -> str:
    """`The check looks fine.`, `Both checks look fine.`, `All 3 checks look fine.`"""
    if n == 1:
        return f"The {noun} looks fine."
    if n == 2:
        return f"Both {noun}s look fine."
    return f"All {n} {noun}s look fine."


def some_bad(bad: int, n: int, noun: str) -> str:
    """`The check has a problem.`, `1 of 2 checks has a problem.`, `Both checks have a problem.`"""
    if n == 1:
        return f"The {noun} has a problem."
    if bad == n:
        return f"Both {noun}s have a problem." if n == 2 else f"All {n} {noun}s have a problem."
    return f"{bad} of {n} {noun}s {'has' if bad == 1 else 'have'} a problem."


def truncate(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and `…` when it is longer than `limit`."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str, limit: int | None = None) -> str:
    """The first line that is not blank, stripped ("" when there is none); cut to `limit`."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if limit is None else truncate(line, limit)

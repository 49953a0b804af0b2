"""Pure text helpers: mentions, stored Markdown as Slack shows it, splitting long answers."""

from __future__ import annotations

from agents.wording import first_line, truncate
from bot.text import mrkdwn, split_message, strip_mentions


def test_the_bots_mention_is_removed_from_the_request() -> None:
    assert strip_mentions("<@U0BATON> check   https://x", "U0BATON") == "check https://x"
    assert strip_mentions("<@U0BATON|baton> hi <@U0BOB>", "U0BATON") == "hi <@U0BOB>"


def test_short_text_is_one_piece() -> None:
    assert split_message("hello") == ["hello"]


def test_long_text_splits_at_paragraphs_under_the_limit() -> None:
    text = "\n\n".join(f"para {i} " + "x" * 500 for i in range(20))
    pieces = split_message(text, 2000)
    assert all(len(p) <= 2000 for p in pieces)
    assert "\n\n".join(pieces) == text


def test_a_code_block_cut_in_two_stays_a_code_block_in_both_pieces() -> None:
    code = "```\n" + "\n".join(f"line {i}" for i in range(400)) + "\n```"
    pieces = split_message(code, 1000)
    assert len(pieces) > 1
    assert all(p.count("```") % 2 == 0 for p in pieces)


def test_text_without_spaces_is_cut_hard() -> None:
    pieces = split_message("y" * 5000, 1000)
    assert "".join(pieces) == "y" * 5000 and all(len(p) <= 1000 for p in pieces)


def test_a_stored_answers_bold_names_are_slack_bold() -> None:
    stored = "**writer** (failed)\n❌ **lookup** (`wiki`) failed: _timed out_\n\n**Not done:**"
    assert (
        mrkdwn(stored)
        == "*writer* (failed)\n❌ *lookup* (`wiki`) failed: _timed out_\n\n*Not done:*"
    )


def test_code_and_powers_keep_their_asterisks() -> None:
    text = "• 2**10 = 1024, and 3**2 = 9\n`a **b** c`\n```\n**kept**\n```\n*already bold*"
    assert mrkdwn(text) == text


def test_a_first_line_skips_blank_lines_and_is_cut_with_an_ellipsis() -> None:
    assert first_line("\n  \n  Deploy finished  \nsecond line") == "Deploy finished"
    assert first_line("\n  Deploy finished\n", 8) == "Deploy …"
    assert first_line(" \n ") == ""
    assert truncate("abc", 3) == "abc" and truncate("abcd", 3) == "ab…"

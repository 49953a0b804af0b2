"""Slack's message and Block Kit limits, as pure checks over what a client sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

JSON = dict[str, Any]

TEXT_LIMIT = 4_000
BLOCK_TEXT_LIMIT = 13_200
STREAM_APPEND_LIMIT = 12_000
MAX_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
SECTION_TEXT_LIMIT = 3_000
SECTION_FIELD_LIMIT = 2_000
MAX_SECTION_FIELDS = 10
HEADER_TEXT_LIMIT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ACTIONS_ELEMENTS = 5
FEEDBACK_TEXT_LIMIT = 75
CONTEXT_ACTIONS_ELEMENTS = ("feedback_buttons", "icon_button")
ID_LIMIT = 255
BUTTON_VALUE_LIMIT = 2_000
MODAL_TITLE_LIMIT = 24
PRIVATE_METADATA_LIMIT = 3_000


def _too_long(limit: int, pointer: str) -> str:
    # Slack's own wording, so a failing test reads like a real Slack error.
    return f"must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _too_many(limit: int, pointer: str) -> str:
    return f"must contain at most {limit} items [json-pointer:{pointer}]"


def _text_of(node: Any) -> str:
    if isinstance(node, dict) and isinstance(node.get("text"), str):
        return str(node["text"])
    return ""


def block_text_length(blocks: list[Any]) -> int:
    """Characters of text anywhere inside `blocks` (what Slack counts toward `msg_too_long`)."""
    return sum(len(text) for text in _texts(blocks))


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _element_problems(element: Any, pointer: str) -> list[str]:
    if not isinstance(element, dict):
        return []
    problems = []
    if len(str(element.get("action_id", ""))) > ID_LIMIT:
        problems.append(_too_long(ID_LIMIT, f"{pointer}/action_id"))
    if element.get("type") == "button" and len(str(element.get("value", ""))) > BUTTON_VALUE_LIMIT:
        problems.append(_too_long(BUTTON_VALUE_LIMIT, f"{pointer}/value"))
    return problems


def _feedback_problems(element: JSON, pointer: str) -> list[str]:
    """A `feedback_buttons` element: both buttons, each with short plain text and a value."""
    problems = []
    for side in ("positive_button", "negative_button"):
        button = element.get(side)
        at = f"{pointer}/{side}"
        if not isinstance(button, dict):
            problems.append(f"missing required field: {side} [json-pointer:{pointer}]")
            continue
        text = button.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text" or not _text_of(text):
            problems.append(f"must be a plain_text object [json-pointer:{at}/text]")
        elif len(_text_of(text)) > FEEDBACK_TEXT_LIMIT:
            problems.append(_too_long(FEEDBACK_TEXT_LIMIT, f"{at}/text/text"))
        value = button.get("value")
        if not isinstance(value, str) or not value:
            problems.append(f"missing required field: value [json-pointer:{at}]")
        elif len(value) > BUTTON_VALUE_LIMIT:
            problems.append(_too_long(BUTTON_VALUE_LIMIT, f"{at}/value"))
    return problems


def _context_actions_problems(block: JSON, at: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"missing required field: elements [json-pointer:{at}]"]
    problems = []
    if len(elements) > MAX_CONTEXT_ACTIONS_ELEMENTS:
        problems.append(_too_many(MAX_CONTEXT_ACTIONS_ELEMENTS, f"{at}/elements"))
    for j, element in enumerate(elements):
        pointer = f"{at}/elements/{j}"
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in CONTEXT_ACTIONS_ELEMENTS:
            problems.append(
                f"must be one of {', '.join(CONTEXT_ACTIONS_ELEMENTS)} [json-pointer:{pointer}/type]"
            )
            continue
        problems += _element_problems(element, pointer)
        if kind == "feedback_buttons":
            problems += _feedback_problems(element, pointer)
    return problems


def block_problems(blocks: Any, *, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """Every Block Kit rule `blocks` breaks, in Slack's wording; empty when valid."""
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(_too_many(max_blocks, "/blocks"))
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"missing required field: type [json-pointer:{at}]")
            continue
        if len(str(block.get("block_id", ""))) > ID_LIMIT:
            problems.append(_too_long(ID_LIMIT, f"{at}/block_id"))
        kind = block["type"]
        if kind == "section":
            if len(_text_of(block.get("text"))) > SECTION_TEXT_LIMIT:
                problems.append(_too_long(SECTION_TEXT_LIMIT, f"{at}/text/text"))
            fields = block.get("fields") or []
            if len(fields) > MAX_SECTION_FIELDS:
                problems.append(_too_many(MAX_SECTION_FIELDS, f"{at}/fields"))
            for j, item in enumerate(fields):
                if len(_text_of(item)) > SECTION_FIELD_LIMIT:
                    problems.append(_too_long(SECTION_FIELD_LIMIT, f"{at}/fields/{j}/text"))
            problems += _element_problems(block.get("accessory"), f"{at}/accessory")
        elif kind == "header":
            if len(_text_of(block.get("text"))) > HEADER_TEXT_LIMIT:
                problems.append(_too_long(HEADER_TEXT_LIMIT, f"{at}/text/text"))
        elif kind in ("context", "actions"):
            limit = MAX_CONTEXT_ELEMENTS if kind == "context" else MAX_ACTIONS_ELEMENTS
            elements = block.get("elements") or []
            if len(elements) > limit:
                problems.append(_too_many(limit, f"{at}/elements"))
            for j, element in enumerate(elements):
                problems += _element_problems(element, f"{at}/elements/{j}")
        elif kind == "context_actions":
            problems += _context_actions_problems(block, at)
    return problems


def view_problems(view: Any) -> list[str]:
    """Every modal rule `view` breaks; empty when valid."""
    if not isinstance(view, dict):
        return ["view must be an object [json-pointer:/view]"]
    problems = []
    if view.get("type") not in ("modal", "home"):
        problems.append("must be one of modal, home [json-pointer:/view/type]")
    if view.get("type") == "modal":
        if not _text_of(view.get("title")):
            problems.append("missing required field: title [json-pointer:/view/title]")
        elif len(_text_of(view.get("title"))) > MODAL_TITLE_LIMIT:
            problems.append(_too_long(MODAL_TITLE_LIMIT, "/view/title/text"))
    if len(str(view.get("private_metadata", ""))) > PRIVATE_METADATA_LIMIT:
        problems.append(_too_long(PRIVATE_METADATA_LIMIT, "/view/private_metadata"))
    problems += [
        p.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks")
        for p in block_problems(view.get("blocks", []), max_blocks=MAX_MODAL_BLOCKS)
    ]
    return problems

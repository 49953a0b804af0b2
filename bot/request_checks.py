"""Requests to /slack/events that cannot be Slack's, refused before Bolt reads them.

Pure checks over the raw request: a body that is not UTF-8, JSON nested beyond reason, a
timestamp header that is not a number, a payload whose `event` or `actions` has the wrong
shape. Each gets a 4xx and one log line — never a 500 with a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from bot.manifest import EVENTS_PATH

log = logging.getLogger(__name__)

# Slack's payloads nest a few levels (blocks in views in payloads); this is far beyond that.
MAX_DEPTH = 64
MAX_BODY = 1_000_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Where a checked JSON body is kept on the request, read once for whoever comes next
# (`bot/gate.py`).
PAYLOAD = web.RequestKey("slack_payload", dict[str, Any])


@web.middleware
async def refuse_malformed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp middleware: a 4xx for what `problem_with` finds, else on to Bolt."""
    if request.method != "POST" or request.path != EVENTS_PATH:
        return await handler(request)
    body = await request.read()
    status, problem, payload = _inspect(body, request.headers)
    if problem is not None:
        log.warning("refused a request to %s: %s", EVENTS_PATH, problem)
        return web.json_response({"ok": False, "error": problem}, status=status)
    if payload is not None and request.content_type == "application/json":
        request[PAYLOAD] = payload
    return await handler(request)


def problem_with(body: bytes, headers: Any) -> tuple[int, str | None]:
    """(HTTP status, what is wrong) — or (200, None) when Bolt may have it."""
    status, problem, _ = _inspect(body, headers)
    return status, problem


Checked = tuple[int, str | None, dict[str, Any] | None]


def _inspect(body: bytes, headers: Any) -> Checked:
    """`problem_with`, and the JSON object read on the way (the body's, or a form's
    `payload`), if any."""
    stamp = headers.get("X-Slack-Request-Timestamp")
    if stamp is not None and not str(stamp).strip().isdigit():
        return 401, "the request timestamp is not a number", None
    if len(body) > MAX_BODY:
        return 413, "the body is too large", None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "the body is not UTF-8", None
    content_type = str(headers.get("Content-Type", ""))
    if content_type.startswith("application/json"):
        return _check_json(text)
    if content_type.startswith("application/x-www-form-urlencoded") and "payload=" in text:
        form = parse_qs(text, keep_blank_values=True)
        if "payload" in form:
            return _check_json(form["payload"][0])
    return 200, None, None


def _check_json(text: str) -> Checked:
    if _too_deep(text):
        return 400, "the JSON is nested too deeply", None
    try:
        data = json.loads(text)
    except ValueError:
        return 400, "the body is not valid JSON", None
    if not isinstance(data, dict):
        return 400, "the payload is not a JSON object", None
    if "event" in data and not isinstance(data["event"], dict):
        return 400, "`event` is not an object", None
    if isinstance(data.get("event"), dict) and not isinstance(data["event"].get("type"), str):
        return 400, "the event has no type", None
    if data.get("type") == "block_actions":
        actions = data.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            return 400, "a click without an action", None
        if not isinstance(data.get("user"), dict):
            return 400, "a click without its user", None
    if data.get("type") in ("view_submission", "view_closed"):
        view = data.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("type"), str):
            return 400, "a form submission without its form", None
    return 200, None, data


def _too_deep(text: str) -> bool:
    """Whether brackets nest deeper than MAX_DEPTH, outside strings (no recursion)."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False  # too few brackets to nest that deep: no need to read each character
    level = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            if level > MAX_DEPTH:
                return True
        elif ch in "]}":
            level -= 1
    return False

"""Requests into a Bolt app, built and signed exactly the way Slack sends them."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"

_serial = itertools.count(1)


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Slack's `X-Slack-Signature`: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    body: bytes,
    *,
    content_type: str,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
) -> dict[str, str]:
    """The headers Slack sends with `body`, retry headers included when `retry_num` is set."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(secret, ts, body),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return headers


async def deliver(
    session: aiohttp.ClientSession | None,
    url: str,
    secret: str,
    *,
    body: bytes,
    content_type: str,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    timestamp: int | None = None,
) -> tuple[int, str]:
    """POST a signed `body` to `url`; returns the status and text of the answer.

    With `session=None` a short-lived session is opened and closed around the request.
    """
    headers = signed_headers(
        secret,
        body,
        content_type=content_type,
        timestamp=timestamp,
        retry_num=retry_num,
        retry_reason=retry_reason,
    )
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await _post(own, url, body, headers)
    return await _post(session, url, body, headers)


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


def _unique(prefix: str) -> str:
    return f"{prefix}{int(time.time())}{next(_serial):04d}"


def event_callback_body(
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    team_id: str = "T0BATON",
    api_app_id: str = "A0BATON",
    bot_user_id: str = "U0BATON",
    event_time: int | None = None,
) -> bytes:
    """An Events API `event_callback` envelope around `event`, as JSON bytes."""
    envelope = {
        "token": "verification-token",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or _unique("Ev"),
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(envelope).encode()


def slash_command_body(
    command: str = "/baton",
    text: str = "",
    *,
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0GENERAL",
    channel_name: str = "general",
    team_id: str = "T0BATON",
    team_domain: str = "baton-sandbox",
    api_app_id: str = "A0BATON",
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> bytes:
    """A slash command, form-encoded in the field order Slack uses."""
    fields = {
        "token": "verification-token",
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url
        or f"https://hooks.slack.com/commands/{team_id}/{next(_serial)}/sandbox",
        "trigger_id": trigger_id or f"{next(_serial)}.{team_id}.sandbox",
    }
    return urlencode(fields).encode()


def _payload_body(payload: dict[str, Any]) -> bytes:
    # Interactivity arrives as one form field holding the JSON, percent-encoded.
    return b"payload=" + quote(json.dumps(payload)).encode()


def block_actions_body(payload: dict[str, Any]) -> bytes:
    """A `block_actions` payload (a button click), form-encoded as `payload=<json>`."""
    return _payload_body(payload)


def view_submission_body(payload: dict[str, Any]) -> bytes:
    """A `view_submission` payload (a modal submitted), form-encoded as `payload=<json>`."""
    return _payload_body(payload)

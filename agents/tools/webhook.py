"""`webhook_post`: send a JSON body to a webhook a person configured by name."""

from __future__ import annotations

import json
import re
from http import HTTPStatus

from pydantic import BaseModel, Field, JsonValue, field_validator

from agents.errors import ToolError
from agents.tools import extract
from agents.tools.base import Scope, Tool, ToolContext, ToolResult
from agents.tools.netguard import Unreachable, fetch

MAX_PAYLOAD_BYTES = 64 * 1024
_STOPWORDS = {"the", "a", "an", "our", "my", "this", "that", "to", "via", "with", "named", "called"}
# Most specific phrasing first: "the deploys webhook", then "webhook deploys", then "deploys webhook".
_NAMED = [
    re.compile(r"\b(?:the|our|my)\s+([\w.-]+)\s+webhook\b", re.IGNORECASE),
    re.compile(r"\bwebhooks?\s+(?:named\s+|called\s+)?[\"'“‘`]?([\w.-]+)", re.IGNORECASE),
    re.compile(r"\b([\w.-]+)\s+webhook\b", re.IGNORECASE),
]


class WebhookArgs(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[\w.-]+$",
        description="The name of a configured webhook (never a URL).",
    )
    payload: dict[str, JsonValue] = Field(
        default_factory=dict, description="The JSON object to send as the request body."
    )

    @field_validator("payload")
    @classmethod
    def _small(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if len(json.dumps(value)) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"the payload must be at most {MAX_PAYLOAD_BYTES // 1024} KB of JSON")
        return value


class WebhookPost(Tool[WebhookArgs]):
    name = "webhook_post"
    description = (
        "POST a JSON object to one of the configured webhooks, chosen by name. "
        "A person approves each call first."
    )
    Args = WebhookArgs
    requires_approval = True

    def out_of_reach(self, args: WebhookArgs, scope: Scope) -> str | None:
        if scope.webhooks is None or args.name in scope.webhooks:
            return None
        mine = ", ".join(f"'{n}'" for n in sorted(scope.webhooks)) or "none"
        return (
            f"this specialist may not call the webhook '{args.name}' (its webhooks: {mine}; "
            "the catalog's `reach.webhooks` lists them)"
        )

    async def run(self, args: WebhookArgs, ctx: ToolContext) -> ToolResult:
        """POST the payload; ok when the webhook answers 2xx."""
        if refusal := self.out_of_reach(args, ctx.scope):
            raise ToolError(refusal)
        url = ctx.webhooks.get(args.name)
        if url is None:
            known = ", ".join(sorted(ctx.webhooks)) or "none are configured"
            raise ToolError(f"There is no webhook named '{args.name}' (known: {known})")
        # The far side drops a retry of a call it has already seen.
        headers = {"Idempotency-Key": ctx.idempotency_key} if ctx.idempotency_key else {}
        try:
            answer = await fetch(
                url,
                allow_hosts=ctx.http_allow_hosts,
                time_limit=ctx.http_timeout,
                method="POST",
                json_body=args.payload,
                headers=headers,
            )
        except Unreachable as e:
            # Webhook URLs often carry a secret, so only the name is shown.
            raise ToolError(f"Webhook '{args.name}' could not be reached: {e.reason}") from e
        ok = 200 <= answer.status < 300
        try:
            phrase = f"{answer.status} {HTTPStatus(answer.status).phrase}"
        except ValueError:
            phrase = str(answer.status)
        reply = answer.text()[:500].strip()
        content = f"POST to webhook '{args.name}' answered {phrase} in {answer.latency_ms} ms."
        if reply:
            content += f"\nResponse: {reply}"
        return ToolResult(
            ok=ok,
            summary=f"Webhook '{args.name}' → {answer.status} in {answer.latency_ms} ms"
            + ("" if ok else ", failed"),
            content=content,
            data={"name": args.name, "status": answer.status, "latency_ms": answer.latency_ms},
        )

    def args_from_text(self, text: str) -> list[WebhookArgs]:
        """A webhook name ('the deploys webhook', 'webhook deploys') and a JSON or quoted body."""
        plain = extract.plain(text)
        name = next(
            (
                m.group(1)
                for pattern in _NAMED
                for m in pattern.finditer(plain)
                if m.group(1).lower() not in _STOPWORDS
            ),
            None,
        )
        if name is None:
            return []
        return [WebhookArgs(name=name, payload=_payload(plain))]


def _payload(text: str) -> dict[str, JsonValue]:
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            found = json.loads(text[start : end + 1].replace("“", '"').replace("”", '"'))
        except ValueError:
            found = None
        if isinstance(found, dict):
            return found
    quotes = extract.quoted(text)
    return {"text": quotes[0]} if quotes else {}

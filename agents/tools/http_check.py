"""`http_check`: is a site up, how fast does it answer, does the page say what it should."""

from __future__ import annotations

import re
from http import HTTPStatus

from pydantic import BaseModel, Field

from agents.tools import extract
from agents.tools.base import Tool, ToolContext, ToolResult
from agents.tools.netguard import Fetched, Unreachable, fetch

_KEYWORD_WORDS = (
    r"for|contains?|containing|includes?|including|keyword|text|says?|saying|shows?|showing"
)
_EXPECT = re.compile(
    r"\b(?:expect\w*|returns?|returning|answers?|status(?:\s+code)?)\s+"
    r"(?:(?:of|a|an|with|status|code|http)\s+){0,3}([1-5]\d\d)\b",
    re.IGNORECASE,
)


class HttpCheckArgs(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="The http(s) URL to fetch.")
    keyword: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Text the page must contain (case-insensitive); omit to skip the check.",
    )
    expect_status: int | None = Field(
        default=None,
        ge=100,
        le=599,
        description="The HTTP status the page must answer with; by default any 2xx or 3xx is ok.",
    )


def _phrase(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class HttpCheck(Tool[HttpCheckArgs]):
    name = "http_check"
    description = (
        "Fetch a web page with GET and report whether it is up: HTTP status, latency in ms, "
        "and whether an optional keyword appears in the page."
    )
    Args = HttpCheckArgs

    async def run(self, args: HttpCheckArgs, ctx: ToolContext) -> ToolResult:
        """Fetch the page; a site that is down is a result with ok=False, not an error."""
        try:
            page = await fetch(
                args.url, allow_hosts=ctx.http_allow_hosts, time_limit=ctx.http_timeout
            )
        except Unreachable as e:
            return ToolResult(
                ok=False,
                summary=f"{args.url} → DOWN: {e.reason}",
                content=f"GET {args.url} failed: {e.reason}. The site is DOWN.",
                data={"url": args.url, "status": None, "latency_ms": None, "error": e.reason},
            )
        return _result(args, page)

    def args_from_text(self, text: str) -> list[HttpCheckArgs]:
        """One check per URL in the text, with a quoted keyword and an expected status if given."""
        keyword = extract.quoted_after(text, _KEYWORD_WORDS)
        expect = _EXPECT.search(extract.plain(text))
        status = int(expect.group(1)) if expect else None
        return [
            HttpCheckArgs(url=u, keyword=keyword, expect_status=status) for u in extract.urls(text)
        ]


def _result(args: HttpCheckArgs, page: Fetched) -> ToolResult:
    if args.expect_status is not None:
        status_ok, wanted = page.status == args.expect_status, str(args.expect_status)
    else:
        status_ok, wanted = 200 <= page.status < 400, "2xx/3xx"
    found = None if args.keyword is None else args.keyword.casefold() in page.text().casefold()
    summary = f"{args.url} → {page.status} in {page.latency_ms} ms"
    lines = [f"GET {args.url} → {_phrase(page.status)} in {page.latency_ms} ms."]
    if page.redirects:
        hops = "redirect" if page.redirects == 1 else "redirects"
        lines.append(f"Final URL after {page.redirects} {hops}: {page.url}")
    if not status_ok:
        summary += f", failed (expected {wanted})"
        lines.append(f"Expected status {wanted}.")
    if found is not None:
        word = "found" if found else "NOT found"
        summary += f", '{args.keyword}' {word}"
        lines.append(f"Keyword '{args.keyword}': {word} in the page.")
        if page.truncated:
            lines.append("Only the first 1 MB of the page was searched.")
    ok = status_ok and found is not False
    lines.append("Result: UP." if ok else "Result: check FAILED.")
    return ToolResult(
        ok=ok,
        summary=summary,
        content="\n".join(lines),
        data={
            "url": args.url,
            "final_url": page.url,
            "status": page.status,
            "latency_ms": page.latency_ms,
            "redirects": page.redirects,
            "keyword": args.keyword,
            "keyword_found": found,
        },
    )

"""`json_metric`: read one value from a JSON endpoint and compare it with a threshold."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from typing import Any, Literal, Self, cast

from pydantic import BaseModel, Field, JsonValue, model_validator

from agents.errors import ToolError
from agents.tools import extract
from agents.tools.base import Tool, ToolContext, ToolResult
from agents.tools.netguard import fetch
from agents.wording import truncate

Op = Literal[">", ">=", "<", "<=", "==", "!="]
_ORDER: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_WORD_OPS = {
    "≥": ">=",
    "≤": "<=",
    "at least": ">=",
    "at most": "<=",
    "no more than": "<=",
    "more than": ">",
    "greater than": ">",
    "above": ">",
    "over": ">",
    "less than": "<",
    "fewer than": "<",
    "below": "<",
    "under": "<",
}
_COMPARISON = re.compile(
    r"(>=|<=|==|!=|>|<|≥|≤|\b(?:at least|at most|no more than|more than|greater than|above|over"
    r"|less than|fewer than|below|under)\b)\s*(-?\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_PATH = re.compile(r"\b(?:path|key|field)\s*[=:]?\s*`?([\w$][\w.\[\]-]*)", re.IGNORECASE)


class JsonMetricArgs(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="The http(s) URL of the JSON.")
    path: str = Field(
        default="",
        max_length=300,
        description="Dotted path to the value, e.g. data.items.0.value (numbers index lists); "
        "empty for the whole document.",
    )
    op: Op | None = Field(default=None, description="How the value must compare with threshold.")
    threshold: float | str | None = Field(
        default=None, description="The number (or text, for == and !=) to compare the value with."
    )

    @model_validator(mode="after")
    def _op_needs_threshold(self) -> Self:
        if (self.op is None) != (self.threshold is None):
            raise ValueError("give both op and threshold, or neither")
        return self


def _lookup(document: JsonValue, path: str) -> JsonValue:
    node = document
    walked: list[str] = []
    for part in re.sub(r"\[(-?\d+)\]", r".\1", path).removeprefix("$").strip(".").split("."):
        if not part:
            continue
        where = ".".join(walked) or "the top level"
        if isinstance(node, dict):
            if part not in node:
                keys = ", ".join(list(node)[:10]) or "none"
                raise ToolError(f"There is no '{part}' at {where} of the JSON (keys there: {keys})")
            node = node[part]
        elif isinstance(node, list):
            if not re.fullmatch(r"-?\d+", part):
                raise ToolError(f"{where} is a list; index it with a number, not '{part}'")
            if not -len(node) <= int(part) < len(node):
                raise ToolError(f"{where} has {len(node)} items, so there is no item {part}")
            node = node[int(part)]
        else:
            raise ToolError(f"{where} is {_show(node)}, which has no '{part}'")
        walked.append(part)
    return node


def _show(value: Any, limit: int = 80) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return truncate(json.dumps(value, ensure_ascii=False), limit)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _passes(value: JsonValue, op: Op, threshold: float | str, path: str) -> bool:
    left, right = _number(value), _number(threshold)
    if op in ("==", "!="):
        if left is not None and right is not None:
            same = left == right
        else:
            same = (value if isinstance(value, str) else json.dumps(value)) == str(threshold)
        return same if op == "==" else not same
    if left is None or right is None:
        raise ToolError(f"{path or 'The value'} is {_show(value)}; it cannot be compared with {op}")
    return _ORDER[op](left, right)


class JsonMetric(Tool[JsonMetricArgs]):
    name = "json_metric"
    description = (
        "Fetch a JSON document, read the value at a dotted path, and optionally check it "
        "against a threshold (>, >=, <, <=, ==, !=)."
    )
    Args = JsonMetricArgs

    async def run(self, args: JsonMetricArgs, ctx: ToolContext) -> ToolResult:
        """Read the value; ok=False when it fails the comparison."""
        page = await fetch(
            args.url,
            allow_hosts=ctx.http_allow_hosts,
            time_limit=ctx.http_timeout,
            headers={"Accept": "application/json"},
        )
        if not 200 <= page.status < 300:
            raise ToolError(f"{args.url} answered HTTP {page.status}, so there is no value to read")
        if page.truncated:
            raise ToolError(f"{args.url} returned more than 1 MB; that is too large to read")
        try:
            document: JsonValue = json.loads(page.text())
        except ValueError as e:
            raise ToolError(
                f"{args.url} did not return JSON (it starts with {page.text()[:60]!r})"
            ) from e
        value = _lookup(document, args.path)
        label = args.path or "value"
        summary = f"{label} = {_show(value, 40)} at {args.url}"
        content = f"{label} in {args.url} is {_show(value, 2000)}."
        passed = None
        if args.op is not None and args.threshold is not None:
            passed = _passes(value, args.op, args.threshold, args.path)
            verdict = "passes" if passed else "FAILS"
            wanted = f"{args.op} {_show(args.threshold)}"
            summary += f" ({verdict} {wanted})"
            content += f" It {verdict} the check {label} {wanted}."
        return ToolResult(
            ok=passed is not False,
            summary=summary,
            content=content,
            data={
                "url": args.url,
                "path": args.path,
                "value": value,
                "op": args.op,
                "threshold": args.threshold,
                "passed": passed,
                "status": page.status,
                "latency_ms": page.latency_ms,
            },
        )

    def args_from_text(self, text: str) -> list[JsonMetricArgs]:
        """URLs in the text, with `path=a.b` and a comparison like `> 5` or `below 90`."""
        rest = extract.plain(text)
        for url in extract.urls(text):
            rest = rest.replace(url, " ")
        path = _PATH.search(rest)
        comparison = _COMPARISON.search(rest)
        op: Op | None = None
        threshold = None
        if comparison:
            op = cast(Op, _WORD_OPS.get(comparison.group(1).lower(), comparison.group(1)))
            threshold = float(comparison.group(2))
        return [
            JsonMetricArgs(
                url=url,
                path=path.group(1).rstrip(".") if path else "",
                op=op,
                threshold=threshold,
            )
            for url in extract.urls(text)
        ]

"""The demo shop's admin tools as an MCP server, for the sandbox's catalog.

    python -m sandbox.demo_mcp        (speaks MCP over stdio; Baton starts it)

`order_status` says it only reads, so Baton calls it at once; `cancel_order` says it is
destructive, so Baton asks a person before each call. Cancelling honours the idempotency
key Baton sends in the request's `_meta`: the same key twice cancels once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


@dataclass
class Order:
    customer: str
    items: str
    total: str
    state: str = "paid, packing"


ORDERS = {
    "1042": Order("Dana", "2 × blue mug", "€24.00"),
    "1043": Order("Eli", "1 × teapot, 1 × tea sampler", "€41.50", "shipped"),
}

server: MCPServer[Any] = MCPServer(
    "shop-admin",
    instructions="The demo shop's orders: look them up, cancel them.",
    log_level="WARNING",
)
# Idempotency key → what the first call with it answered.
_answered: dict[str, str] = {}


def _order(order_id: str) -> Order:
    order = ORDERS.get(order_id.strip().lstrip("#"))
    if order is None:
        raise ToolError(f"There is no order {order_id}. Orders: {', '.join(ORDERS)}.")
    return order


@server.tool(annotations=ToolAnnotations(title="Order status", read_only_hint=True))
def order_status(order_id: str) -> str:
    """An order's customer, items, total and state."""
    o = _order(order_id)
    return f"Order {order_id}: {o.state} — {o.items} for {o.customer}, {o.total}"


@server.tool(
    annotations=ToolAnnotations(title="Cancel order", read_only_hint=False, destructive_hint=True)
)
def cancel_order(order_id: str, reason: str, ctx: Context[Any, Any]) -> str:
    """Cancel an order and refund the customer. It cannot be undone."""
    key = str((ctx.request_context.meta or {}).get("idempotencyKey") or "")
    if key and key in _answered:
        return _answered[key]
    o = _order(order_id)
    if o.state.startswith("cancelled"):
        answer = f"Order {order_id} was already cancelled."
    else:
        o.state = f"cancelled ({reason})"
        answer = f"Order {order_id} cancelled; {o.customer} is refunded {o.total}."
    if key:
        _answered[key] = answer
    return answer


if __name__ == "__main__":
    server.run()

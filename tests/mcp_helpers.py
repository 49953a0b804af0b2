"""What the MCP tests share: catalogs pointing at real MCP servers, a scripted specialist,
and the servers' own record of what reached them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testkit.fakes.model_servers import Reply, Seen
from testkit.processes import PYTHON, ROOT


def ops_server(record: Path, *extra: str, name: str = "ops") -> str:
    """A `mcp_servers:` entry for the test server over stdio."""
    command = [PYTHON, "-m", "testkit.fakes.fake_mcp_server", "--record", str(record), *extra]
    return (
        f"  - name: {name}\n    command: {json.dumps(command)}\n    cwd: {json.dumps(str(ROOT))}\n"
    )


def catalog(
    tmp_path: Path,
    *,
    servers: str,
    tools: list[str],
    extra: str = "",
    model: str = "openai:gpt-4.1-mini",
) -> Path:
    """A catalog with one specialist (`clerk`) using `tools`, and a one-step playbook `ask`."""
    path = tmp_path / "agents.yml"
    path.write_text(
        "mcp_servers:\n"
        + servers
        + f"""agents:
  - name: clerk
    description: Looks after the shop's orders.
    model: {model}
    tools: {json.dumps(tools)}
playbooks:
  - name: ask
    description: One step for the clerk.
    tasks:
      - {{id: step, agent: clerk, instruction: Do what the request says.}}
"""
        + extra
    )
    return path


def is_clerk(seen: Seen) -> bool:
    return seen.system.startswith("You are clerk,")


def is_synthesis(seen: Seen) -> bool:
    return "Write the final answer" in seen.system


def tool_messages(seen: Seen) -> list[dict[str, Any]]:
    return [m for m in seen.body["messages"] if m.get("role") == "tool"]


def clerk(*calls: tuple[str, dict[str, Any]]) -> Callable[[Seen], Reply]:
    """The specialist's model: asks for `calls` at once, then reports what they returned."""

    def answer(seen: Seen) -> Reply:
        results = tool_messages(seen)
        if not results:
            return Reply(text="I will use my tools.", tool_calls=list(calls))
        return Reply(text="Done. " + " | ".join(str(m["content"]) for m in results))

    return answer


def synthesis(seen: Seen) -> Reply:
    """The final answer: what the specialists wrote, as they wrote it."""
    sections = seen.last_user_text.split("\n### ")[1:]
    return Reply(text="\n".join(s.partition("\n")[2] for s in sections) or "nothing")


def recorded(path: Path, event: str | None = None, tool: str | None = None) -> list[dict[str, Any]]:
    """What the test server recorded (one JSON object a line), filtered."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        r
        for r in lines
        if (event is None or r["event"] == event) and (tool is None or r.get("tool") == tool)
    ]

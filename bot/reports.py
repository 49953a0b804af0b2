"""Replies to `/baton agents | status | approvals`. Pure: rows in, Block Kit out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from agents.mcp import tool_names as mcp_names
from agents.mcp.status import ServerState, ServerStatus
from agents.spec import Catalog
from agents.telemetry import trace_id_of
from bot.blocks import (
    RUN_STATUS_TEXT,
    STATUS_EMOJI,
    Block,
    context,
    divider,
    feedback_line,
    header,
    section,
    when,
)
from bot.text import escape, plural, truncate
from storage.feedback import Tally
from storage.models import Approval, Run, TaskRow
from storage.usage import Total


def agents_report(
    catalog: Catalog, model_of: Callable[[str], str], servers: Sequence[ServerStatus] = ()
) -> list[Block]:
    """`/baton agents`: the specialists with their models (and fallbacks) and tools, the MCP
    servers' states, the playbooks."""
    by_name = {s.name: s for s in servers}
    blocks: list[Block] = [header("Baton's specialists")]
    for a in catalog.agents:
        tools = ", ".join(_tool_entry(t, by_name) for t in a.tools)
        then = "".join(f" → `{model_of(f)}`" for f in a.fallbacks)
        blocks.append(
            section(
                f"*{escape(a.name)}* · `{model_of(a.model)}`{then}\n{escape(a.description)}\n"
                f"Tools: {tools or 'no tools (writes from its inputs)'}"
            )
        )
    if servers:
        blocks.append(divider())
        blocks.append(
            section(
                "*MCP servers* — ✋ asks a person before each call\n"
                + "\n".join(_server_line(s) for s in servers)
            )
        )
    if catalog.playbooks:
        blocks.append(divider())
        lines = [
            f"• `{p.name}` — {escape(p.description)} ({len(p.tasks)} tasks"
            + (", asks for approval" if any(t.requires_approval for t in p.tasks) else "")
            + ")"
            for p in catalog.playbooks
        ]
        blocks.append(section("*Playbooks* — `/baton run <name> [details]`\n" + "\n".join(lines)))
    return blocks[:50]


def _tool_entry(entry: str, servers: Mapping[str, ServerStatus], shown: int = 12) -> str:
    """A tool as the catalog lists it; for MCP, the server's tools it stands for once known."""
    ref = mcp_names.parse(entry)
    if ref is None:
        return f"`{entry}`"
    status = servers.get(ref.server)
    if status is None or status.tools is None:
        return f"`{entry}`"
    matched = [t for t in status.tools if ref.matches(ref.server, t.name)]
    if not matched:
        return f"`{entry}` (the server has no such tool)"
    names = [f"`{escape(t.name)}`{' ✋' if t.needs_approval else ''}" for t in matched[:shown]]
    more = f", and {len(matched) - shown} more" if len(matched) > shown else ""
    return f"`{entry}` ({', '.join(names)}{more})"


def _server_line(s: ServerStatus) -> str:
    line = f"• `{s.name}` ({s.transport}) · "
    if s.state == ServerState.RUNNING:
        count = len(s.tools or ())
        line += f"running · {count} tool{'' if count == 1 else 's'}"
        asks = sum(1 for t in s.tools or () if t.needs_approval)
        if asks:
            line += f", {asks} ✋"
        if s.refresh_pending:
            line += " · its tools changed; listed again on next use"
    elif s.state == ServerState.NOT_STARTED:
        line += "not started yet (starts when a specialist first needs it)"
    elif s.state == ServerState.STOPPED:
        line += "stopped"
    else:
        why = f": {escape(truncate(s.problem, 300))}" if s.problem else ""
        if s.state == ServerState.STARTING:
            line += "starting" + (f" (the last attempt failed{why})" if why else "")
        else:
            line += f"⚠️ unavailable{why}; its tools are not offered"
            if s.retry_in is not None:
                line += f" (trying again in {s.retry_in:.0f} s)"
    return line


def _duration(t: TaskRow) -> str:
    if t.started_at and t.finished_at:
        return f"{(t.finished_at - t.started_at).total_seconds():.1f} s"
    return "—"


def status_report(
    run: Run,
    tasks: Sequence[TaskRow],
    totals: Sequence[Total] = (),
    *,
    votes: Tally | None = None,
    week: Tally | None = None,
) -> list[Block]:
    """`/baton status`: the run's tasks, its cost per agent and per model, and feedback."""
    state = RUN_STATUS_TEXT.get(run.status.value, run.status.value)
    what = (
        f"playbook `{run.playbook}`" if run.playbook else f"“{escape(truncate(run.request, 200))}”"
    )
    blocks: list[Block] = [
        section(
            f"*Run `{run.id}`* · {state}\n{what} · asked by <@{run.user_id}> {when(run.created_at)}"
            if run.user_id
            else f"*Run `{run.id}`* · {state}\n{what} · {when(run.created_at)}"
        )
    ]
    lines = []
    for t in tasks:
        cost = f"{t.input_tokens + t.output_tokens:,} tokens · ${t.cost_usd:.4f}"
        model = f" · `{t.model}`" if t.model else ""
        line = f"{STATUS_EMOJI.get(t.status.value, '•')} `{t.task_id}` *{escape(t.agent)}* · {t.status.value}{model} · {_duration(t)} · {cost}"
        if t.error:
            line += f"\n      _{escape(truncate(t.error, 200))}_"
        lines.append(line)
    if lines:
        blocks.append(section("\n".join(lines)))
    if run.error:
        blocks.append(section(f":warning: {escape(truncate(run.error, 1000))}"))
    if totals:
        blocks.append(section(cost_rollup(totals)))
    total = f"Total: {run.input_tokens + run.output_tokens:,} tokens · ${run.cost_usd:.4f}"
    unpriced = list(dict.fromkeys(t.model for t in totals if not t.priced))
    if unpriced:
        total += f" · price unknown for {', '.join(f'`{m}`' for m in unpriced)}"
    if trace_id := trace_id_of(run.traceparent):
        total += f" · trace `{trace_id}`"
    blocks.append(context(total))
    if votes is not None and week is not None:
        on_run = (
            f"👍 {votes.positive} · 👎 {votes.negative} on this answer"
            if votes.total
            else "No feedback on this answer yet"
        )
        blocks.append(context(f"{on_run} · all answers: {feedback_line(week)}"))
    return blocks


def _money(cost: float, priced: bool) -> str:
    return f"${cost:.4f}" if priced else "price unknown"


def cost_rollup(totals: Sequence[Total]) -> str:
    """Cost per agent (planning and the answer are the supervisor's) and per model."""
    by_agent: dict[str, list[Total]] = {}
    by_model: dict[str, list[Total]] = {}
    for t in totals:
        by_agent.setdefault(t.agent, []).append(t)
        by_model.setdefault(t.model, []).append(t)

    def line(name: str, rows: list[Total]) -> str:
        tokens = sum(r.tokens for r in rows)
        calls = sum(r.calls for r in rows)
        priced = all(r.priced for r in rows)
        return (
            f"• {name} · {calls} call{'s' if calls != 1 else ''} · {tokens:,} tokens · "
            f"{_money(sum(r.cost_usd for r in rows), priced)}"
        )

    agents = [line(f"*{escape(a)}*", rows) for a, rows in by_agent.items()]
    models = [line(f"`{m}`", rows) for m, rows in by_model.items()]
    return "*Cost by agent*\n" + "\n".join(agents) + "\n*Cost by model*\n" + "\n".join(models)


def permalink(channel: str, ts: str) -> str:
    """A link to a message that Slack resolves in any workspace the reader belongs to."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def approvals_report(pending: Sequence[Approval]) -> list[Block]:
    if not pending:
        return [section("No approvals are waiting in this channel.")]
    lines = []
    for a in pending[:40]:
        what = f"`{a.tool_name}`" if a.tool_name else a.kind
        link = (
            f"<{permalink(a.channel_id, a.message_ts)}|open>"
            if a.channel_id and a.message_ts
            else "(no message)"
        )
        lines.append(
            f"• Run `{a.run_id}` · {what} · task `{a.task_id}` · expires {when(a.expires_at)} · {link}"
        )
    return [section(f"*{plural(len(pending), 'approval')} waiting here*\n" + "\n".join(lines))]

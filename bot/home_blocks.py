"""The App Home dashboard. Pure: what the person may see in, Block Kit out (≤ 100 blocks)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agents.tools.extract import plain
from bot.blocks import (
    RUN_STATUS_TEXT,
    Block,
    button,
    context,
    divider,
    feedback_line,
    header,
    section,
    sections,
    when,
)
from bot.text import escape, plural, truncate
from storage.feedback import Tally
from storage.models import Approval, ModelUsage, Run, Schedule, TaskRow, TaskStatus

HOME_PREFIX = "home:"
APPROVE = "home:approve"
REJECT = "home:reject"
PAUSE = "home:pause"
RESUME = "home:resume"
MAX_BLOCKS = 100
SHOWN_APPROVALS = 10
SHOWN_SCHEDULES = 10


@dataclass(frozen=True)
class ScheduleLine:
    schedule: Schedule
    described: str  # "on weekdays at 09:00 (Europe/Berlin)"
    next_fire: datetime | None


@dataclass(frozen=True)
class Dashboard:
    recent: Sequence[Run] = ()
    tasks: Sequence[TaskRow] = ()
    mine: Sequence[Approval] = ()  # waiting for this person (directly or through a group)
    waiting_runs: Mapping[str, Run] = field(default_factory=dict)
    schedules: Sequence[ScheduleLine] = ()
    usage: Sequence[ModelUsage] = ()  # this week's model calls of the person's runs
    votes: Tally = field(default_factory=Tally)
    links: Mapping[str, str] = field(default_factory=dict)  # run id -> its thread's permalink
    notice: str = ""  # the answer to the person's last click here


def home_view(d: Dashboard) -> dict[str, object]:
    blocks: list[Block] = [
        header("Baton"),
        section("Ask with `/baton <request>`, @Baton in a channel, or right here in a DM."),
    ]
    if d.notice:
        blocks.append(context(d.notice))
    blocks += [divider(), *_approvals(d), divider(), *_runs(d), divider(), *_schedules(d)]
    blocks += [divider(), section("*This week*"), *_spend(d.usage), context(feedback_line(d.votes))]
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


def _approvals(d: Dashboard) -> list[Block]:
    if not d.mine:
        return [section("*Waiting for you*\nNothing waits for your decision.")]
    blocks = [section(f"*Waiting for you* · {plural(len(d.mine), 'approval')}")]
    for a in d.mine[:SHOWN_APPROVALS]:
        run = d.waiting_runs.get(a.run_id)
        where = _run_link(a.run_id, d.links)
        asked = f" · asked by <@{run.user_id}>" if run is not None and run.user_id else ""
        blocks.append(
            section(
                f"{escape(truncate(plain(a.summary) or a.tool_name or 'A step', 200))}\n"
                f"{where}{asked} · expires {when(a.expires_at)}"
            )
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"home-approval:{a.id}",
                "elements": [
                    button("Approve", APPROVE, a.id, style="primary"),
                    button("Reject", REJECT, a.id, style="danger"),
                ],
            }
        )
    if len(d.mine) > SHOWN_APPROVALS:
        blocks.append(context(f"…and {len(d.mine) - SHOWN_APPROVALS} more."))
    return blocks


def _run_link(run_id: str, links: Mapping[str, str]) -> str:
    link = links.get(run_id)
    return f"<{link}|run `{run_id}`>" if link else f"run `{run_id}`"


def _runs(d: Dashboard) -> list[Block]:
    if not d.recent:
        return [section("*Your recent runs*\n_No runs yet._")]
    blocks = [section("*Your recent runs*")]
    for r in d.recent:
        state = RUN_STATUS_TEXT.get(r.status.value, r.status.value) + _not_done(r, d.tasks)
        what = f"playbook `{r.playbook}`" if r.playbook else escape(truncate(plain(r.request), 120))
        blocks.append(
            context(
                f"{_run_link(r.id, d.links)} · {state} · {what} · {when(r.created_at)} · ${r.cost_usd:.4f}"
            )
        )
    return blocks


def _not_done(run: Run, tasks: Sequence[TaskRow]) -> str:
    """Steps of a finished run that did not happen, by why: a run is never just "done"."""
    counts = Counter(
        t.status for t in tasks if t.run_id == run.id and t.status != TaskStatus.SUCCEEDED
    )
    if not run.status.is_final or not counts:
        return ""
    parts = [f"{n} {status.value}" for status, n in sorted(counts.items())]
    return f" ({', '.join(parts)})"


def _schedules(d: Dashboard) -> list[Block]:
    if not d.schedules:
        return [
            section(
                '*Your schedules*\n_None. Add one with `/baton schedule add "every day at 09:00" <request>`._'
            )
        ]
    blocks = [section(f"*Your schedules* · {plural(len(d.schedules), 'schedule')}")]
    for line in d.schedules[:SHOWN_SCHEDULES]:
        s = line.schedule
        what = f"`{s.playbook}`" if s.playbook else escape(truncate(plain(s.request), 80))
        if s.paused:
            state, control = "⏸️ paused", button("Resume", RESUME, s.id, style="primary")
        else:
            state = f"next {when(line.next_fire)}" if line.next_fire else "no next run"
            control = button("Pause", PAUSE, s.id)
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": truncate(
                        f"`{s.id}` {what} in <#{s.channel_id}>\n{escape(line.described)} · {state}",
                        3000,
                    ),
                },
                "accessory": control,
            }
        )
    if len(d.schedules) > SHOWN_SCHEDULES:
        blocks.append(
            context(
                f"…and {len(d.schedules) - SHOWN_SCHEDULES} more: `/baton schedule list` in their channels."
            )
        )
    return blocks


def _spend(usage: Sequence[ModelUsage]) -> list[Block]:
    if not usage:
        return [context("No model calls for your runs this week.")]
    per: dict[tuple[str, str], list[ModelUsage]] = defaultdict(list)
    for u in usage:
        per[(u.agent, u.model)].append(u)
    lines = []
    for (agent, model), calls in sorted(
        per.items(), key=lambda kv: -sum(c.cost_usd for c in kv[1])
    ):
        cost = sum(c.cost_usd for c in calls)
        priced = all(c.priced for c in calls)
        tokens = sum(c.input_tokens + c.output_tokens for c in calls)
        money = f"${cost:.4f}" if priced else f"${cost:.4f} (some calls unpriced)"
        lines.append(
            f"• *{escape(agent)}* on `{model}` · {plural(len(calls), 'call')} · {tokens:,} tokens · {money}"
        )
    total = sum(u.cost_usd for u in usage)
    return [*sections(lines[:40]), context(f"Spent this week: ${total:.4f}")]

"""Block Kit builders. Pure functions: data in, Slack JSON out, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.text import escape, truncate
from orchestration.costs import RunNotes
from orchestration.run_events import CostEstimate
from storage.feedback import Tally

Block = dict[str, Any]

STATUS_EMOJI = {
    "pending": "⚪",
    "running": "🔄",
    "waiting": "✋",
    "succeeded": "✅",
    "failed": "❌",
    "skipped": "⏭️",
    "rejected": "🚫",
    "unverified": "❔",
    "cancelled": "⏹️",
}

RUN_STATUS_TEXT = {
    "queued": "queued",
    "planning": "planning…",
    "running": "working…",
    "waiting": "waiting for approval",
    "succeeded": "done",
    "partial": "done, with problems",
    "failed": "failed",
    "cancelled": "stopped",
}
# Run states in which a person may still stop the run.
STOPPABLE = ("queued", "planning", "running", "waiting")
STOP = "run:stop"


@dataclass
class TaskLine:
    """A task as the status message shows it."""

    id: str
    agent: str
    title: str
    status: str = "pending"
    details: list[str] = field(default_factory=list)
    summary: str = ""
    # URLs the step read (shown as the task card's sources where Slack streams them).
    sources: list[str] = field(default_factory=list)


@dataclass
class RunView:
    """Everything the status message shows about a run."""

    run_id: str
    status: str = "planning"
    title: str = "Planning…"
    tasks: dict[str, TaskLine] = field(default_factory=dict)
    estimate: str = ""  # the plan's estimated cost, shown before work starts


def mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(truncate(text, 3000))}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(truncate(t, 2000)) for t in texts[:10]]}


def header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, 150), "emoji": True},
    }


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    b: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate(text, 75), "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        b["style"] = style
    return b


def sections(lines: Iterable[str], *, limit: int = 2900) -> list[Block]:
    """Lines grouped into as few sections as Slack's 3,000-character limit allows."""
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        if chunk and len(chunk) + len(line) + 1 > limit:
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(section(chunk))
    return blocks


def task_line_text(t: TaskLine) -> str:
    line = f"{STATUS_EMOJI.get(t.status, '•')} *{escape(t.agent)}* — {escape(t.title)}"
    note = t.summary or (t.details[-1] if t.details else "")
    if t.status == "waiting":
        note = "waiting for approval"
    if note:
        line += f"\n      _{escape(truncate(note, 300))}_"
    return line


def stop_actions(run_id: str) -> Block:
    """The task list's Stop button."""
    return {
        "type": "actions",
        "block_id": f"run:{run_id}",
        "elements": [button("Stop", STOP, run_id, style="danger")],
    }


def status_blocks(view: RunView) -> list[Block]:
    """The one status message edited in place when streaming is off or unavailable."""
    blocks: list[Block] = [
        section(f"*{escape(view.title)}* · {RUN_STATUS_TEXT.get(view.status, view.status)}")
    ]
    blocks += sections(task_line_text(t) for t in view.tasks.values())
    blocks = blocks[:47]
    about = [f"Run `{view.run_id}`", f"`/baton status {view.run_id}` for details"]
    if view.estimate:
        about.insert(1, escape(view.estimate))
    blocks.append(context(" · ".join(about)))
    if view.status in STOPPABLE:
        blocks.append(stop_actions(view.run_id))
    return blocks


def estimate_text(estimate: CostEstimate) -> str:
    """`estimated ≈ 3,100 tokens, ≈ $0.0024` (and the models without a price); "" offline."""
    if not estimate.tokens:
        return ""
    text = f"estimated ≈ {estimate.tokens:,} tokens"
    if estimate.usd > 0 or not estimate.unpriced:
        text += f", ≈ ${estimate.usd:.4f}"
    if estimate.unpriced:
        text += f" (price unknown for {', '.join(estimate.unpriced)})"
    return text


def status_text(view: RunView) -> str:
    """The plain-text fallback (notifications, screen readers)."""
    done = sum(
        1
        for t in view.tasks.values()
        if t.status in ("succeeded", "failed", "skipped", "rejected", "cancelled")
    )
    return f"{view.title}: {done}/{len(view.tasks)} tasks done ({RUN_STATUS_TEXT.get(view.status, view.status)})"


def footer(
    *,
    run_id: str,
    status: str,
    tokens: int,
    cost_usd: float,
    contributors: Sequence[str],
    notes: RunNotes | None = None,
) -> Block:
    """The answer's last line: run, status, who, which models, tokens, cost, unpriced models."""
    who = ", ".join(contributors) if contributors else "no specialist"
    parts = [f"Run `{run_id}`", RUN_STATUS_TEXT.get(status, status), f"by {escape(who)}"]
    if notes is not None and notes.models:
        label = "model" if len(notes.models) == 1 else "models"
        parts.append(f"{label} {', '.join(f'`{m}`' for m in notes.models)}")
    if notes is not None and notes.failed:
        parts.append(f"fallback after {', '.join(f'`{m}`' for m in notes.failed)} failed")
    parts += [f"{tokens:,} tokens", f"${cost_usd:.4f}"]
    if notes is not None and notes.unpriced:
        parts.append(f"price unknown for {', '.join(f'`{m}`' for m in notes.unpriced)}")
    return context(" · ".join(parts))


def answer_blocks(
    text: str, *, footer_block: Block | None = None, feedback_run: str | None = None
) -> list[Block]:
    """A piece of an answer; the last piece carries the feedback buttons, then the footer
    (kept last: what the run was, whatever else the message holds)."""
    blocks = [section(text)]
    if feedback_run is not None:
        blocks.append(feedback_block(feedback_run))
    if footer_block is not None:
        blocks.append(footer_block)
    return blocks


FEEDBACK = "answer:feedback"


def feedback_block(run_id: str) -> Block:
    """Slack's 👍 / 👎 pair under an answer; each button's value names the run it rates."""

    def side(emoji: str, label: str, vote: str) -> Block:
        return {
            "text": {"type": "plain_text", "text": emoji},
            "accessibility_label": f"Mark this answer as {label}",
            "value": f"{vote}:{run_id}",
        }

    return {
        "type": "context_actions",
        "block_id": f"feedback:{run_id}",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK,
                "positive_button": side("👍", "good", "good"),
                "negative_button": side("👎", "bad", "bad"),
            }
        ],
    }


def feedback_line(votes: Tally) -> str:
    """`👍 12 · 👎 2 this week`."""
    if not votes.total:
        return "No feedback on answers this week."
    return f"👍 {votes.positive} · 👎 {votes.negative} this week"


def parse_feedback(value: str) -> tuple[str, bool] | None:
    """`good:<run id>` / `bad:<run id>` → (run id, positive); None for anything else."""
    vote, _, run_id = value.partition(":")
    if vote not in ("good", "bad") or not run_id or len(run_id) > 64:
        return None
    return run_id, vote == "good"


def error_blocks(message: str) -> list[Block]:
    return [section(f":warning: {message}")]


def when(dt: datetime | None) -> str:
    """A Slack date token: shown in each reader's own time zone."""
    if dt is None:
        return "—"
    ts = int(dt.timestamp())
    return f"<!date^{ts}^{{date_short_pretty}} {{time}}|{dt.isoformat(timespec='minutes')}>"

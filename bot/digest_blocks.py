"""Digest messages and schedule replies. Pure builders: data in, Block Kit out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.blocks import Block, button, context, section, sections, when
from bot.text import escape, mrkdwn, plural, truncate
from orchestration.findings import Digest, Line
from orchestration.when import describe, when_of
from storage.models import RunStatus, Schedule

ACKNOWLEDGE = "digest:ack"
SNOOZE_HOUR = "digest:snooze_1h"
SNOOZE_DAY = "digest:snooze_1d"
INVESTIGATE = "digest:investigate"
ACTIONS_BLOCK = "digest_actions"


def title(schedule: Schedule) -> str:
    """What the schedule does, in a few words: its playbook, or its request."""
    if schedule.playbook:
        return f"{schedule.playbook}"
    return truncate(" ".join(schedule.request.split()), 60)


def _all(n: int) -> str:
    """`all 3 checks`; a single check is `1 check`, never `all 1 checks`."""
    return "1 check" if n == 1 else f"all {n} checks"


def headline(digest: Digest) -> str:
    checks = [line for line in digest.lines if not line.key.startswith(("task:", "run"))]
    failing = [line for line in digest.lines if not line.ok]
    if digest.run.status == RunStatus.FAILED and not digest.run.plan:
        return "❌ the run failed before it could check anything"
    if checks:
        bad = sum(1 for line in checks if not line.ok)
        if bad:
            state = f"❌ {bad} of {len(checks)} checks failing"
        elif failing:
            state = f"⚠️ {_all(len(checks))} passing, {plural(len(failing), 'task')} failed"
        else:
            state = f"✅ {_all(len(checks))} passing"
    else:
        state = (
            "✅ all tasks done"
            if not failing
            else f"❌ {plural(len(failing), 'task')} did not succeed"
        )
    if digest.recovered:
        state += " — recovered"
    elif digest.changed:
        state += " — changed since the last run"
    return state


def line_text(line: Line) -> str:
    mark = "✅" if line.ok else "❌"
    text = f"{mark} {escape(truncate(line.label, 120))} — {escape(line.figure)}"
    if line.was is None:
        return text
    if line.changed:
        return text + f"  _(was {escape(str(line.was.get('figure', '?')))})_"
    return text + "  _(unchanged)_"


def digest_blocks(digest: Digest) -> list[Block]:
    schedule, run = digest.schedule, digest.run
    blocks: list[Block] = [
        section(f"*📋 {escape(title(schedule))}* · {headline(digest)}"),
    ]
    lines = [line_text(line) for line in digest.lines] + [
        f"➖ {escape(truncate(label, 120))} — not checked this time" for label in digest.gone
    ]
    blocks += sections(lines[:60])
    if run.answer:
        first = mrkdwn(run.answer.strip().split("\n\n")[0])
        blocks.append(section(truncate(first, 700)))
    notes = []
    if digest.missed:
        were = "was" if digest.missed == 1 else "were"
        notes.append(
            f"⏭️ {plural(digest.missed, 'scheduled run')} {were} missed while Baton was down"
        )
    if digest.skipped_busy:
        notes.append(
            f"⏭️ {plural(digest.skipped_busy, 'run')} skipped because the previous one was still going"
        )
    if notes:
        blocks.append(context(" · ".join(notes)))
    tokens = run.input_tokens + run.output_tokens
    blocks.append(
        context(
            f"Schedule `{schedule.id}` ({describe(when_of(schedule), schedule.timezone)}) · "
            f"run `{run.id}` · {tokens:,} tokens · ${run.cost_usd:.4f} · "
            f"{when(digest.fire.fire_time)}" + (" · run now" if digest.fire.manual else "")
        )
    )
    if digest.needs_attention:
        value = str(digest.fire.id)
        blocks.append(
            {
                "type": "actions",
                "block_id": ACTIONS_BLOCK,
                "elements": [
                    button("Acknowledge", ACKNOWLEDGE, value, style="primary"),
                    button("Snooze 1h", SNOOZE_HOUR, value),
                    button("Snooze 1d", SNOOZE_DAY, value),
                    button("Investigate now", INVESTIGATE, value),
                ],
            }
        )
    return blocks


def digest_text(digest: Digest) -> str:
    """The plain-text fallback and the context an investigation starts from."""
    lines = [f"{title(digest.schedule)}: {headline(digest)}"]
    lines += [
        f"- {line.label}: {line.figure}"
        + (f" (was {line.was.get('figure')})" if line.changed and line.was else "")
        for line in digest.lines
    ]
    return "\n".join(lines)


def quiet_text(schedule: Schedule, digest: Digest) -> str:
    checks = len(digest.lines)
    return (
        f"🌙 All quiet: schedule `{schedule.id}` ({escape(title(schedule))}) has nothing to report today"
        + (f" — {plural(checks, 'check')} fine." if checks else ".")
    )


def marked(blocks: list[Block], note: str, *, done: Iterable[str]) -> list[Block]:
    """A digest's blocks with a note added under its buttons; the buttons in `done` go (what
    they did is the note), the others keep working. The notes stay in the order they came."""
    gone = set(done)
    kept: list[Block] = []
    for b in blocks:
        if b.get("block_id") == ACTIONS_BLOCK:
            left = [e for e in b.get("elements") or [] if e.get("action_id") not in gone]
            if left:
                kept.append({**b, "elements": left})
            continue
        kept.append(b)
    return [*kept, context(note)]


def investigating_note(user: str) -> str:
    return f"🔎 <@{user}> started an investigation: its progress and answer are in this thread"


def acknowledged_note(user: str, at: datetime) -> str:
    return f"👀 Acknowledged by <@{user}> {when(at)}"


def snoozed_note(user: str, until: datetime) -> str:
    return f"😴 <@{user}> snoozed this schedule's alerts until {when(until)}"

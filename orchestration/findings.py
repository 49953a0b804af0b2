"""What a scheduled run found, compared with the schedule's previous run.

A digest has one line per check (each HTTP check or JSON metric the run made) and per task
that did not succeed; each line knows its state the last time, so a change can be named
("503, was 200"). The alert mode then decides whether the channel hears about it.
Nothing here knows about Slack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from orchestration.when import zone
from storage import runs, schedules
from storage.db import Database
from storage.models import (
    AlertMode,
    FireOutcome,
    Run,
    RunStatus,
    Schedule,
    ScheduleFire,
    TaskStatus,
)


@dataclass(frozen=True)
class Line:
    key: str  # what identifies it from run to run: the tool and its target, or the task
    label: str
    ok: bool
    state: str  # compared with the last run's to tell a change
    figure: str  # the key figure shown: "200 in 41 ms", "queue.depth = 12"
    was: dict[str, Any] | None = None  # the previous run's {"ok", "state", "figure"}

    @property
    def changed(self) -> bool:
        return self.was is not None and (
            self.was.get("state") != self.state or self.was.get("ok") != self.ok
        )

    def snapshot(self) -> dict[str, Any]:
        return {"ok": self.ok, "state": self.state, "figure": self.figure, "label": self.label}


@dataclass(frozen=True)
class Digest:
    schedule: Schedule
    fire: ScheduleFire
    run: Run
    lines: list[Line]
    first: bool  # no earlier run to compare with
    gone: list[str] = field(default_factory=list)  # checked last time, not this time
    missed: int = 0  # fires that never ran since the last digest posted (Baton was down)
    skipped_busy: int = 0  # fires skipped since then because a run was still going
    previous_failed: bool = False

    @property
    def failed(self) -> bool:
        return self.run.status != RunStatus.SUCCEEDED or any(not line.ok for line in self.lines)

    @property
    def changed(self) -> bool:
        return bool(self.gone) or any(line.changed for line in self.lines)

    @property
    def recovered(self) -> bool:
        return self.previous_failed and not self.failed

    @property
    def needs_attention(self) -> bool:
        return self.failed or self.changed

    def snapshot(self) -> dict[str, Any]:
        return {line.key: line.snapshot() for line in self.lines}


class Verdict(StrEnum):
    POST = "post"  # post the digest
    QUIET = "quiet"  # post the daily "all quiet" line
    HOLD = "hold"  # post nothing


def verdict(digest: Digest, *, now: datetime, posted_today: bool) -> Verdict:
    """What the alert mode says: post, a daily quiet line, or nothing."""
    schedule = digest.schedule
    if digest.fire.manual:
        return Verdict.POST  # somebody asked for this run
    if schedule.snoozed_until is not None and schedule.snoozed_until > now:
        return Verdict.HOLD
    match schedule.alert:
        case AlertMode.ALWAYS:
            post = True
        case AlertMode.ON_CHANGE:
            post = digest.first or digest.changed
        case AlertMode.ON_FAILURE:
            post = digest.failed or digest.recovered
    if post:
        return Verdict.POST
    if schedule.quiet_daily and not posted_today:
        return Verdict.QUIET
    return Verdict.HOLD


async def build(db: Database, run: Run) -> Digest | None:
    """The digest of a finished scheduled run; None when the run is not a schedule's."""
    fire = await schedules.fire_of_run(db, run.id)
    if fire is None or fire.id is None:
        return None
    schedule = await schedules.get(db, fire.schedule_id)
    if schedule is None:
        return None
    history = [
        f for f in await schedules.recent_fires(db, schedule.id, limit=200) if f.id != fire.id
    ]
    earlier = [f for f in history if f.id is not None and f.id < fire.id]
    previous = next((f for f in earlier if f.settled), None)
    before = dict(previous.checks or {}) if previous is not None else {}
    lines = [replace(line, was=before.get(line.key)) for line in await _lines(db, run)]
    since_post = _until_posted(earlier)
    return Digest(
        schedule=schedule,
        fire=fire,
        run=run,
        lines=lines,
        first=previous is None,
        gone=[str(v.get("label", k)) for k, v in before.items() if k not in {x.key for x in lines}],
        missed=fire.missed_before
        + sum(
            1 + f.missed_before if f.outcome == FireOutcome.MISSED else f.missed_before
            for f in since_post
        ),
        skipped_busy=sum(1 for f in since_post if f.outcome == FireOutcome.SKIPPED_BUSY),
        previous_failed=previous is not None
        and any(not v.get("ok", True) for v in (previous.checks or {}).values()),
    )


def posted_on_day(fires: list[ScheduleFire], schedule: Schedule, day_of: datetime) -> bool:
    """Whether anything was posted for this schedule on `day_of`'s date in its time zone."""
    tz = zone(schedule.timezone)
    day = day_of.astimezone(tz).date()
    return any(f.posted and f.fire_time.astimezone(tz).date() == day for f in fires)


def _until_posted(earlier: list[ScheduleFire]) -> list[ScheduleFire]:
    """Fires since the last one that posted something (newest first)."""
    found: list[ScheduleFire] = []
    for f in earlier:
        if f.posted:
            break
        found.append(f)
    return found


async def _lines(db: Database, run: Run) -> list[Line]:
    """One line per check the run made (the latest result per target), then per problem task."""
    checks: dict[str, Line] = {}
    for event in await runs.events(db, run.id):
        if event.kind == "tool_result" and event.data:
            line = _check_line(event.data)
            if line is not None:
                checks[line.key] = line
    tasks = await runs.list_tasks(db, run.id)
    lines = list(checks.values())
    for task in tasks:
        if checks and task.status == TaskStatus.SUCCEEDED:
            continue
        summary = (task.error or task.output or "").strip().splitlines()
        lines.append(
            Line(
                key=f"task:{task.task_id}",
                label=f"{task.agent}: {task.task_id}",
                ok=task.status == TaskStatus.SUCCEEDED,
                state=task.status.value,
                figure=summary[0][:200] if summary else task.status.value,
            )
        )
    if not tasks and run.status == RunStatus.FAILED:
        lines.append(
            Line(key="run", label="run", ok=False, state="failed", figure=(run.error or "")[:200])
        )
    return lines


def _check_line(result: dict[str, Any]) -> Line | None:
    tool, data = result.get("tool"), result.get("data") or {}
    url = data.get("url")
    if not url:
        return None
    ok = bool(result.get("ok"))
    if tool == "http_check":
        status = data.get("status")
        figure = (
            f"{status} in {data.get('latency_ms')} ms" if status else f"down: {data.get('error')}"
        )
        if data.get("keyword"):
            figure += f", '{data['keyword']}' {'found' if data.get('keyword_found') else 'missing'}"
        state = f"{status}|{data.get('keyword_found')}"
        return Line(key=f"http_check {url}", label=url, ok=ok, state=state, figure=figure)
    if tool == "json_metric":
        path = data.get("path") or ""
        value = json.dumps(data.get("value"), ensure_ascii=False)
        # With a threshold, passing or failing is the state; without one, the value itself.
        state = str(data.get("passed")) if data.get("op") else value
        return Line(
            key=f"json_metric {url} {path}",
            label=f"{url} {path}".strip(),
            ok=ok,
            state=state,
            figure=f"{path} = {value[:80]}",
        )
    return None

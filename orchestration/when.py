"""When a schedule fires: `<when>` text to a trigger, fire times, and a human reading.

Accepted: a 5-field cron expression (`0 9 * * 1-5`, weekdays numbered as in crontab, 0 or 7
= Sunday), an interval (`every 15m`, `every 2h`, one minute or more), or a daily time
(`every day at 09:00`, `every weekday at 8:30`, `every monday at 9am`). Times are wall-clock
times in the schedule's zone: across a daylight-saving change a daily run happens once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from orchestration.errors import OrchestrationError
from storage.models import Schedule, ScheduleKind

ACCEPTED_FORMS = """Accepted forms:
• an interval of one minute or more: `every 15m`, `every 2h`, `every 30 minutes`
• a daily time: `every day at 09:00`, `every weekday at 8:30`, `every monday at 9am`
• a cron expression: `0 9 * * 1-5` (minute hour day-of-month month weekday; 0 = Sunday)
• optionally a time zone: `tz=Europe/Berlin` (default: yours in Slack, else UTC)"""

MIN_INTERVAL = 60
_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # crontab numbering: 0 = Sunday
_DAY_WORDS = {
    "day": "*",
    "daily": "*",
    "weekday": "1-5",
    "weekend": "0,6",
    **{full: str(i) for i, full in enumerate(
        ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    )},
}  # fmt: skip
_INTERVAL = re.compile(r"(?:every\s+)?(\d+)?\s*([a-z]+)", re.IGNORECASE)
_AT = re.compile(
    r"(?:every\s+|each\s+)?(\w+?)s?\s+at\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?",
    re.IGNORECASE,
)


class WhenError(OrchestrationError, ValueError):
    """`<when>` could not be understood; the message says why and shows the accepted forms."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}\n{ACCEPTED_FORMS}")
        self.problem = problem


@dataclass(frozen=True)
class When:
    kind: ScheduleKind
    cron: str | None = None  # 5 fields, crontab numbering
    seconds: int | None = None


def when_of(schedule: Schedule) -> When:
    """When a stored schedule fires."""
    if schedule.kind == ScheduleKind.INTERVAL:
        return When(kind=ScheduleKind.INTERVAL, seconds=schedule.interval_seconds)
    return When(kind=ScheduleKind.CRON, cron=schedule.cron)


def parse_when(text: str) -> When:
    """`every 15m`, `every day at 09:00` or `0 9 * * 1-5` to a When; WhenError otherwise."""
    text = " ".join(text.strip().split())
    if not text:
        raise WhenError("Say when the schedule should run.")
    if m := _AT.fullmatch(text):
        return _daily(text, m)
    if m := _INTERVAL.fullmatch(text):
        return _interval(text, m)
    fields = text.split(" ")
    if len(fields) == 5:
        cron = " ".join(fields)
        try:
            _cron_trigger(cron, UTC)
        except ValueError as e:
            raise WhenError(f"`{text}` is not a valid cron expression ({e}).") from None
        return When(kind=ScheduleKind.CRON, cron=cron)
    raise WhenError(f"I can't read `{text}` as a time.")


def _interval(text: str, m: re.Match[str]) -> When:
    count, unit = int(m.group(1) or 1), m.group(2).lower()
    if unit not in _UNITS:
        raise WhenError(f"I can't read `{text}` as a time.")
    seconds = count * _UNITS[unit]
    if seconds < MIN_INTERVAL:
        raise WhenError(f"`{text}` is too often: schedules run at most once a minute.")
    if seconds > 366 * 86400:
        raise WhenError(f"`{text}` is too far apart: at most once a year.")
    return When(kind=ScheduleKind.INTERVAL, seconds=seconds)


def _daily(text: str, m: re.Match[str]) -> When:
    day, hour, minute, half = m.group(1).lower(), int(m.group(2)), int(m.group(3) or 0), m.group(4)
    if day not in _DAY_WORDS:
        raise WhenError(f"`{m.group(1)}` is not a day I know (day, weekday, weekend, monday…).")
    if half:
        if not 1 <= hour <= 12:
            raise WhenError(f"`{text}`: with am/pm the hour is 1 to 12.")
        hour = hour % 12 + (12 if half.lower() == "pm" else 0)
    if hour > 23 or minute > 59:
        raise WhenError(f"`{text}`: {hour:02d}:{minute:02d} is not a time of day.")
    return When(kind=ScheduleKind.CRON, cron=f"{minute} {hour} * * {_DAY_WORDS[day]}")


@cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def zone(name: str) -> ZoneInfo:
    """A time zone by its IANA name, in any letter case; WhenError when unknown."""
    canonical = _zone_names().get(name.strip().lower())
    if canonical is None:
        raise WhenError(
            f"`{name}` is not a time zone I know: use an IANA name like Europe/Berlin, "
            "America/New_York or UTC."
        )
    try:
        return ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError):
        raise WhenError(f"`{name}` is not a time zone I know.") from None


def _weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday) in APScheduler's terms (day names)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        spec, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"bad step in weekday field '{item}'")
        if spec == "*":
            first, last = 0, 6
        else:
            low, _, high = spec.partition("-")
            first = _day_number(low)
            last = _day_number(high) if high else (7 if step is not None else first)
            if last < first:
                raise ValueError(f"weekday range '{spec}' runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    return ",".join(_DAYS[d] for d in sorted(days))


def _day_number(token: str) -> int:
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token[:3] in _DAYS and len(token) == 3:
        return _DAYS.index(token[:3])
    raise ValueError(f"'{token}' is not a weekday (0-7 or sun-sat)")


def _cron_trigger(cron: str, tz: tzinfo) -> CronTrigger:
    minute, hour, day, month, weekday = cron.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        second="0",
        timezone=tz,
    )


def trigger(when: When, tz: ZoneInfo, *, anchor: datetime) -> BaseTrigger:
    """The APScheduler trigger. Intervals count from `anchor` (the schedule's creation)."""
    if when.kind == ScheduleKind.INTERVAL:
        assert when.seconds is not None
        return IntervalTrigger(
            seconds=when.seconds, start_date=anchor.replace(microsecond=0), timezone=tz
        )
    assert when.cron is not None
    return _cron_trigger(when.cron, tz)


def fire_times(
    when: When,
    tz: ZoneInfo,
    *,
    anchor: datetime,
    after: datetime,
    until: datetime,
    cap: int = 1000,
) -> list[datetime]:
    """Fire times in (after, until], at most `cap`, each once in wall-clock terms.

    When clocks go back, a wall-clock time happens twice; a cron schedule fires at the
    first of the two only (as cron does), so a daily run never doubles.
    """
    found: list[datetime] = []
    trig = trigger(when, tz, anchor=anchor)
    probe = after + timedelta(microseconds=1)
    while len(found) < cap:
        nxt = trig.get_next_fire_time(None, probe)
        if nxt is None or nxt > until:
            break
        if nxt < probe:  # at a repeated wall-clock hour the trigger can step back: move on
            probe += timedelta(seconds=1)
            continue
        probe = nxt + timedelta(seconds=1)
        if when.kind == ScheduleKind.CRON and _second_of_a_repeat(nxt, tz, after):
            continue
        found.append(nxt.astimezone(UTC))
    return found


def upcoming(
    when: When, tz: ZoneInfo, *, anchor: datetime, now: datetime, count: int = 3
) -> list[datetime]:
    """The next `count` fire times after `now`, in UTC."""
    return fire_times(
        when, tz, anchor=anchor, after=now, until=now + timedelta(days=3660), cap=count
    )


def _second_of_a_repeat(moment: datetime, tz: ZoneInfo, after: datetime) -> bool:
    """`moment` is the second occurrence of a wall-clock time whose first one was due too.

    The first occurrence counts when it lies in the window (after `after`) or is `after`
    itself (the last fire claimed).
    """
    local = moment.astimezone(tz)
    first = local.replace(tzinfo=None).replace(tzinfo=tz, fold=0)
    if first.utcoffset() == local.utcoffset():
        return False
    return first.astimezone(UTC) >= after.astimezone(UTC)


def describe(when: When, tz_name: str) -> str:
    """A person's reading: `every 15 minutes`, `at 09:00 on weekdays (Europe/Berlin)`."""
    if when.kind == ScheduleKind.INTERVAL:
        assert when.seconds is not None
        return "every " + _duration(when.seconds)
    assert when.cron is not None
    minute, hour, day, month, weekday = when.cron.split()
    if minute.startswith("*/") and hour == day == month == weekday == "*":
        return "every " + _duration(int(minute[2:]) * 60)
    if minute.isdigit() and hour == "*" and day == month == weekday == "*":
        return f"every hour at :{int(minute):02d}"
    if minute.isdigit() and hour.isdigit() and day == "*" and month == "*":
        names = _weekdays(weekday).split(",") if weekday != "*" else _DAYS
        monday_first = sorted(names, key=lambda d: (_DAYS.index(d) + 6) % 7)
        days = {
            "mon,tue,wed,thu,fri,sat,sun": "every day",
            "mon,tue,wed,thu,fri": "on weekdays",
            "sat,sun": "on weekends",
        }
        on = days.get(",".join(monday_first)) or "on " + ", ".join(
            d.capitalize() for d in monday_first
        )
        return f"{on} at {int(hour):02d}:{int(minute):02d} ({tz_name})"
    return f"cron `{when.cron}` ({tz_name})"


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def show_time(moment: datetime, tz: ZoneInfo) -> str:
    """`Mon 23 Nov 09:00 CET`: in the schedule's zone, so every reader sees the same."""
    local = moment.astimezone(tz)
    return f"{local:%a %d %b %H:%M} {local.tzname()}"

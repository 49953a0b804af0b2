"""`/baton schedule …`: add, list, pause, resume, delete and run schedules.

`add` understands `"<when>" <request>` or `"<when>" run <playbook> [details]`, with options
anywhere: `tz=Europe/Berlin`, `alert=always|on_change|on_failure`, `quiet=daily`. Bad input
is answered with what was wrong and the accepted forms; nothing is stored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from agents.spec import Catalog
from bot.background import ack_then_respond
from bot.blocks import Block, context, section
from bot.blocks import when as when_token
from bot.digest_blocks import title
from bot.errors import BotError
from bot.permissions import may_manage
from bot.text import escape, plural, truncate
from orchestration.scheduler import Fired
from orchestration.when import (
    ACCEPTED_FORMS,
    When,
    WhenError,
    describe,
    parse_when,
    upcoming,
    when_of,
    zone,
)
from storage import schedules
from storage.models import AlertMode, Schedule

if TYPE_CHECKING:
    from bot.parts import Baton

log = logging.getLogger(__name__)

HELP = f"""*Schedules* run a request or a playbook again and again, and post a digest here.
• `/baton schedule add "<when>" <request>` — e.g. `/baton schedule add "every 15m" check https://example.com`
• `/baton schedule add "<when>" run <playbook> [details]` — e.g. `/baton schedule add "every weekday at 09:00" run morning-digest https://example.com`
• options: `tz=Europe/Berlin` · `alert=always` (default), `alert=on_change` or `alert=on_failure` · `quiet=daily` (one "all quiet" line a day when nothing is posted)
• `/baton schedule list` · `pause <id>` · `resume <id>` · `delete <id>` · `run <id>` (run it now) — for whoever made it, the members of its channel and Baton admins
{ACCEPTED_FORMS}"""

_OPTION = re.compile(r"(?<!\S)(tz|alert|quiet)=(\S*)", re.IGNORECASE)
_QUOTED_WHEN = re.compile(r"^[\"“”'‘’](.+?)[\"“”'‘’](?:\s+|$)(.*)$", re.DOTALL)
_ALERTS = {
    "always": AlertMode.ALWAYS,
    "on_change": AlertMode.ON_CHANGE,
    "on-change": AlertMode.ON_CHANGE,
    "change": AlertMode.ON_CHANGE,
    "on_failure": AlertMode.ON_FAILURE,
    "on-failure": AlertMode.ON_FAILURE,
    "failure": AlertMode.ON_FAILURE,
}


class ScheduleInputError(BotError, ValueError):
    """A sentence for the person: what was wrong and what to type instead."""


@dataclass(frozen=True)
class NewSchedule:
    when_text: str
    when: When
    timezone: str | None  # None: the requester's own
    request: str
    playbook: str | None
    alert: AlertMode
    quiet_daily: bool


def parse_add(text: str, catalog: Catalog) -> NewSchedule:
    """`"<when>" <request>` and options to a NewSchedule; ScheduleInputError otherwise."""
    options: dict[str, str] = {}
    for m in _OPTION.finditer(text):
        options[m.group(1).lower()] = m.group(2)
    text = " ".join(_OPTION.sub(" ", text).split())
    when_text, rest = _split_when(text)
    when = parse_when(when_text)
    tz = options.get("tz")
    if tz is not None:
        tz = zone(tz).key
    alert = _ALERTS.get(options.get("alert", "always").lower())
    if alert is None:
        raise ScheduleInputError(
            f"`alert={options['alert']}` is not an alert mode: use `alert=always`, "
            "`alert=on_change` or `alert=on_failure`."
        )
    quiet = options.get("quiet", "off").lower()
    if quiet not in ("daily", "off", "no"):
        raise ScheduleInputError(f"`quiet={quiet}`: use `quiet=daily` or leave it out.")
    playbook = None
    word, _, extra = rest.partition(" ")
    if word.lower() == "run":
        name, _, extra = extra.strip().partition(" ")
        if not name:
            raise ScheduleInputError("Say which playbook to run: `run <playbook>`.")
        if catalog.playbook(name) is None:
            names = ", ".join(f"`{p.name}`" for p in catalog.playbooks) or "none are configured"
            raise ScheduleInputError(
                f"There is no playbook called `{escape(name)}`. Playbooks: {names}."
            )
        playbook, rest = name, extra.strip()
    elif not rest:
        raise ScheduleInputError("Say what to do after the time: a request, or `run <playbook>`.")
    return NewSchedule(
        when_text=when_text,
        when=when,
        timezone=tz,
        request=rest,
        playbook=playbook,
        alert=alert,
        quiet_daily=quiet == "daily",
    )


def _split_when(text: str) -> tuple[str, str]:
    """The quoted `<when>`, or the longest leading words that read as one."""
    if not text:
        raise WhenError("Say when the schedule should run, and what to do.")
    quoted = _QUOTED_WHEN.match(text)
    if quoted:
        return quoted.group(1).strip(), quoted.group(2).strip()
    words = text.split(" ")
    for n in range(min(len(words), 6), 0, -1):
        try:
            parse_when(" ".join(words[:n]))
        except WhenError:
            continue
        return " ".join(words[:n]), " ".join(words[n:])
    raise WhenError(
        f"I can't find when to run in `{escape(truncate(text, 80))}`; "
        'put it first, in quotes: `/baton schedule add "every 15m" <request>`.'
    )


async def handle_schedule_command(
    baton: Baton, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any], args: str
) -> None:
    """Answered in the ack when the text alone decides; else acked and answered after."""
    word, _, rest = args.strip().partition(" ")
    rest = rest.strip()
    match word.lower():
        case "" | "help" | "?":
            await ack(response_type="ephemeral", text=HELP)
        case "add" | "new" | "create":
            try:
                wanted = parse_add(rest, baton.catalog)
            except WhenError as e:
                await ack(
                    response_type="ephemeral",
                    text=f"{e.problem} Nothing was scheduled.\n{ACCEPTED_FORMS}",
                )
                return
            except ScheduleInputError as e:
                await ack(response_type="ephemeral", text=f"{e} Nothing was scheduled.")
                return
            await _after(baton, ack, respond, _add(baton, command, wanted))
        case "list" | "ls":
            await _after(baton, ack, respond, _list(baton, str(command.get("channel_id") or "")))
        case "pause" | "resume" | "delete" | "remove" | "run":
            schedule_id = rest.split(" ")[0] if rest else ""
            if not schedule_id:
                await ack(
                    response_type="ephemeral",
                    text=f"Say which schedule: `/baton schedule {word.lower()} <id>` (`/baton schedule list` shows the ids).",
                )
                return
            await _after(baton, ack, respond, _by_id(baton, command, word.lower(), schedule_id))
        case _:
            await ack(
                response_type="ephemeral",
                text=f"I don't know `schedule {escape(truncate(word, 40))}`.\n{HELP}",
            )


async def _after(
    baton: Baton, ack: AsyncAck, respond: AsyncRespond, reply: Awaitable[dict[str, Any]]
) -> None:
    """Ack now; answer through the command's response URL once the work is done."""
    await ack_then_respond(
        baton.background,
        ack,
        respond,
        reply,
        sorry="Something went wrong inside Baton while doing this; nothing may have changed. Try again in a minute.",
        failure="a schedule command failed",
        name="schedule-command",
    )


async def _add(baton: Baton, command: dict[str, Any], wanted: NewSchedule) -> dict[str, Any]:
    user = str(command.get("user_id") or "") or None
    team = str(command.get("team_id") or "") or None
    tz_name = wanted.timezone or await _users_zone(baton, user, team)
    schedule = await schedules.create(
        baton.db,
        Schedule(
            id=schedules.new_schedule_id(),
            created_at=baton.db.clock(),
            created_by=user,
            team_id=team,
            channel_id=str(command.get("channel_id") or ""),
            when_text=wanted.when_text,
            kind=wanted.when.kind,
            cron=wanted.when.cron,
            interval_seconds=wanted.when.seconds,
            timezone=tz_name,
            request=wanted.request,
            playbook=wanted.playbook,
            alert=wanted.alert,
            quiet_daily=wanted.quiet_daily,
        ),
    )
    baton.scheduler.watch(schedule)
    return {
        "response_type": "in_channel",
        "text": f"Scheduled {schedule.id}: {describe(wanted.when, tz_name)}",
        "blocks": created_blocks(schedule, now=baton.db.clock()),
    }


async def _users_zone(baton: Baton, user: str | None, team_id: str | None) -> str:
    """The requester's time zone from their Slack profile, else UTC."""
    if not user:
        return "UTC"
    try:
        resp = await baton.client_for(team_id).users_info(user=user)
        name = str((resp.get("user") or {}).get("tz") or "UTC")
        return zone(name).key
    except (SlackApiError, WhenError) as e:
        log.info("time zone of %s unknown (%s); using UTC", user, e)
        return "UTC"


def created_blocks(schedule: Schedule, *, now: datetime) -> list[Block]:
    tz = zone(schedule.timezone)
    when = when_of(schedule)
    nexts = upcoming(when, tz, anchor=schedule.created_at, now=now, count=3)
    what = schedule.request
    if schedule.playbook:
        what = f"run `{schedule.playbook}` {schedule.request}".strip()
    return [
        section(
            f"🗓️ Scheduled `{schedule.id}`: *{describe(when, schedule.timezone)}* — "
            f"{escape(truncate(what, 500))}"
        ),
        section("*Next:* " + " · ".join(when_token(t) for t in nexts)),
        context(
            f"Digests post here · alerts: `{schedule.alert.value}`"
            + (" · a daily all-quiet line" if schedule.quiet_daily else "")
            + f" · `/baton schedule run {schedule.id}` · `pause {schedule.id}` · `delete {schedule.id}`"
        ),
    ]


async def _list(baton: Baton, channel: str) -> dict[str, Any]:
    found = await schedules.in_channel(baton.db, channel)
    if not found:
        return {
            "response_type": "ephemeral",
            "text": 'No schedules in this channel. Add one: `/baton schedule add "every day at 09:00" <request>`.',
        }
    now = baton.db.clock()
    lines = []
    for s in found:
        tz = zone(s.timezone)
        nxt = upcoming(when_of(s), tz, anchor=s.created_at, now=now, count=1)
        state = "⏸️ paused" if s.paused else ("next " + when_token(nxt[0]) if nxt else "no next run")
        if s.snoozed_until and s.snoozed_until > now and not s.paused:
            state += f" · alerts snoozed until {when_token(s.snoozed_until)}"
        lines.append(
            f"`{s.id}` *{escape(title(s))}* — {describe(when_of(s), s.timezone)} · "
            f"alerts `{s.alert.value}` · {state}"
        )
    blocks: list[Block] = [section(f"*{plural(len(found), 'schedule')} in this channel*")]
    blocks += [section(line) for line in lines[:45]]
    return {"response_type": "ephemeral", "text": plural(len(found), "schedule"), "blocks": blocks}


async def _by_id(
    baton: Baton, command: dict[str, Any], verb: str, schedule_id: str
) -> dict[str, Any]:
    schedule = baton.own(
        await schedules.get(baton.db, schedule_id), str(command.get("team_id") or "")
    )
    if schedule is None:
        return {
            "response_type": "ephemeral",
            "text": f"There is no schedule `{escape(truncate(schedule_id, 40))}`. `/baton schedule list` shows this channel's.",
        }
    user = str(command.get("user_id") or "")
    if not await may_manage(baton, schedule, user):
        return {
            "response_type": "ephemeral",
            "text": (
                f"You can't {verb} schedule `{schedule.id}`: only the person who made it, members "
                f"of <#{schedule.channel_id}> (where it posts) and Baton admins can. "
                "Nothing was changed."
            ),
        }
    match verb:
        case "pause":
            await schedules.change(baton.db, schedule.id, action="paused", by=user, paused=True)
            baton.scheduler.forget(schedule.id)
            text = f"⏸️ Paused schedule `{schedule.id}` ({escape(title(schedule))}). `/baton schedule resume {schedule.id}` starts it again."
        case "resume":
            resumed = await schedules.change(
                baton.db, schedule.id, action="resumed", by=user, paused=False
            )
            if resumed is not None:
                baton.scheduler.watch(resumed)
            tz = zone(schedule.timezone)
            nxt = upcoming(
                when_of(schedule), tz, anchor=schedule.created_at, now=baton.db.clock(), count=1
            )
            text = f"▶️ Resumed schedule `{schedule.id}`" + (
                f"; next run {when_token(nxt[0])}." if nxt else "."
            )
        case "delete" | "remove":
            await schedules.change(baton.db, schedule.id, action="deleted", by=user, deleted=True)
            baton.scheduler.forget(schedule.id)
            text = f"🗑️ Deleted schedule `{schedule.id}` ({escape(title(schedule))})."
        case _:
            await schedules.audit(baton.db, schedule.id, "run_now", by=user)
            result = await baton.scheduler.run_now(schedule, user_id=user or None)
            if result is None:
                text = f"Schedule `{schedule.id}` was started by someone else just now."
            elif result.fired == Fired.BUSY:
                text = (
                    f"Schedule `{schedule.id}`'s previous run `{result.run_id}` is still going, "
                    "so I didn't start another; try again when it has finished."
                )
            else:
                text = f"▶️ Running schedule `{schedule.id}` now (run `{result.run_id}`); its digest will be posted in <#{schedule.channel_id}>."
    return {"response_type": "ephemeral", "text": text}

"""Schedules end to end: slash commands, fires driven by the scheduler, digests in the channel.

One test lets APScheduler's own timer fire a one-second schedule (stored directly: the
command allows at most one fire a minute). The others move Baton's clock on by the
schedule's interval and tick, as the timer would, so no test waits for a fire time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot import digest_blocks as ui
from orchestration.scheduler import Fired, Scheduler
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import runs, schedules
from storage.clock import MovedClock
from storage.db import Database, utcnow
from storage.models import AlertMode, FireOutcome, Run, Schedule, ScheduleFire
from testkit.databases import Site
from testkit.harness import Bot, running_bot, wait_until

CHANNEL = "C0GENERAL"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as stand_in:
        yield stand_in


def digests(slack: SlackStandIn, channel: str = CHANNEL) -> list[Message]:
    """Top-level messages from Baton that are digests (they carry the schedule footer)."""
    return [
        m
        for m in slack.messages(channel)
        if m.user == slack.workspace.bot.id
        and not m.is_reply
        and m.ephemeral_for is None
        and "Schedule `" in str(m.blocks)
    ]


def ephemeral_to(slack: SlackStandIn, user: str, channel: str = CHANNEL) -> list[str]:
    return [m.text for m in slack.messages(channel) if m.ephemeral_for == user]


async def add_schedule(
    db: Database,
    request: str,
    *,
    seconds: int = 1,
    alert: AlertMode = AlertMode.ALWAYS,
    created_at: datetime | None = None,
    playbook: str | None = None,
    quiet_daily: bool = False,
) -> Schedule:
    return await schedules.create(
        db,
        Schedule(
            id=schedules.new_schedule_id(),
            created_at=created_at or utcnow(),
            created_by="U0ALICE",
            team_id="T0BATON",
            channel_id=CHANNEL,
            when_text=f"every {seconds}s",
            kind="interval",
            interval_seconds=seconds,
            timezone="Europe/Berlin",
            request=request,
            playbook=playbook,
            alert=alert,
            quiet_daily=quiet_daily,
        ),
    )


async def fires(db: Database, schedule_id: str) -> list[ScheduleFire]:
    return list(reversed(await schedules.recent_fires(db, schedule_id, limit=500)))


async def settled(db: Database, schedule_id: str, count: int) -> list[ScheduleFire]:
    async def enough() -> list[ScheduleFire] | None:
        done = [f for f in await fires(db, schedule_id) if f.settled]
        return done if len(done) >= count else None

    found: list[ScheduleFire] = await wait_until(enough)
    return found


async def start_clock(bot: Bot) -> None:
    await bot.baton.scheduler.start()


async def next_fire(bot: Bot, clock: MovedClock, schedule: Schedule) -> None:
    """The schedule's next fire time comes: the clock moves on by its interval, the scheduler
    ticks (as its own timer would), and the run it starts finishes."""
    clock.move(timedelta(seconds=schedule.interval_seconds or 0))
    await bot.baton.scheduler.tick(schedule.id)
    await bot.idle()


# Slash commands


async def test_add_answers_with_id_reading_and_next_three_times(
    slack: SlackStandIn, sqlite_url: str
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        status, reply = await bot.slash(
            'schedule add "every weekday at 09:00" run morning-digest https://status.example.com alert=on_change'
        )

        assert status == 200 and reply is not None
        assert reply["response_type"] == "in_channel"
        shown = str(reply["blocks"])
        [stored] = await schedules.in_channel(bot.baton.db, CHANNEL)
        assert f"Scheduled `{stored.id}`" in shown
        # No tz= given: Alice's Slack time zone (Europe/Berlin in the stand-in).
        assert "on weekdays at 09:00 (Europe/Berlin)" in shown
        assert "run `morning-digest` https://status.example.com" in shown
        # Shown as Slack date tokens: each reader sees them in their own zone and format.
        next_times = [
            datetime.fromtimestamp(int(t), ZoneInfo("Europe/Berlin"))
            for t in re.findall(r"<!date\^(\d+)\^", shown.split("*Next:*")[1])
        ]
        assert len(next_times) == 3
        assert all(t.hour == 9 and t.minute == 0 and t.weekday() < 5 for t in next_times)
        assert (stored.kind, stored.cron, stored.timezone) == (
            "cron",
            "0 9 * * 1-5",
            "Europe/Berlin",
        )
        assert (stored.playbook, stored.request, stored.alert) == (
            "morning-digest",
            "https://status.example.com",
            AlertMode.ON_CHANGE,
        )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('schedule add "every 10s" check https://example.com', "too often"),
        ('schedule add "whenever" check https://example.com', "I can't read `whenever` as a time"),
        ('schedule add "every 15m" run nope', "There is no playbook called `nope`"),
        (
            'schedule add "every 15m" check https://example.com tz=Atlantis/Capital',
            "not a time zone I know",
        ),
        ("schedule add", "Say when the schedule should run"),
    ],
)
async def test_bad_input_gets_a_clear_reply_and_stores_nothing(
    slack: SlackStandIn, sqlite_url: str, text: str, says: str
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        status, reply = await bot.slash(text)

        assert status == 200 and reply is not None
        assert reply["response_type"] == "ephemeral"
        assert says in reply["text"]
        assert "Nothing was scheduled." in reply["text"]
        if "playbook" not in says:
            assert "Accepted forms:" in reply["text"]
        assert await schedules.in_channel(bot.baton.db, CHANNEL) == []


async def test_list_pause_resume_delete(slack: SlackStandIn, sqlite_url: str) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        await bot.slash('schedule add "every 2h" check https://example.com tz=UTC')
        [made] = await schedules.in_channel(bot.baton.db, CHANNEL)

        _, listed = await bot.slash("schedule list")
        assert listed is not None and f"`{made.id}`" in str(listed["blocks"])
        assert "every 2 hours" in str(listed["blocks"]) and "next " in str(listed["blocks"])

        _, paused = await bot.slash(f"schedule pause {made.id}")
        assert paused is not None and f"Paused schedule `{made.id}`" in paused["text"]
        assert (await schedules.get(bot.baton.db, made.id)).paused  # type: ignore[union-attr]
        _, listed = await bot.slash("schedule list")
        assert "paused" in str(listed)

        _, resumed = await bot.slash(f"schedule resume {made.id}")
        assert resumed is not None and "Resumed schedule" in resumed["text"]
        assert not (await schedules.get(bot.baton.db, made.id)).paused  # type: ignore[union-attr]

        _, deleted = await bot.slash(f"schedule delete {made.id}")
        assert deleted is not None and "Deleted schedule" in deleted["text"]
        assert await schedules.get(bot.baton.db, made.id) is None
        _, listed = await bot.slash("schedule list")
        assert listed is not None and "No schedules in this channel" in listed["text"]

        _, unknown = await bot.slash("schedule pause zzzzzz")
        assert unknown is not None and "There is no schedule `zzzzzz`" in unknown["text"]


async def test_run_now_posts_a_digest_with_one_line_per_check(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        await bot.slash(
            f'schedule add "every day at 09:00" run morning-digest {site.url("/ok")} {site.url("/down")}'
        )
        [made] = await schedules.in_channel(bot.baton.db, CHANNEL)

        _, reply = await bot.slash(f"schedule run {made.id}")
        assert reply is not None and f"Running schedule `{made.id}` now" in reply["text"]
        await bot.idle()

        [digest] = digests(slack)
        lines = str(digest.blocks)
        assert "morning-digest" in lines and "1 of 2 checks failing" in lines
        assert f"✅ {site.url('/ok')} — 200 in " in lines
        assert f"❌ {site.url('/down')} — 503 in " in lines
        assert f"Schedule `{made.id}` (every day at 09:00 (Europe/Berlin))" in lines
        assert "run now" in lines and "tokens · $0.0000" in lines
        # A failing check is an alert: it carries the buttons.
        actions = next(b for b in digest.blocks if b["type"] == "actions")
        assert [e["action_id"] for e in actions["elements"]] == [
            ui.ACKNOWLEDGE,
            ui.SNOOZE_HOUR,
            ui.SNOOZE_DAY,
            ui.INVESTIGATE,
        ]
        # The details are in the digest's thread.
        details = [m.text for m in bot.thread(digest)[1:]]
        assert details and any("web-checker" in d and "503" in d for d in details)


# Fires driven by the scheduler


async def test_fires_come_from_the_scheduler_and_each_posts_a_digest(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        made = await add_schedule(bot.baton.db, f"check {site.url('/ok')}")
        await start_clock(bot)

        done = await settled(bot.baton.db, made.id, 2)
        await bot.idle()

        fire_times = [f.fire_time for f in done]
        assert fire_times == sorted(set(fire_times))
        # Fires keep to the schedule's one-second grid; a late tick says what it stood for.
        assert all(
            b.fire_time - a.fire_time == timedelta(seconds=1 + b.missed_before)
            for a, b in pairwise(done)
        )
        posted = digests(slack)
        assert len(posted) >= 2
        assert "✅ 1 check passing" in str(posted[0].blocks)
        assert "_(unchanged)_" in str(posted[1].blocks)
        async with bot.baton.db.session() as s:
            schedule_runs = (await s.exec(select(Run).where(Run.schedule_id == made.id))).all()
        assert {r.source for r in schedule_runs} == {"schedule"}
        assert {r.id for r in schedule_runs} == {f.run_id for f in done} | {
            f.run_id for f in await fires(bot.baton.db, made.id) if f.run_id
        }


async def test_on_change_posts_only_when_the_endpoint_changes(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    clock = MovedClock()
    async with running_bot(slack, sqlite_url, clock=clock) as bot:
        made = await add_schedule(
            bot.baton.db, f"check {site.url('/status')}", seconds=60, alert=AlertMode.ON_CHANGE
        )
        for _ in range(3):
            await next_fire(bot, clock, made)
        assert len(await fires(bot.baton.db, made.id)) == 3
        assert len(digests(slack)) == 1  # the first run sets the baseline; then nothing new

        site.down = True
        await next_fire(bot, clock, made)
        assert len(digests(slack)) == 2
        changed = str(digests(slack)[1].blocks)
        assert "❌ 1 of 1 checks failing — changed since the last run" in changed
        assert re.search(r"503 in \d+ ms  _\(was 200 in \d+ ms\)_", changed)

        for _ in range(2):
            await next_fire(bot, clock, made)
        assert len(digests(slack)) == 2  # still down: no news

        site.down = False
        await next_fire(bot, clock, made)
        assert len(digests(slack)) == 3
        assert "— recovered" in str(digests(slack)[2].blocks)


async def test_a_restart_between_two_fires_loses_and_repeats_nothing(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    clock = MovedClock()
    async with running_bot(slack, sqlite_url, clock=clock) as first:
        made = await add_schedule(first.baton.db, f"check {site.url('/ok')}", seconds=60)
        await next_fire(first, clock, made)
        before = await fires(first.baton.db, made.id)
    clock.move(timedelta(seconds=60))  # the next fire time comes while no process runs
    async with running_bot(slack, sqlite_url, clock=clock) as second:
        await start_clock(second)  # catches up on the fire due while it was down
        await second.idle()
        await next_fire(second, clock, made)
        every = await fires(second.baton.db, made.id)
    times = [f.fire_time for f in every]
    assert len(every) == 3 and len(times) == len(set(times))
    assert [f.outcome for f in every] == [FireOutcome.STARTED] * len(every)
    assert all((b.fire_time - a.fire_time) == timedelta(seconds=60) for a, b in pairwise(every))
    assert every[-1].run_id not in {f.run_id for f in before}
    # The second process compared its digest with the first process's run.
    assert "_(unchanged)_" in str(digests(slack)[1].blocks)


async def test_a_missed_fire_within_grace_runs_once_when_baton_comes_back(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url, baton_schedule_grace=120) as bot:
        # Every minute; Baton was "down" for the last ten minutes: ten fires were due.
        made = await add_schedule(
            bot.baton.db,
            f"check {site.url('/ok')}",
            seconds=60,
            created_at=utcnow() - timedelta(minutes=10, seconds=5),
        )
        await start_clock(bot)
        await bot.idle()

        [fire] = await fires(bot.baton.db, made.id)
        assert fire.outcome == FireOutcome.STARTED and fire.run_id is not None
        assert fire.missed_before == 9
        # The latest one due, ten minutes after the schedule was made (fire times are whole seconds).
        latest = made.created_at + timedelta(minutes=10)
        assert timedelta(0) <= latest - fire.fire_time < timedelta(seconds=1)
        [digest] = digests(slack)
        assert "9 scheduled runs were missed while Baton was down" in str(digest.blocks)


async def test_a_missed_fire_beyond_grace_is_skipped_and_the_next_digest_says_so(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url, baton_schedule_grace=2) as bot:
        made = await add_schedule(
            bot.baton.db,
            f"check {site.url('/ok')}",
            seconds=60,
            created_at=utcnow() - timedelta(minutes=3, seconds=30),
        )
        await start_clock(bot)
        await bot.idle()

        [missed] = await fires(bot.baton.db, made.id)
        assert (missed.outcome, missed.run_id, missed.missed_before) == (
            FireOutcome.MISSED,
            None,
            2,
        )
        assert digests(slack) == []

        await bot.slash(f"schedule run {made.id}")
        await bot.idle()
        [digest] = digests(slack)
        assert "3 scheduled runs were missed while Baton was down" in str(digest.blocks)


async def test_a_fire_while_the_last_run_is_still_going_is_skipped_and_recorded(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    clock = MovedClock()
    async with running_bot(slack, sqlite_url, clock=clock) as bot:
        made = await add_schedule(bot.baton.db, f"check {site.url('/slow?s=2')}", seconds=60)
        clock.move(timedelta(seconds=60))
        first = await bot.baton.scheduler.tick(made.id)
        assert first is not None and first.fired == Fired.STARTED
        clock.move(timedelta(seconds=60))  # the next fire comes while the check still waits
        second = await bot.baton.scheduler.tick(made.id)
        assert second is not None and second.fired == Fired.BUSY
        assert second.run_id == first.run_id
        await bot.idle()

        every = await fires(bot.baton.db, made.id)
        assert [f.outcome for f in every] == [FireOutcome.STARTED, FireOutcome.SKIPPED_BUSY]
        async with bot.baton.db.session() as s:
            schedule_runs = (await s.exec(select(Run).where(Run.schedule_id == made.id))).all()
        assert [r.id for r in schedule_runs] == [first.run_id]  # never two at once
        assert len(digests(slack)) == 1
        await next_fire(bot, clock, made)
        assert len(digests(slack)) == 2
        assert "skipped because the previous one was still going" in str(digests(slack)[1].blocks)


async def test_a_fire_stores_its_run_and_hands_it_over_once_without_slack(db: Database) -> None:
    made = await add_schedule(db, "check https://example.com", seconds=60)
    handed: list[tuple[str, str]] = []

    def hand_over(run_id: str, *, name: str) -> None:
        handed.append((run_id, name))

    scheduler = Scheduler(db, hand_over, grace=timedelta(minutes=5))
    result = await scheduler.run_now(made, user_id="U0BOB")
    assert result is not None and result.fired == Fired.STARTED and result.run_id is not None

    run = await runs.get_run(db, result.run_id)
    assert run is not None
    assert (run.source, run.request, run.schedule_id, run.channel_id, run.user_id) == (
        "schedule",
        "check https://example.com",
        made.id,
        CHANNEL,
        "U0ALICE",
    )
    assert handed == [(run.id, f"schedule-{run.id}")]
    [fire] = await fires(db, made.id)
    assert (fire.outcome, fire.run_id, fire.claimed_by) == (FireOutcome.STARTED, run.id, "U0BOB")


# The digest's buttons


async def failing_digest(bot: Bot, site: Site) -> tuple[Schedule, Message]:
    # Carol sets it up: the replies to her commands are hers, apart from the clickers' notes.
    await bot.slash(f'schedule add "every day at 09:00" check {site.url("/down")}', user="U0CAROL")
    [made] = await schedules.in_channel(bot.baton.db, CHANNEL)
    await bot.slash(f"schedule run {made.id}", user="U0CAROL")
    await bot.idle()
    [digest] = digests(bot.slack)
    return made, digest


def button_value(message: Message, action_id: str) -> str:
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button")


async def test_acknowledge_marks_who_and_keeps_snooze_and_investigate_working(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        _, digest = await failing_digest(bot, site)
        value = button_value(digest, ui.ACKNOWLEDGE)

        assert await bot.click(ui.ACKNOWLEDGE, value, user="U0BOB", message=digest) == 200
        await bot.idle()

        [updated] = digests(slack)
        assert updated.edited is not None
        assert "Acknowledged by <@U0BOB>" in str(updated.blocks)
        [buttons] = [b for b in updated.blocks if b["type"] == "actions"]
        assert [e["action_id"] for e in buttons["elements"]] == [
            ui.SNOOZE_HOUR,
            ui.SNOOZE_DAY,
            ui.INVESTIGATE,
        ]
        # Snooze still works on the acknowledged digest, and says so in it.
        await bot.click(ui.SNOOZE_HOUR, value, user="U0BOB", message=updated)
        await bot.idle()
        [snoozed] = digests(slack)
        assert "Acknowledged by <@U0BOB>" in str(snoozed.blocks)
        assert "snoozed this schedule's alerts until" in str(snoozed.blocks)
        [buttons] = [b for b in snoozed.blocks if b["type"] == "actions"]
        assert [e["action_id"] for e in buttons["elements"]] == [ui.INVESTIGATE]
        fire = await schedules.get_fire(bot.baton.db, int(value))
        assert fire is not None and fire.acknowledged_by == "U0BOB"

        # A late second click (the old message, still with buttons) changes nothing.
        assert await bot.click(ui.ACKNOWLEDGE, value, user="U0ALICE", message=digest) == 200
        await bot.idle()
        assert ephemeral_to(slack, "U0ALICE") == ["<@U0BOB> already acknowledged this digest."]
        fire = await schedules.get_fire(bot.baton.db, int(value))
        assert fire is not None and fire.acknowledged_by == "U0BOB"


async def test_snooze_holds_back_alerts_until_it_ends(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    clock = MovedClock()
    async with running_bot(slack, sqlite_url, clock=clock) as bot:
        made = await add_schedule(
            bot.baton.db, f"check {site.url('/down')}", seconds=900, alert=AlertMode.ON_FAILURE
        )
        await next_fire(bot, clock, made)
        [digest] = digests(slack)

        await bot.click(
            ui.SNOOZE_HOUR, button_value(digest, ui.SNOOZE_HOUR), user="U0BOB", message=digest
        )
        await bot.idle()

        snoozed = await schedules.get(bot.baton.db, made.id)
        assert snoozed is not None and snoozed.snoozed_until is not None
        assert timedelta(minutes=59) < snoozed.snoozed_until - clock() <= timedelta(hours=1)
        assert "snoozed this schedule's alerts until" in str(digests(slack)[0].blocks)
        for _ in range(3):  # every quarter of an hour, still failing, within the hour
            await next_fire(bot, clock, made)
        assert len(digests(slack)) == 1
        await next_fire(bot, clock, made)  # the hour is over
        assert len(digests(slack)) == 2
        assert "❌ 1 of 1 checks failing" in str(digests(slack)[1].blocks)


async def test_investigate_starts_one_run_in_the_digest_thread(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        _, digest = await failing_digest(bot, site)
        value = button_value(digest, ui.INVESTIGATE)

        await bot.click(ui.INVESTIGATE, value, user="U0BOB", message=digest)
        await bot.click(ui.INVESTIGATE, value, user="U0ALICE", message=digest)
        await bot.idle()

        investigation = await runs.latest_run(bot.baton.db, channel_id=CHANNEL)
        assert investigation is not None and investigation.source == "investigate"
        assert investigation.thread_ts == digest.ts and investigation.user_id == "U0BOB"
        assert site.url("/down") in investigation.request
        async with bot.baton.db.session() as s:
            started = (await s.exec(select(Run).where(Run.source == "investigate"))).all()
        assert len(started) == 1
        assert ephemeral_to(slack, "U0ALICE") == [
            "An investigation of this digest has already started: see its thread."
        ]
        # The click shows at once in the digest itself.
        [marked] = digests(slack)
        assert "<@U0BOB> started an investigation" in str(marked.blocks)
        assert ui.INVESTIGATE not in str(marked.blocks)
        # Its progress and answer are in the digest's thread, after the details.
        footers = [str(m.blocks[-1]) for m in bot.thread(digest)[1:] if m.blocks]
        assert any(f"Run `{investigation.id}` · done" in f for f in footers)


async def test_a_tampered_button_value_changes_nothing(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    async with running_bot(slack, sqlite_url) as bot:
        _, digest = await failing_digest(bot, site)

        await bot.click(ui.ACKNOWLEDGE, "9999' OR 1=1", user="U0BOB", message=digest)
        await bot.idle()

        assert ephemeral_to(slack, "U0BOB") == [
            "I don't know that digest (its button value is not one of mine), so nothing was changed."
        ]
        assert digests(slack)[0].edited is None


async def test_on_failure_with_a_daily_quiet_line(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    clock = MovedClock()
    async with running_bot(slack, sqlite_url, clock=clock) as bot:
        made = await add_schedule(
            bot.baton.db,
            f"check {site.url('/ok')}",
            seconds=60,
            alert=AlertMode.ON_FAILURE,
            quiet_daily=True,
        )
        for _ in range(3):
            await next_fire(bot, clock, made)
        quiet = [m.text for m in slack.messages(CHANNEL) if m.text.startswith("🌙 All quiet")]
        assert quiet == [
            f"🌙 All quiet: schedule `{made.id}` (check {site.url('/ok')}) has nothing to report today — 1 check fine."
        ]
        assert digests(slack) == []

        site.down = True
        await next_fire(bot, clock, made)
        assert len(digests(slack)) == 1
        assert "❌ 1 of 1 checks failing" in str(digests(slack)[0].blocks)


async def test_a_json_metric_crossing_its_threshold_alerts(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    clock = MovedClock()
    async with running_bot(slack, sqlite_url, clock=clock) as bot:
        made = await add_schedule(
            bot.baton.db,
            f"check the json metric at {site.url('/metric')} path=queue.depth < 100",
            seconds=60,
            alert=AlertMode.ON_FAILURE,
        )
        for _ in range(2):
            await next_fire(bot, clock, made)
        assert digests(slack) == []  # 42 < 100: nothing to say

        site.metric = 150
        await next_fire(bot, clock, made)
        [digest] = digests(slack)
        shown = str(digest.blocks)
        assert (
            f"❌ {site.url('/metric')} queue.depth — queue.depth = 150  _(was queue.depth = 42.0)_"
            in shown
        )


async def test_a_scheduled_run_waits_for_approval_like_any_other(
    slack: SlackStandIn, sqlite_url: str, site: Site
) -> None:
    from bot import approval_blocks
    from tests.test_approvals import approval_messages, value_of

    async with running_bot(slack, sqlite_url) as bot:
        await bot.slash(
            f'schedule add "every day at 09:00" run announce-status {site.url("/ok")} <#C0RANDOM|random>'
        )
        [made] = await schedules.in_channel(bot.baton.db, CHANNEL)
        await bot.slash(f"schedule run {made.id}")
        await bot.idle()

        [gate] = approval_messages(slack)
        assert digests(slack) == []  # the run is waiting, nothing to digest yet
        assert (
            await bot.click(approval_blocks.APPROVE, value_of(gate), user="U0ALICE", message=gate)
            == 200
        )
        await bot.idle()

        [digest] = digests(slack)
        assert "✅ 1 check passing" in str(digest.blocks)
        posted = [m.text for m in slack.messages("C0RANDOM")]
        assert len(posted) == 1 and site.url("/ok") in posted[0]

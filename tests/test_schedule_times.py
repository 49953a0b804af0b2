"""Reading `<when>`, `/baton schedule add` arguments, and fire times across time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.spec import load_catalog
from agents.tools.registry import tool_names
from bot.schedules_ui import ScheduleInputError, parse_add
from orchestration.when import (
    When,
    WhenError,
    describe,
    fire_times,
    parse_when,
    show_time,
    upcoming,
    zone,
)
from storage.models import AlertMode

BERLIN = zone("Europe/Berlin")
CATALOG = load_catalog(None, known_tools=tool_names())


@pytest.mark.parametrize(
    ("text", "when", "reading"),
    [
        ("every 15m", When("interval", seconds=900), "every 15 minutes"),
        ("every 2h", When("interval", seconds=7200), "every 2 hours"),
        ("every 30 minutes", When("interval", seconds=1800), "every 30 minutes"),
        ("every minute", When("interval", seconds=60), "every minute"),
        (
            "every day at 09:00",
            When("cron", cron="0 9 * * *"),
            "every day at 09:00 (Europe/Berlin)",
        ),
        (
            "every weekday at 8:30",
            When("cron", cron="30 8 * * 1-5"),
            "on weekdays at 08:30 (Europe/Berlin)",
        ),
        ("every monday at 9am", When("cron", cron="0 9 * * 1"), "on Mon at 09:00 (Europe/Berlin)"),
        ("daily at 7pm", When("cron", cron="0 19 * * *"), "every day at 19:00 (Europe/Berlin)"),
        ("0 9 * * 1-5", When("cron", cron="0 9 * * 1-5"), "on weekdays at 09:00 (Europe/Berlin)"),
        ("0 9 * * 0,6", When("cron", cron="0 9 * * 0,6"), "on weekends at 09:00 (Europe/Berlin)"),
        ("*/15 * * * *", When("cron", cron="*/15 * * * *"), "every 15 minutes"),
        ("5 * * * *", When("cron", cron="5 * * * *"), "every hour at :05"),
    ],
)
def test_accepted_forms_and_their_reading(text: str, when: When, reading: str) -> None:
    assert parse_when(text) == when
    assert describe(when, "Europe/Berlin") == reading


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("every 30s", "`every 30s` is too often: schedules run at most once a minute."),
        ("every 0m", "`every 0m` is too often: schedules run at most once a minute."),
        ("tomorrow-ish", "I can't read `tomorrow-ish` as a time."),
        ("every 2 fortnights", "I can't read `every 2 fortnights` as a time."),
        ("every day at 25:00", "`every day at 25:00`: 25:00 is not a time of day."),
        ("every funday at 9", "`funday` is not a day I know (day, weekday, weekend, monday…)."),
        (
            "0 9 * * 8",
            "`0 9 * * 8` is not a valid cron expression ('8' is not a weekday (0-7 or sun-sat)).",
        ),
        ("", "Say when the schedule should run."),
    ],
)
def test_bad_times_say_what_is_wrong_and_show_the_accepted_forms(text: str, problem: str) -> None:
    with pytest.raises(WhenError) as bad:
        parse_when(text)

    assert bad.value.problem == problem
    assert "Accepted forms:" in str(bad.value) and "`every 15m`" in str(bad.value)


def test_cron_weekdays_count_from_sunday_as_crontab_does() -> None:
    # 1-5 is Monday to Friday in crontab (APScheduler 3 alone would read Tuesday to Saturday).
    friday_noon = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)

    fires = upcoming(
        parse_when("0 9 * * 1-5"), BERLIN, anchor=friday_noon, now=friday_noon, count=3
    )

    assert [show_time(t, BERLIN) for t in fires] == [
        "Mon 23 Nov 09:00 CET",
        "Tue 24 Nov 09:00 CET",
        "Wed 25 Nov 09:00 CET",
    ]


def test_time_zone_names_are_found_in_any_case_and_unknown_ones_refused() -> None:
    assert zone("europe/berlin").key == "Europe/Berlin"
    assert zone("utc").key == "UTC"
    with pytest.raises(WhenError, match="`Mars/Olympus` is not a time zone I know"):
        zone("Mars/Olympus")


def test_intervals_count_from_the_schedules_creation() -> None:
    created = datetime(2026, 11, 23, 10, 7, 30, tzinfo=UTC)

    fires = upcoming(
        parse_when("every 15m"), BERLIN, anchor=created, now=created + timedelta(minutes=20)
    )

    assert [t.strftime("%H:%M:%S") for t in fires] == ["10:37:30", "10:52:30", "11:07:30"]


def daily(text: str, tz: str, start: datetime, days: float) -> list[str]:
    z = zone(tz)
    found = fire_times(
        parse_when(text), z, anchor=start, after=start, until=start + timedelta(days=days)
    )
    return [show_time(t, z) for t in found]


def test_daily_run_keeps_its_wall_clock_time_when_summer_time_starts() -> None:
    start = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)

    assert daily("every day at 09:00", "Europe/Berlin", start, 4) == [
        "Fri 27 Mar 09:00 CET",
        "Sat 28 Mar 09:00 CET",
        "Sun 29 Mar 09:00 CEST",
        "Mon 30 Mar 09:00 CEST",
    ]


def test_daily_run_in_the_skipped_hour_happens_once_that_day() -> None:
    # 02:30 does not exist on 29 March in Berlin: the run happens once, an hour later.
    start = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)

    assert daily("30 2 * * *", "Europe/Berlin", start, 4) == [
        "Fri 27 Mar 02:30 CET",
        "Sat 28 Mar 02:30 CET",
        "Sun 29 Mar 03:30 CEST",
        "Mon 30 Mar 02:30 CEST",
    ]


def test_daily_run_in_the_repeated_hour_happens_once_when_summer_time_ends() -> None:
    start = datetime(2026, 10, 23, 0, 0, tzinfo=UTC)

    assert daily("30 2 * * *", "Europe/Berlin", start, 4) == [
        "Fri 23 Oct 02:30 CEST",
        "Sat 24 Oct 02:30 CEST",
        "Sun 25 Oct 02:30 CEST",
        "Mon 26 Oct 02:30 CET",
    ]


def test_a_process_starting_between_the_two_repeated_hours_does_not_run_it_again() -> None:
    # The first 02:30 ran (00:30 UTC); looking for due fires from there skips the second one.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    z = zone("Europe/Berlin")

    due = fire_times(
        parse_when("30 2 * * *"), z, anchor=first, after=first, until=first + timedelta(hours=3)
    )

    assert due == []


def test_new_york_daily_run_across_its_own_dst_end() -> None:
    start = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)

    assert daily("every day at 08:00", "America/New_York", start, 3.5) == [
        "Sun 01 Nov 08:00 EST",
        "Mon 02 Nov 08:00 EST",
        "Tue 03 Nov 08:00 EST",
    ]


# `/baton schedule add` arguments


def test_add_with_a_quoted_time_a_request_and_options() -> None:
    wanted = parse_add(
        '"every weekday at 09:00" check https://example.com/a?x=1 tz=Europe/Berlin alert=on_change quiet=daily',
        CATALOG,
    )

    assert wanted.when == When("cron", cron="0 9 * * 1-5")
    assert wanted.timezone == "Europe/Berlin"
    assert wanted.request == "check https://example.com/a?x=1"
    assert wanted.alert == AlertMode.ON_CHANGE
    assert wanted.quiet_daily is True
    assert wanted.playbook is None


def test_add_without_quotes_takes_the_longest_leading_time() -> None:
    wanted = parse_add("every 2 hours run status-check https://example.com", CATALOG)

    assert wanted.when == When("interval", seconds=7200)
    assert (wanted.playbook, wanted.request) == ("status-check", "https://example.com")
    assert wanted.timezone is None and wanted.alert == AlertMode.ALWAYS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"every 15m" run no-such-book', "There is no playbook called `no-such-book`."),
        ('"every 15m"', "Say what to do after the time"),
        ('"every 15m" check it alert=sometimes', "`alert=sometimes` is not an alert mode"),
        ('"every 15m" check it quiet=weekly', "`quiet=weekly`: use `quiet=daily`"),
    ],
)
def test_add_input_errors(text: str, message: str) -> None:
    with pytest.raises(ScheduleInputError, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_add(text, CATALOG)


def test_add_with_an_unknown_time_zone_is_a_time_error() -> None:
    with pytest.raises(WhenError, match="`Moon/Base` is not a time zone I know"):
        parse_add('"every 15m" check it tz=Moon/Base', CATALOG)

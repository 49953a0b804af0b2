"""Many workspaces (OAuth mode): installs through /slack/install and /slack/oauth_redirect,
each team answered with its own token, unknown teams and bad states refused, uninstalls.

Against the Slack stand-in: it answers `oauth.v2.access` for the codes it hands out and
every other method per token, and records the token of each call.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from slack_sdk.oauth.installation_store import Installation as SlackInstallation

from bot.config import Settings
from bot.logs import configure_logging
from bot.permissions import CANT_SHOW
from bot.workspaces import InstallationStore
from sandbox.signing import FORM, JSON_TYPE, block_actions_body, signed_headers
from sandbox.web_api import Call, Message, SlackStandIn
from sandbox.workspace import Workspace
from storage import Database, approvals, installations, outbox, runs, schedules, schema
from storage.clock import REAL, Clock, MovedClock
from storage.db import utcnow
from storage.models import ApprovalStatus, DeliveryState, RunStatus, Schedule
from testkit.databases import RELEASE_SQLITE, Site, fresh_pg_database
from testkit.harness import PAYLOADS, SECRET, Bot, running_bot, sample

FIRST, SECOND, STRANGER = "T0BATON", "T0SECOND", "T0NEVER"
SECOND_TOKEN = "xoxb-2222-second-workspace"
STATE_COOKIE = "slack-app-oauth-state"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.add_team(SECOND, token=SECOND_TOKEN)
        yield standin


@pytest.fixture
def clock() -> MovedClock:
    return MovedClock()


@pytest.fixture
async def bot(slack: SlackStandIn, sqlite_url: str, clock: MovedClock) -> AsyncIterator[Bot]:
    async with oauth_bot(slack, sqlite_url, clock=clock) as b:
        yield b


@asynccontextmanager
async def oauth_bot(slack: SlackStandIn, url: str, *, clock: Clock = REAL) -> AsyncIterator[Bot]:
    async with running_bot(
        slack,
        url,
        clock=clock,
        slack_bot_token=None,
        slack_client_id=slack.client_id,
        slack_client_secret=slack.client_secret,
    ) as b:
        yield b


async def start_install(bot: Bot) -> tuple[str, str]:
    """`GET /slack/install`: the state in Slack's authorize URL, and the browser's cookie."""
    async with bot.session.get(f"{bot.url}/slack/install", allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
        cookie = resp.headers["Set-Cookie"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith("https://slack.com/oauth/v2/authorize?")
    assert "chat:write" in query["scope"][0].split(",")
    assert query["client_id"] == [bot.slack.client_id]
    name, _, value = cookie.split(";")[0].partition("=")
    assert name == STATE_COOKIE
    return query["state"][0], value


async def finish_install(bot: Bot, *, code: str, state: str, cookie: str) -> tuple[int, str]:
    """The browser comes back from Slack to `/slack/oauth_redirect`."""
    async with bot.session.get(
        f"{bot.url}/slack/oauth_redirect",
        params={"code": code, "state": state},
        headers={"Cookie": f"{STATE_COOKIE}={cookie}"},
        allow_redirects=False,
    ) as resp:
        return resp.status, await resp.text()


async def install(bot: Bot, team_id: str) -> None:
    state, cookie = await start_install(bot)
    status, page = await finish_install(
        bot, code=bot.slack.allow_install(team_id), state=state, cookie=cookie
    )
    assert status == 200, page


async def mention(bot: Bot, team_id: str, text: str) -> str:
    """Someone in `team_id` mentions Baton in #general; the ts of their message."""
    ws = bot.slack.team(team_id)
    full = f"<@{ws.bot.id}> {text}"
    msg = ws.add_user_message("C0GENERAL", "U0ALICE", full)
    event = copy.deepcopy(sample("app_mention_event_callback.slack_docs.json")["event"])
    event.update(user="U0ALICE", text=full, ts=msg.ts, channel="C0GENERAL", event_ts=msg.ts)
    assert await send_event(bot, team_id, event) == 200
    return msg.ts


async def send_event(bot: Bot, team_id: str, event: dict[str, object]) -> int:
    envelope = sample("app_mention_event_callback.slack_docs.json")
    envelope.update(
        team_id=team_id,
        api_app_id="A0BATON",
        event=event,
        event_id=f"Ev{time.monotonic_ns()}",
        event_time=int(time.time()),
    )
    for auth in envelope.get("authorizations", []):
        auth.update(team_id=team_id, user_id=bot.slack.workspace.bot.id, is_bot=True)
    resp = await bot.post(json.dumps(envelope).encode(), JSON_TYPE)
    return resp.status


def replies_in(slack: SlackStandIn, thread_ts: str) -> list[Call]:
    """Baton's calls that wrote into a thread (posts, streams, edits)."""
    return [
        c
        for c in slack.calls
        if c.method.startswith("chat.") and c.args.get("thread_ts") == thread_ts
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_url(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[str]:
    """A database at head: SQLite, then PostgreSQL (a new database, dropped afterwards)."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    async with fresh_pg_database() as url:
        db = Database(url)
        await schema.upgrade(db)
        await db.dispose()
        yield url


async def test_two_workspaces_install_and_each_is_answered_with_its_own_token(
    slack: SlackStandIn, any_url: str
) -> None:
    async with oauth_bot(slack, any_url) as bot:
        await answered_with_their_own_tokens(bot, slack)


async def answered_with_their_own_tokens(bot: Bot, slack: SlackStandIn) -> None:
    await install(bot, FIRST)
    await install(bot, SECOND)
    assert {c.token for c in slack.calls_to("auth.test")} == {slack.token, SECOND_TOKEN}

    first = await mention(bot, FIRST, "what is 2 + 3?")
    second = await mention(bot, SECOND, "what is 4 + 5?")
    await bot.idle()

    assert replies_in(slack, first) and replies_in(slack, second)
    assert {c.token for c in replies_in(slack, first)} == {slack.token}
    assert {c.token for c in replies_in(slack, second)} == {SECOND_TOKEN}
    # Each answer is in its own workspace's thread, and each run knows its workspace.
    bot_id = slack.workspace.bot.id
    assert any(m.user == bot_id for m in slack.team(SECOND).replies("C0GENERAL", second))
    assert not any(m.user == bot_id for m in slack.team(FIRST).replies("C0GENERAL", second))
    done = await runs.runs_by_status(bot.baton.db, [RunStatus.SUCCEEDED])
    assert sorted(r.team_id or "" for r in done) == [FIRST, SECOND]


async def test_a_replayed_state_is_refused_and_installs_nothing(
    bot: Bot, slack: SlackStandIn
) -> None:
    state, cookie = await start_install(bot)
    status, _ = await finish_install(
        bot, code=slack.allow_install(FIRST), state=state, cookie=cookie
    )
    assert status == 200
    status, page = await finish_install(
        bot, code=slack.allow_install(SECOND), state=state, cookie=cookie
    )
    assert status >= 400 and "Traceback" not in page
    assert await installations.find(bot.baton.db, SECOND) is None
    assert len(slack.calls_to("oauth.v2.access")) == 1


async def test_a_state_that_baton_never_issued_is_refused(bot: Bot, slack: SlackStandIn) -> None:
    status, page = await finish_install(
        bot, code=slack.allow_install(SECOND), state="made-up", cookie="made-up"
    )
    assert status >= 400 and "Traceback" not in page
    assert await installations.find(bot.baton.db, SECOND) is None
    assert slack.calls_to("oauth.v2.access") == []


async def test_a_state_from_another_browser_is_refused(bot: Bot, slack: SlackStandIn) -> None:
    state, _ = await start_install(bot)
    other_state, other_cookie = await start_install(bot)
    status, _ = await finish_install(
        bot, code=slack.allow_install(SECOND), state=state, cookie=other_cookie
    )
    assert status >= 400
    assert await installations.find(bot.baton.db, SECOND) is None
    assert other_state != state


async def test_an_event_from_a_workspace_that_never_installed_gets_no_answer(
    bot: Bot, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    await install(bot, FIRST)
    slack.add_team(STRANGER, token="xoxb-3333-stranger")
    before = len(slack.calls)
    ts = await mention(bot, STRANGER, "what is 2 + 3?")
    await bot.idle()
    assert [c.method for c in slack.calls[before:]] == []
    assert replies_in(slack, ts) == []
    assert await runs.count_runs(bot.baton.db) == 0
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_uninstalled"},
        {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0BATON"]}},
    ],
    ids=["app_uninstalled", "tokens_revoked"],
)
async def test_an_uninstall_stops_that_workspaces_schedules_and_forgets_it(
    bot: Bot, slack: SlackStandIn, clock: MovedClock, event: dict[str, object]
) -> None:
    await install(bot, FIRST)
    await install(bot, SECOND)
    made = []
    for team in (FIRST, SECOND):
        schedule = await schedules.create(
            bot.baton.db,
            Schedule(
                id=schedules.new_schedule_id(),
                team_id=team,
                channel_id="C0GENERAL",
                when_text="every 15m",
                kind="interval",
                interval_seconds=900,
                request="check https://example.com",
            ),
        )
        bot.baton.scheduler.watch(schedule)
        made.append(schedule.id)
    await bot.baton.scheduler.start()

    slack.revoke(SECOND)
    assert await send_event(bot, SECOND, event) == 200
    await bot.idle()

    kept, stopped = [await schedules.get(bot.baton.db, i) for i in made]
    assert kept is not None and not kept.paused
    assert stopped is not None and stopped.paused
    # Its next fire time comes and goes without a fire.
    clock.move(timedelta(minutes=15))
    assert await bot.baton.scheduler.tick(made[1]) is None
    assert await schedules.recent_fires(bot.baton.db, made[1]) == []
    assert await installations.find(bot.baton.db, SECOND) is None
    assert await installations.find(bot.baton.db, FIRST) is not None

    # Its events are no longer answered; the other workspace's still are.
    before = len(slack.calls)
    await mention(bot, SECOND, "are you there?")
    await bot.idle()
    assert slack.calls[before:] == []
    first = await mention(bot, FIRST, "what is 2 + 3?")
    await bot.idle()
    assert {c.token for c in replies_in(slack, first)} == {slack.token}


GATED = """
agents:
  - name: announcer
    description: Posts messages to channels.
    model: rules
    tools: [post_message]
    reach: {post_channels: [C0RANDOM]}
playbooks:
  - name: announce
    description: Announce a deploy.
    tasks:
      - id: post
        agent: announcer
        instruction: 'Post "Deploy finished" to <#C0RANDOM>'
        requires_approval: true
approvals:
  approvers: [U0ALICE]
"""


@pytest.fixture
async def gated_bot(slack: SlackStandIn, sqlite_url: str, tmp_path: Path) -> AsyncIterator[Bot]:
    catalog = tmp_path / "agents.yml"
    catalog.write_text(GATED)
    async with running_bot(
        slack,
        sqlite_url,
        slack_bot_token=None,
        slack_client_id=slack.client_id,
        slack_client_secret=slack.client_secret,
        baton_agents_file=catalog,
    ) as b:
        yield b


def approval_message(ws: Workspace) -> Message:
    [found] = [
        m
        for m in ws.all_messages("C0GENERAL")
        if any(str(b.get("block_id", "")).startswith("approval:") for b in m.blocks or [])
    ]
    return found


async def click(bot: Bot, team_id: str, message: Message, action_id: str, value: str) -> int:
    payload = sample("block_actions_button_click.bolt_tests.json")
    payload.update(
        user={"id": "U0ALICE", "username": "alice", "team_id": team_id},
        trigger_id=bot.slack.team(team_id).new_trigger_id("U0ALICE"),
        team={"id": team_id},
        api_app_id="A0BATON",
        channel={"id": message.channel},
        message={"type": "message", "ts": message.ts, "text": message.text},
        response_url=bot.slack.response_url(message.channel, "U0ALICE"),
        actions=[
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    )
    payload["container"].update(message_ts=message.ts, channel_id=message.channel)
    resp = await bot.post(block_actions_body(payload), FORM)
    return resp.status


def approve_button(message: Message) -> dict[str, str]:
    actions = next(
        b
        for b in message.blocks or []
        if b.get("type") == "actions" and str(b.get("block_id", "")).startswith("approval:")
    )
    element: dict[str, str] = actions["elements"][0]
    return element


async def test_an_approval_in_a_second_workspace_is_asked_decided_and_acted_on_there(
    gated_bot: Bot, slack: SlackStandIn
) -> None:
    bot = gated_bot
    await install(bot, FIRST)
    await install(bot, SECOND)
    await mention(bot, SECOND, "run announce")
    await bot.idle()
    message = approval_message(slack.team(SECOND))
    button = approve_button(message)

    assert await click(bot, SECOND, message, button["action_id"], button["value"]) == 200
    await bot.idle()

    posted = [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == "C0RANDOM"]
    assert [(c.token, c.args.get("text")) for c in posted] == [(SECOND_TOKEN, "Deploy finished")]
    assert [m.text for m in slack.team(SECOND).all_messages("C0RANDOM")] == ["Deploy finished"]
    assert slack.team(FIRST).all_messages("C0RANDOM") == []
    assert {c.token for c in slack.calls if c.token is not None} == {slack.token, SECOND_TOKEN}
    assert not [c for c in slack.calls if c.token == slack.token and c.method != "auth.test"]


async def test_app_uninstalled_ends_that_workspaces_waiting_run_without_calling_slack(
    gated_bot: Bot, slack: SlackStandIn
) -> None:
    bot = gated_bot
    await install(bot, SECOND)
    await mention(bot, SECOND, "run announce")
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.WAITING and run.team_id == SECOND

    slack.revoke(SECOND)
    assert await send_event(bot, SECOND, {"type": "app_uninstalled"}) == 200
    await bot.idle()

    ended = await runs.get_run(bot.baton.db, run.id)
    assert ended is not None and ended.status == RunStatus.CANCELLED
    [approval] = await approvals.for_run(bot.baton.db, run.id)
    assert approval.status == ApprovalStatus.WITHDRAWN and approval.team_id == SECOND
    trail = [e.kind for e in await runs.events(bot.baton.db, run.id)]
    assert trail.index("workspace_uninstalled") < trail.index("cancel_requested")
    # What it would have shown ends in the trail as not deliverable, not retried forever.
    rows = await outbox.for_run(bot.baton.db, run.id)
    assert rows and DeliveryState.PENDING not in {r.state for r in rows}
    assert {r.last_error for r in rows if r.state == DeliveryState.FAILED} == {"not_installed"}
    # Nothing was sent with the revoked token: Baton knew it had none.
    assert [c for c in slack.calls if c.status == 200 and c.response.get("error")] == []


async def test_rows_stored_without_a_workspace_are_given_the_single_token_workspace(
    slack: SlackStandIn, sqlite_url: str
) -> None:
    db = Database(sqlite_url)
    try:
        older = await schedules.create(
            db,
            Schedule(
                id=schedules.new_schedule_id(),
                channel_id="C0GENERAL",
                when_text="every 15m",
                kind="interval",
                interval_seconds=900,
                request="check https://example.com",
            ),
        )
        assert older.team_id is None
        async with running_bot(slack, sqlite_url) as bot:
            adopted = await schedules.get(bot.baton.db, older.id)
        assert adopted is not None and adopted.team_id == FIRST
    finally:
        await db.dispose()


async def slash(bot: Bot, team_id: str, text: str, *, user: str = "U0ALICE") -> str:
    """`/baton <text>` typed by `user` in `team_id`'s #general: what Baton answered them."""
    fields = dict(
        line.split("=", 1)
        for line in (PAYLOADS / "slash_command_body.slack_docs.txt").read_text().strip().split("&")
    )
    fields.update(
        team_id=team_id,
        channel_id="C0GENERAL",
        user_id=user,
        command="/baton",
        text=text,
        response_url=bot.slack.response_url("C0GENERAL", user),
        trigger_id=bot.slack.team(team_id).new_trigger_id(user),
    )
    before = len(bot.slack.calls)
    body = urlencode(fields).encode()
    async with bot.session.post(
        f"{bot.url}/slack/events",
        data=body,
        headers=signed_headers(SECRET, body, content_type=FORM),
    ) as resp:
        assert resp.status == 200
        ack = await resp.text()
    if ack.strip():
        return str(json.loads(ack).get("text"))
    await bot.idle()
    [reply] = [c.args for c in bot.slack.calls[before:] if c.method == "response_url"]
    return str(reply.get("text"))


async def test_a_run_is_seen_and_stopped_only_from_its_own_workspace(
    gated_bot: Bot, slack: SlackStandIn
) -> None:
    bot = gated_bot
    await install(bot, FIRST)
    await install(bot, SECOND)
    await mention(bot, SECOND, "run announce")
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.status == RunStatus.WAITING

    # An unknown run and another workspace's get the same answer: it reveals nothing.
    assert await slash(bot, FIRST, f"status {run.id}") == CANT_SHOW
    assert await slash(bot, FIRST, f"cancel {run.id}") == CANT_SHOW
    still = await runs.get_run(bot.baton.db, run.id)
    assert still is not None and still.status == RunStatus.WAITING

    assert await slash(bot, SECOND, f"status {run.id}") == f"Run {run.id}: waiting"


async def test_a_command_from_a_workspace_that_never_installed_starts_nothing(
    bot: Bot, slack: SlackStandIn
) -> None:
    await install(bot, FIRST)
    slack.add_team(STRANGER, token="xoxb-3333-stranger")
    reply = await slash(bot, STRANGER, "check https://example.com")
    assert "install" in reply.lower()
    assert [c.method for c in slack.calls if c.token is not None and c.method != "auth.test"] == []
    assert await runs.count_runs(bot.baton.db) == 0


async def test_a_state_is_good_once_and_only_until_it_expires(any_db: Database) -> None:
    issued = utcnow()
    state = await installations.issue_state(any_db, lifetime=timedelta(minutes=10), now=issued)
    later = await installations.issue_state(any_db, lifetime=timedelta(minutes=10), now=issued)
    assert state != later
    assert await installations.consume_state(any_db, state, now=issued + timedelta(minutes=9))
    assert not await installations.consume_state(any_db, state, now=issued + timedelta(minutes=9))
    assert not await installations.consume_state(any_db, later, now=issued + timedelta(minutes=11))
    assert not await installations.consume_state(any_db, "never-issued", now=issued)


async def test_a_workspace_installed_again_keeps_one_installation_with_the_new_token(
    any_db: Database,
) -> None:
    forgotten: list[str] = []
    store = InstallationStore(any_db, on_change=forgotten.append)
    for token in ("xoxb-old", "xoxb-new"):
        await store.async_save(
            SlackInstallation(
                team_id=SECOND, bot_token=token, bot_id="B1", bot_user_id="U0BATON", user_id="U1"
            )
        )
    bot = await store.async_find_bot(enterprise_id=None, team_id=SECOND)
    assert bot is not None and bot.bot_token == "xoxb-new"
    assert forgotten == [SECOND, SECOND]
    await store.async_delete_installation(enterprise_id=None, team_id=SECOND)
    assert await store.async_find_bot(enterprise_id=None, team_id=SECOND) is None
    assert await installations.remove(any_db, SECOND) is False


async def test_upgrading_a_release_database_gives_each_approval_its_runs_workspace(
    tmp_path: Path,
) -> None:
    shutil.copyfile(RELEASE_SQLITE, tmp_path / "baton.db")
    db = Database(f"sqlite:///{tmp_path}/baton.db")
    try:
        await schema.upgrade(db)
        found = {
            a.id: a.team_id
            for run_id in ("a1000001", "a1000002", "a1000004")
            for a in await approvals.for_run(db, run_id)
        }
    finally:
        await db.dispose()
    assert found == {
        "ap000001": "T0ACME",
        "ap000002": "T0ACME",
        "ap000003": "T0ACME",
        "ap000004": "T0ACME",
    }


async def test_a_second_workspaces_schedule_posts_its_digest_there_with_its_token(
    bot: Bot, slack: SlackStandIn, site: Site
) -> None:
    await install(bot, FIRST)
    await install(bot, SECOND)
    before = len(slack.calls)
    added = await slash(bot, SECOND, f'schedule add "every day at 09:00" check {site.url("/ok")}')
    assert added.startswith("Scheduled ")
    [made] = await schedules.in_channel(bot.baton.db, "C0GENERAL")
    assert made.team_id == SECOND
    # Another workspace cannot reach it by its id.
    refused = await slash(bot, FIRST, f"schedule pause {made.id}")
    assert refused.startswith(f"There is no schedule `{made.id}`")
    still = await schedules.get(bot.baton.db, made.id)
    assert still is not None and not still.paused

    assert f"Running schedule `{made.id}` now" in await slash(
        bot, SECOND, f"schedule run {made.id}"
    )
    await bot.idle()

    def digests(team: str) -> list[Message]:
        return [
            m
            for m in slack.team(team).all_messages("C0GENERAL")
            if m.user == slack.workspace.bot.id and "Schedule `" in str(m.blocks)
        ]

    [digest] = digests(SECOND)
    assert f"✅ {site.url('/ok')} — 200 in " in str(digest.blocks)
    # (Replies through a response URL land in the stand-in's first workspace whatever the team.)
    assert digests(FIRST) == []
    used = {c.token for c in slack.calls[before:] if c.token is not None}
    assert used == {SECOND_TOKEN}


async def test_log_records_of_an_uninstall_carry_its_workspace(
    bot: Bot, slack: SlackStandIn
) -> None:
    await install(bot, SECOND)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging(
            Settings(_env_file=None, baton_log_format="json"),  # type: ignore[call-arg]
            stream=stream,
        )
        slack.revoke(SECOND)
        assert await send_event(bot, SECOND, {"type": "app_uninstalled"}) == 200
        await bot.idle()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    [line] = [r for r in logged if r["message"].startswith("Baton was uninstalled from")]
    assert line["team_id"] == SECOND


# Slack's AI-app surface in a second workspace: names, the assistant container, the Home tab,
# feedback and follow-ups each call Slack with that workspace's token.

SURFACE_CALLS = (
    "conversations.info",
    "conversations.replies",
    "chat.postMessage",
    "chat.postEphemeral",
    "assistant.threads.setSuggestedPrompts",
    "views.publish",
)


def calls_since(slack: SlackStandIn, before: int) -> list[tuple[str, str | None]]:
    return [(c.method, c.token) for c in slack.calls[before:] if c.method in SURFACE_CALLS]


async def test_a_second_workspaces_assistant_container_and_home_tab_use_its_token(
    bot: Bot, slack: SlackStandIn
) -> None:
    from sandbox import slack_payloads

    await install(bot, FIRST)
    await install(bot, SECOND)
    ws = slack.team(SECOND)
    before = len(slack.calls)

    thread = ws.start_assistant_thread("U0ALICE", "C0GENERAL")
    started = slack_payloads.assistant_thread_event(ws, thread, kind="assistant_thread_started")
    assert await send_event(bot, SECOND, started) == 200
    assert await send_event(bot, SECOND, slack_payloads.home_opened_event(ws, "U0ALICE")) == 200
    await bot.idle()

    assert ws.assistant_thread(thread.channel, thread.thread_ts).prompts
    assert [m for m in ws.replies(thread.channel, thread.thread_ts) if m.ts != thread.thread_ts]
    assert "U0ALICE" in ws.home_views
    assert slack.team(FIRST).home_views == {}
    made = calls_since(slack, before)
    assert {m for m, _ in made} == {
        "conversations.info",
        "chat.postMessage",
        "assistant.threads.setSuggestedPrompts",
        "views.publish",
    }
    assert {t for _, t in made} == {SECOND_TOKEN}


async def test_feedback_and_a_follow_up_in_a_second_workspace_use_its_token(
    bot: Bot, slack: SlackStandIn
) -> None:
    await install(bot, FIRST)
    await install(bot, SECOND)
    ws = slack.team(SECOND)
    ts = await mention(bot, SECOND, "what is 4 + 5?")
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None and run.team_id == SECOND and run.status == RunStatus.SUCCEEDED
    answer = next(
        m
        for m in ws.replies("C0GENERAL", ts)
        if any(b.get("type") == "context_actions" for b in m.blocks or [])
    )
    before = len(slack.calls)

    assert await click(bot, SECOND, answer, "answer:feedback", f"good:{run.id}") == 200
    reply = ws.add_user_message("C0GENERAL", "U0ALICE", "and times 2?", thread_ts=ts)
    event = {
        "type": "message",
        "user": "U0ALICE",
        "text": reply.text,
        "ts": reply.ts,
        "thread_ts": ts,
        "channel": "C0GENERAL",
        "channel_type": "channel",
        "event_ts": reply.ts,
    }
    assert await send_event(bot, SECOND, event) == 200
    await bot.idle()

    made = calls_since(slack, before)
    assert ("chat.postEphemeral", SECOND_TOKEN) in made
    assert ("conversations.replies", SECOND_TOKEN) in made
    assert {t for _, t in made} == {SECOND_TOKEN}
    assert await runs.count_runs(bot.baton.db) == 2


async def test_a_channel_member_in_a_second_workspace_is_looked_up_there_to_pause_a_schedule(
    bot: Bot, slack: SlackStandIn, site: Site
) -> None:
    await install(bot, FIRST)
    await install(bot, SECOND)
    added = await slash(bot, SECOND, f'schedule add "every day at 09:00" check {site.url("/ok")}')
    assert added.startswith("Scheduled ")
    [made] = await schedules.in_channel(bot.baton.db, "C0GENERAL")
    before = len(slack.calls)

    # Bob did not make it; he may pause it as a member of its channel, asked of his workspace.
    await slash(bot, SECOND, f"schedule pause {made.id}", user="U0BOB")
    await bot.idle()

    paused = await schedules.get(bot.baton.db, made.id)
    assert paused is not None and paused.paused
    members = [c.token for c in slack.calls[before:] if c.method == "conversations.members"]
    assert members == [SECOND_TOKEN]

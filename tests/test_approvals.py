"""Approval gates, as the people in the thread see them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import approval_blocks as ui
from bot.approval_clicks import expire_and_resume
from bot.transports import housekeeping_loop
from sandbox.web_api import SlackStandIn
from sandbox.workspace import Message
from storage import approvals, runs, tool_calls
from storage.clock import MovedClock
from storage.models import ApprovalStatus, RunStatus, TaskStatus
from testkit.databases import Site
from testkit.harness import Bot, running_bot, wait_until

CATALOG = """
agents:
  - name: announcer
    description: Posts messages to channels.
    model: rules
    tools: [post_message]
    reach: {post_channels: [C0RANDOM]}
  - name: checker
    description: Checks websites.
    model: rules
    tools: [http_check]
playbooks:
  - name: announce
    description: Announce a deploy.
    tasks:
      - id: post
        agent: announcer
        instruction: 'Post "Deploy finished" to <#C0RANDOM>'
        requires_approval: true
  - name: two-posts
    description: Two announcements at once.
    tasks:
      - {id: first, agent: announcer, instruction: 'Post "one" to <#C0RANDOM>'}
      - {id: second, agent: announcer, instruction: 'Post "two" to <#C0RANDOM>'}
  - name: gated-check
    description: A check that needs a yes first.
    tasks:
      - {id: check, agent: checker, instruction: Check the site in the request., requires_approval: true}
approvals:
  approvers: [APPROVERS]
  expires_after_hours: EXPIRY
"""


def write_catalog(
    tmp_path: Path, *, approvers: str = "", expiry: float = 24, policy: str = ""
) -> Path:
    """The catalog above; `policy`: more lines for its `approvals:` section."""
    path = tmp_path / "agents.yml"
    text = CATALOG.replace("APPROVERS", approvers).replace("EXPIRY", str(expiry))
    path.write_text(text + "".join(f"  {line}\n" for line in policy.splitlines()))
    return path


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def clock() -> MovedClock:
    return MovedClock()


@pytest.fixture
async def bot(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path, clock: MovedClock
) -> AsyncIterator[Bot]:
    catalog = write_catalog(tmp_path)
    async with running_bot(slack, sqlite_url, baton_agents_file=catalog, clock=clock) as b:
        yield b


def approval_messages(slack: SlackStandIn, channel: str = "C0GENERAL") -> list[Message]:
    return [
        m
        for m in slack.messages(channel)
        if m.blocks
        and any(
            b.get("type") == "actions" and str(b.get("block_id", "")).startswith("approval:")
            for b in m.blocks
        )
    ]


def value_of(message: Message) -> str:
    actions = next(
        b
        for b in message.blocks
        if b.get("type") == "actions" and str(b.get("block_id", "")).startswith("approval:")
    )
    return str(actions["elements"][0]["value"])


def ephemerals_for(slack: SlackStandIn, user: str) -> list[str]:
    return [m.text for m in slack.messages("C0GENERAL") if m.ephemeral_for == user]


def posted_in_random(slack: SlackStandIn) -> list[str]:
    return [m.text for m in slack.messages("C0RANDOM")]


async def start_playbook(bot: Bot, name: str, extra: str = "") -> str:
    await bot.slash(f"run {name} {extra}".strip())
    await bot.idle()
    run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
    assert run is not None
    return run.id


async def test_a_gated_call_shows_exactly_what_will_happen_and_waits(
    bot: Bot, slack: SlackStandIn
) -> None:
    run_id = await start_playbook(bot, "announce")

    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status == RunStatus.WAITING
    [message] = approval_messages(slack)
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert "*announcer* wants to call `post_message`" in shown
    assert "*channel*: <#C0RANDOM>" in shown and "*text*: Deploy finished" in shown
    assert "*Target:* <#C0RANDOM>" in shown  # Slack shows the channel's name
    assert "cost so far $0.0000" in shown and "<@U0ALICE>" in shown
    actions = next(b for b in message.blocks if b["type"] == "actions")
    assert [(e["text"]["text"], e.get("style")) for e in actions["elements"]] == [
        ("Approve", "primary"),
        ("Approve for this run", None),
        ("Edit & approve", None),
        ("Reject", "danger"),
        ("Reject with reason", None),
    ]
    stream = next(m for m in slack.messages("C0GENERAL") if m.tasks)
    assert stream.tasks["post"]["details"] == "waiting for approval"
    assert posted_in_random(slack) == []


async def test_approve_performs_that_exact_call_once_and_says_who(
    bot: Bot, slack: SlackStandIn
) -> None:
    run_id = await start_playbook(bot, "announce")
    [message] = approval_messages(slack)

    assert await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message) == 200
    await bot.idle()

    assert posted_in_random(slack) == ["Deploy finished"]
    decided = slack.workspace.message("C0GENERAL", message.ts)
    assert decided.edited is not None and "Approved by <@U0ALICE>" in json.dumps(decided.blocks)
    assert not any(b["type"] == "actions" for b in decided.blocks)
    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
    assert (
        kinds.index("approval_requested")
        < kinds.index("approval_approved")
        < kinds.index("run_resumed")
    )
    assert "Posted to <#C0RANDOM>" in bot.thread(slack.messages("C0GENERAL")[0])[-1].text


async def test_a_double_click_is_ignored_and_the_clicker_is_told(
    bot: Bot, slack: SlackStandIn
) -> None:
    await start_playbook(bot, "announce")
    [message] = approval_messages(slack)
    value = value_of(message)
    await bot.click(ui.APPROVE, value, user="U0ALICE", message=message)
    await bot.idle()
    await bot.click(ui.REJECT, value, user="U0ALICE", message=message)
    await bot.idle()
    assert posted_in_random(slack) == ["Deploy finished"]
    assert any("already approved by <@U0ALICE>" in t for t in ephemerals_for(slack, "U0ALICE"))


async def test_two_approvers_clicking_at_once_make_one_decision(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_bot(
        slack,
        sqlite_url,
        baton_agents_file=write_catalog(
            tmp_path, approvers="U0ALICE, U0BOB", policy="self_approval: true"
        ),
    ) as bot:
        run_id = await start_playbook(bot, "announce")
        [message] = approval_messages(slack)
        value = value_of(message)
        statuses = await asyncio.gather(
            bot.click(ui.APPROVE, value, user="U0ALICE", message=message),
            bot.click(ui.REJECT, value, user="U0BOB", message=message),
        )
        await bot.idle()
        [approval] = await approvals.for_run(bot.baton.db, run_id)
    assert statuses == [200, 200]
    told = ephemerals_for(slack, "U0ALICE") + ephemerals_for(slack, "U0BOB")
    assert len(told) == 1 and "already" in told[0]
    expected = ["Deploy finished"] if approval.status == ApprovalStatus.APPROVED else []
    assert posted_in_random(slack) == expected


async def test_someone_who_may_not_decide_is_told_and_nothing_changes(
    bot: Bot, slack: SlackStandIn
) -> None:
    run_id = await start_playbook(bot, "announce")
    [message] = approval_messages(slack)
    await bot.click(ui.APPROVE, value_of(message), user="U0BOB", message=message)
    await bot.idle()
    assert ephemerals_for(slack, "U0BOB") == [
        "You cannot approve or reject this: <@U0ALICE> can. Nothing was changed."
    ]
    [approval] = await approvals.for_run(bot.baton.db, run_id)
    assert approval.status == ApprovalStatus.PENDING and posted_in_random(slack) == []


async def test_a_user_group_member_may_decide(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    slack.workspace.usergroups["S0OPS"] = ["U0BOB"]
    async with running_bot(
        slack, sqlite_url, baton_agents_file=write_catalog(tmp_path, approvers="S0OPS")
    ) as bot:
        await start_playbook(bot, "announce")
        [message] = approval_messages(slack)
        assert "<!subteam^S0OPS>" in json.dumps(message.blocks)
        await bot.click(ui.APPROVE, value_of(message), user="U0BOB", message=message)
        await bot.idle()
    assert posted_in_random(slack) == ["Deploy finished"]


async def test_reject_stops_the_call_and_the_answer_says_so(bot: Bot, slack: SlackStandIn) -> None:
    run_id = await start_playbook(bot, "announce")
    [message] = approval_messages(slack)
    await bot.click(ui.REJECT, value_of(message), user="U0ALICE", message=message)
    await bot.idle()
    assert posted_in_random(slack) == []
    assert "Rejected by <@U0ALICE>" in json.dumps(
        slack.workspace.message("C0GENERAL", message.ts).blocks
    )
    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status.is_final
    assert "rejected" in (run.answer or "").lower()


async def test_reject_with_reason_needs_a_reason_and_records_it(
    bot: Bot, slack: SlackStandIn
) -> None:
    run_id = await start_playbook(bot, "announce")
    [message] = approval_messages(slack)
    await bot.click(ui.REJECT_WITH_REASON, value_of(message), user="U0ALICE", message=message)
    await bot.idle()
    [opened] = slack.calls_to("views.open")
    view = opened.args["view"]
    assert view["private_metadata"] == value_of(message)

    status, errors = await bot.submit(
        user="U0ALICE",
        view={"callback_id": ui.REASON_CALLBACK, "private_metadata": view["private_metadata"]},
        values={ui.REASON_BLOCK: {ui.REASON_INPUT: {"type": "plain_text_input", "value": "   "}}},
    )
    assert status == 200 and errors is not None and errors["response_action"] == "errors"
    assert ui.REASON_BLOCK in errors["errors"]

    await bot.submit(
        user="U0ALICE",
        view={"callback_id": ui.REASON_CALLBACK, "private_metadata": view["private_metadata"]},
        values={
            ui.REASON_BLOCK: {
                ui.REASON_INPUT: {"type": "plain_text_input", "value": "not during the freeze"}
            }
        },
    )
    await bot.idle()
    [approval] = await approvals.for_run(bot.baton.db, run_id)
    assert approval.status == ApprovalStatus.REJECTED and approval.reason == "not during the freeze"
    assert "not during the freeze" in json.dumps(
        slack.workspace.message("C0GENERAL", message.ts).blocks
    )
    assert posted_in_random(slack) == []


async def test_two_parallel_gates_are_decided_independently_in_any_order(
    bot: Bot, slack: SlackStandIn
) -> None:
    run_id = await start_playbook(bot, "two-posts")
    gates = approval_messages(slack)
    assert len(gates) == 2
    by_text = {("two" if "*text*: two" in json.dumps(m.blocks) else "one"): m for m in gates}

    await bot.click(ui.APPROVE, value_of(by_text["two"]), user="U0ALICE", message=by_text["two"])
    await bot.idle()
    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status == RunStatus.WAITING  # one gate is still open
    assert posted_in_random(slack) == ["two"]

    await bot.click(ui.APPROVE, value_of(by_text["one"]), user="U0ALICE", message=by_text["one"])
    await bot.idle()
    run = await runs.get_run(bot.baton.db, run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert sorted(posted_in_random(slack)) == ["one", "two"]
    assert len(await tool_calls.for_run(bot.baton.db, run_id)) == 2


async def test_a_gated_step_without_gated_tools_waits_for_approval_first(
    bot: Bot, slack: SlackStandIn, site: Site
) -> None:
    run_id = await start_playbook(bot, "gated-check", site.url("/ok"))
    [message] = approval_messages(slack)
    assert "about to run this step" in json.dumps(message.blocks)
    assert site.hits == {}
    await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
    await bot.idle()
    assert site.hits == {"/ok": 1}
    [task] = await runs.list_tasks(bot.baton.db, run_id)
    assert task.status == TaskStatus.SUCCEEDED


async def test_an_expired_approval_counts_as_rejected_and_the_thread_says_so(
    bot: Bot, slack: SlackStandIn, clock: MovedClock
) -> None:
    run_id = await start_playbook(bot, "announce")
    [message] = approval_messages(slack)
    clock.move(timedelta(hours=24, minutes=1))  # the catalog's expiry is 24 hours
    await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
    await bot.idle()
    [approval] = await approvals.for_run(bot.baton.db, run_id)
    run = await runs.get_run(bot.baton.db, run_id)
    assert approval.status == ApprovalStatus.EXPIRED
    assert posted_in_random(slack) == []
    assert any("expired" in t for t in ephemerals_for(slack, "U0ALICE"))
    thread = bot.thread(slack.messages("C0GENERAL")[0])
    assert any("expired without a decision" in m.text for m in thread)
    assert run is not None and run.status.is_final


async def test_the_expiry_sweep_needs_no_click(bot: Bot, clock: MovedClock) -> None:
    run_id = await start_playbook(bot, "announce")
    clock.move(timedelta(hours=23, minutes=59))  # the catalog's expiry is 24 hours
    assert await expire_and_resume(bot.baton) == 0
    clock.move(timedelta(minutes=2))
    assert await expire_and_resume(bot.baton) == 1
    await bot.idle()
    run = await runs.get_run(bot.baton.db, run_id)
    kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
    assert run is not None and run.status.is_final and "approval_expired" in kinds


async def test_the_housekeeping_loop_expires_an_approval_when_the_clock_passes_it(
    bot: Bot, clock: MovedClock
) -> None:
    run_id = await start_playbook(bot, "announce")
    loop = asyncio.create_task(housekeeping_loop(bot.baton, every=3600))
    try:
        # Its first sweep finds nothing due; it sleeps until its next turn, an hour away.
        await wait_until(lambda: clock.sleepers == 1)
        [approval] = await approvals.for_run(bot.baton.db, run_id)
        assert approval.status == ApprovalStatus.PENDING
        clock.move(timedelta(hours=25))

        async def ended() -> bool:
            run = await runs.get_run(bot.baton.db, run_id)
            return run is not None and run.status.is_final

        await wait_until(ended)
    finally:
        bot.baton.stopping.set()
        await loop
    kinds = [e.kind for e in await runs.events(bot.baton.db, run_id)]
    assert "approval_expired" in kinds


@pytest.mark.parametrize("value", ["garbage", "ap_" + "x" * 16, ""])
async def test_a_malformed_or_unknown_button_value_is_refused(
    bot: Bot, slack: SlackStandIn, value: str
) -> None:
    run_id = await start_playbook(bot, "announce")
    [message] = approval_messages(slack)
    await bot.click(ui.APPROVE, value, user="U0ALICE", message=message)
    await bot.idle()
    [note] = ephemerals_for(slack, "U0ALICE")
    assert "nothing was changed" in note
    [approval] = await approvals.for_run(bot.baton.db, run_id)
    assert approval.status == ApprovalStatus.PENDING and posted_in_random(slack) == []


async def test_a_button_moved_to_another_message_is_refused(bot: Bot, slack: SlackStandIn) -> None:
    await start_playbook(bot, "two-posts")
    first, second = approval_messages(slack)
    await bot.click(ui.APPROVE, value_of(first), user="U0ALICE", message=second)
    await bot.idle()
    assert "does not belong to this approval message" in ephemerals_for(slack, "U0ALICE")[0]
    assert posted_in_random(slack) == []


async def test_approvals_command_lists_what_waits_here_with_links(
    bot: Bot, slack: SlackStandIn
) -> None:
    run_id = await start_playbook(bot, "two-posts")
    _, reply = await bot.slash("approvals")
    assert reply is not None
    shown = json.dumps(reply["blocks"])
    assert "2 approvals waiting here" in shown and run_id in shown
    for m in approval_messages(slack):
        assert f"p{m.ts.replace('.', '')}" in shown


def _usage_heavy(_: Any) -> Any:
    from testkit.fakes.model_servers import Reply

    # Within the 2,048 tokens an answer may have (the fake server holds to max_tokens).
    return Reply(text="expensive thoughts", input_tokens=232_000, output_tokens=2_000)


async def test_a_run_about_to_exceed_its_budget_asks_before_going_on(
    slack: SlackStandIn, sqlite_url: str, tmp_path: Path
) -> None:
    from testkit.fakes.model_servers import FakeOpenAI, Reply

    catalog = tmp_path / "agents.yml"
    catalog.write_text(
        "agents:\n  - {name: thinker, description: Thinks., model: 'openai:gpt-4.1-mini'}\n"
        "playbooks:\n  - name: think-twice\n    description: Two steps.\n    tasks:\n"
        "      - {id: one, agent: thinker, instruction: think}\n"
        "      - {id: two, agent: thinker, instruction: think more, depends_on: [one]}\n"
    )
    async with FakeOpenAI() as openai:
        openai.when(lambda s: s.system.startswith("You are thinker"), _usage_heavy)
        openai.when(
            lambda s: "Write the final answer" in s.system, Reply(text="all thought through")
        )
        async with running_bot(
            slack,
            sqlite_url,
            baton_agents_file=catalog,
            openai_api_key="sk-test",
            openai_base_url=openai.base_url,
            baton_budget_usd=0.05,
        ) as bot:
            run_id = await start_playbook(bot, "think-twice")
            [message] = approval_messages(slack)
            shown = json.dumps(message.blocks)
            assert (
                "spent $0.0960 of its $0.05 budget" in shown
                and "Continue for up to $0.05 more?" in shown
            )
            assert [t.status for t in await runs.list_tasks(bot.baton.db, run_id)] == [
                TaskStatus.SUCCEEDED,
                TaskStatus.WAITING,
            ]
            await bot.click(ui.APPROVE, value_of(message), user="U0ALICE", message=message)
            await bot.idle()
            run = await runs.get_run(bot.baton.db, run_id)
    assert (
        run is not None
        and run.status == RunStatus.SUCCEEDED
        and run.budget_usd == pytest.approx(0.10)
    )
    assert bot.thread(slack.messages("C0GENERAL")[0])[-1].text == "all thought through"

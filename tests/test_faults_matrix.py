"""The fault matrix: a real `baton run --http` killed with SIGKILL at every stage of a run.

One process is taken to eight stages at once, each in its own thread — (a) while planning,
(b) with a specialist's model call in flight, (c) between two tasks, (d) while the answer is
being posted, (e) while an approval waits, (f) right after an Approve click was acked, (g)
while the approval buttons are being posted, (h) between two pieces of a split answer —
then killed, and a new process is started on the same database. The stages are reached and
observed from outside: the fake model server holds calls, the Slack stand-in holds posts,
the database shows what finished. Afterwards every run has ended with exactly one answer,
no finished task ran again, and the webhook receiver saw each side effect exactly once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import approval_blocks as ui
from sandbox.web_api import Hold, SlackStandIn
from sandbox.workspace import Message
from storage import Database, runs
from storage.models import Run, TaskStatus
from testkit.databases import fresh_pg_database
from testkit.fakes.model_servers import FakeOpenAI, Reply, Seen
from testkit.fakes.webhook_receiver import WebhookReceiver
from testkit.harness import Bot
from testkit.processes import environment, free_port, healthy
from tests.trust_helpers import answers, approval_requests, approval_value

CATALOG = """
agents:
  - {name: thinker, description: Thinks., model: 'openai:gpt-4.1-mini', tools: [calculator]}
  - {name: deployer, description: Calls webhooks., model: rules, tools: [webhook_post]}
playbooks:
  - name: stage-b
    description: A model call in flight.
    tasks: [{id: think, agent: thinker, instruction: stage b}]
  - name: stage-c
    description: Two tasks, one after the other.
    tasks:
      - {id: one, agent: thinker, instruction: stage c one}
      - {id: two, agent: thinker, instruction: stage c two, depends_on: [one]}
  - name: stage-d
    description: An answer.
    tasks: [{id: think, agent: thinker, instruction: stage d}]
  - name: stage-e
    description: A gated webhook call.
    tasks: [{id: deploy, agent: deployer, instruction: 'Call the deploys_e webhook with {"v": 1}'}]
  - name: stage-f
    description: A gated webhook call.
    tasks: [{id: deploy, agent: deployer, instruction: 'Call the deploys_f webhook with {"v": 1}'}]
  - name: stage-g
    description: A gated webhook call.
    tasks: [{id: deploy, agent: deployer, instruction: 'Call the deploys_g webhook with {"v": 1}'}]
  - name: stage-h
    description: A long answer.
    tasks: [{id: think, agent: thinker, instruction: stage h}]
webhooks:
  deploys_e: HOOK/e
  deploys_f: HOOK/f
  deploys_g: HOOK/g
approvals:
  approvers: [U0ALICE]
"""

LONG = "\n\n".join(f"H{i}. " + "A finding that takes a while to tell. " * 18 for i in range(1, 10))
STAGES = "abcdefgh"


class Models:
    """The fake model server's script: before the kill, some calls never answer."""

    def __init__(self, server: FakeOpenAI) -> None:
        self.server = server
        self.before_kill = True
        server.when(self.planning, self.plan)
        server.when(self.thinking, self.think)
        server.when(lambda s: "Write the final answer" in s.system, self.synthesize)

    @staticmethod
    def planning(seen: Seen) -> bool:
        return "Turn the request into a plan" in seen.system

    @staticmethod
    def thinking(seen: Seen) -> bool:
        return seen.system.startswith("You are thinker")

    def plan(self, seen: Seen) -> Reply:
        if self.before_kill:
            return Reply(hang=True)
        return Reply(
            structured={
                "title": "Stage a",
                "tasks": [{"id": "think", "agent": "thinker", "instruction": "stage a"}],
            }
        )

    def think(self, seen: Seen) -> Reply:
        step = seen.last_user_text.split("\n")[0]  # the instruction; dependencies' results follow
        if step in ("stage b", "stage c two") and self.before_kill:
            return Reply(hang=True)
        if step == "stage h":
            return Reply(text=LONG)
        return Reply(text=f"{step}: done")

    @staticmethod
    def synthesize(seen: Seen) -> Reply:
        # The answer is the specialists' results as given (long for stage h).
        results = seen.last_user_text.split("\n\n")[1:]
        return Reply(text="\n\n".join(r.split("\n", 1)[-1] for r in results))

    def calls_for(self, step: str) -> int:
        return len(
            [
                s
                for s in self.server.requests
                if self.thinking(s) and s.last_user_text.split("\n")[0] == step
            ]
        )


@asynccontextmanager
async def baton(
    slack: SlackStandIn, db_url: str, catalog: Path, workdir: Path, models: FakeOpenAI
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`baton run --http` in its own process, started the way an operator starts it."""
    port = free_port()
    # Runs driven in this process (no workers), by the fake OpenAI model.
    env = {**environment(slack, db_url, catalog, models), "BATON_MODEL": "openai:gpt-4.1-mini"}
    env.pop("BATON_WORKERS")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--http", "--port", str(port), cwd=workdir, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await healthy(url, proc)
        yield url, proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


def is_answer_piece(args: dict[str, Any], marker: str, index: int) -> bool:
    payload = (args.get("metadata") or {}).get("event_payload") or {}
    return payload.get("piece") == index and marker in str(args.get("text") or "")


async def run_in(db: Database, thread: Message) -> Run | None:
    async with db.session() as s:
        from sqlmodel import select

        return (await s.exec(select(Run).where(Run.thread_ts == thread.ts))).first()


async def settled(db: Database, slack: SlackStandIn, threads: dict[str, Message]) -> dict[str, Run]:
    """Every stage's run has finished and its answer is in its thread."""
    while True:
        found: dict[str, Run] = {}
        for stage, thread in threads.items():
            run = await run_in(db, thread)
            if run is not None and run.status.is_final and answers(slack, run.id):
                found[stage] = run
        if len(found) == len(threads):
            return found
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_killing_baton_at_any_stage_loses_nothing_and_repeats_nothing(
    database: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "agents.yml"
    async with (
        SlackStandIn() as slack,
        FakeOpenAI() as server,
        WebhookReceiver() as hook,
        fresh_pg_database() if database == "postgresql" else _sqlite(tmp_path) as db_url,
    ):
        catalog.write_text(CATALOG.replace("HOOK", hook.url))
        models = Models(server)
        db = Database(db_url)
        holds: dict[str, Hold] = {
            # The answer streamed into its own message as it was written; posting it is the
            # edit that makes that message the answer.
            "d": slack.hold("chat.update", when=lambda a: is_answer_piece(a, "stage d", 0)),
            "g": slack.hold(
                "chat.postMessage",
                when=lambda a: "deploys_g" in json.dumps(a.get("blocks") or []),
            ),
            "h": slack.hold("chat.postMessage", when=lambda a: is_answer_piece(a, "H", 1)),
        }
        threads: dict[str, Message] = {}
        async with (
            baton(slack, db_url, catalog, tmp_path, server) as (url, first),
            aiohttp.ClientSession() as session,
        ):
            bot = Bot(baton=None, url=url, slack=slack, session=session)  # type: ignore[arg-type]
            for stage in STAGES:
                text = "plan something for stage a" if stage == "a" else f"run stage-{stage}"
                threads[stage] = await bot.mention(text)

            # Take every stage to its point, watching from outside.
            def reached() -> bool:
                gates = json.dumps([m.blocks for m in approval_requests(slack)])
                return (
                    any(models.planning(s) for s in server.requests)
                    and models.calls_for("stage b") == 1
                    and models.calls_for("stage c two") == 1
                    and all(holds[s].arrived.is_set() for s in "dgh")
                    and "deploys_e" in gates
                    and "deploys_f" in gates
                )

            try:
                await slack.wait_for(reached, timeout=60)
            except TimeoutError:
                gates = json.dumps([m.blocks for m in approval_requests(slack)])
                states = {}
                for stage, thread in threads.items():
                    r = await run_in(db, thread)
                    states[stage] = (
                        None
                        if r is None
                        else (r.status.value, [e.kind for e in await runs.events(db, r.id)])
                    )
                raise AssertionError(
                    {
                        "runs": states,
                        "planning": any(models.planning(s) for s in server.requests),
                        "b": models.calls_for("stage b"),
                        "c two": models.calls_for("stage c two"),
                        "holds": {s: holds[s].arrived.is_set() for s in "dgh"},
                        "e": "deploys_e" in gates,
                        "f": "deploys_f" in gates,
                        "thinking": [x.last_user_text for x in server.requests],
                    }
                ) from None
            run_c = await run_in(db, threads["c"])
            assert run_c is not None
            assert {t.task_id: t.status for t in await runs.list_tasks(db, run_c.id)} == {
                "one": TaskStatus.SUCCEEDED,
                "two": TaskStatus.RUNNING,
            }
            gate_f = next(
                m for m in approval_requests(slack) if "deploys_f" in json.dumps(m.blocks)
            )
            assert (
                await bot.click(ui.APPROVE, approval_value(gate_f), user="U0ALICE", message=gate_f)
                == 200
            )
            first.send_signal(signal.SIGKILL)  # (f): right after the click's ack
            await first.wait()

        # What Slack does with the calls in flight when the process died: the answer of (d)
        # was posted (its ack never reached Baton); the buttons (g) and the second piece (h)
        # were not.
        holds["d"].release(apply=True)
        holds["g"].release(apply=False)
        holds["h"].release(apply=False)
        models.before_kill = False

        async with (
            baton(slack, db_url, catalog, tmp_path, server) as (url, _),
            aiohttp.ClientSession() as session,
        ):
            bot = Bot(baton=None, url=url, slack=slack, session=session)  # type: ignore[arg-type]
            for stage in "eg":
                gate = await slack.wait_for(
                    lambda stage=stage: next(
                        (
                            m
                            for m in approval_requests(slack)
                            if f"deploys_{stage}" in json.dumps(m.blocks)
                        ),
                        None,
                    ),
                    timeout=60,
                )
                assert (
                    await bot.click(ui.APPROVE, approval_value(gate), user="U0ALICE", message=gate)
                    == 200
                )
            finished = await asyncio.wait_for(settled(db, slack, threads), timeout=90)

        try:
            for stage, run in finished.items():
                assert len(answers(slack, run.id)) == 1, f"stage {stage}: not exactly one answer"
                kinds = [e.kind for e in await runs.events(db, run.id)]
                assert kinds.count("task_succeeded") == len(await runs.list_tasks(db, run.id)), (
                    stage
                )
        finally:
            await db.dispose()
    assert all(r.status.value == "succeeded" for r in finished.values()), {
        s: (r.status.value, r.error) for s, r in finished.items()
    }
    # No finished task ran again; the one cut off ran again after the restart.
    assert models.calls_for("stage c one") == 1 and models.calls_for("stage c two") == 2
    assert models.calls_for("stage d") == 1 and models.calls_for("stage h") == 1
    # Each side effect happened exactly once.
    assert sorted(r.path for r in hook.received) == ["/hook/e", "/hook/f", "/hook/g"]
    # The split answer of (h): every piece once, in order.
    [last] = answers(slack, finished["h"].id)
    pieces = [
        m.text
        for m in slack.messages("C0GENERAL")
        if m.thread_ts == threads["h"].ts
        and (m.metadata or {}).get("event_type") == "baton_delivery"
    ]
    told = [ln.split(".")[0] for p in pieces for ln in p.splitlines() if ln.startswith("H")]
    assert told == [f"H{i}" for i in range(1, 10)] and pieces[-1] == last.text


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[str]:
    yield f"sqlite:///{tmp_path}/baton.db"

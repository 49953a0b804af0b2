"""A run waiting at a gate survives its process: a new process takes the click and finishes it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bot import approval_blocks as ui
from orchestration.engine import runs_to_drive
from sandbox.signing import FORM, block_actions_body, signed_headers
from sandbox.web_api import SlackStandIn
from storage import Database, runs, tool_calls
from storage.models import RunStatus
from testkit.harness import SECRET, sample
from testkit.processes import ROOT, free_port, healthy
from tests.test_approvals import approval_messages, value_of, write_catalog


@asynccontextmanager
async def baton_process(
    slack: SlackStandIn,
    db_url: str,
    catalog: Path,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """`baton run --http` in its own process; yields its URL; killed (SIGKILL) on exit."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "BATON_DATABASE_URL": db_url,
        "BATON_AGENTS_FILE": str(catalog),
        "BATON_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--http",
        "--port",
        str(port),
        cwd=workdir,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await healthy(url, proc)
        yield url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


async def post(url: str, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/slack/events",
            data=body,
            headers=signed_headers(SECRET, body, content_type=FORM),
        ) as resp,
    ):
        return resp.status


async def test_a_click_after_a_kill_and_restart_finishes_the_run_with_one_side_effect(
    pg_url: str, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path)
    async with SlackStandIn() as slack:
        async with baton_process(slack, pg_url, catalog, tmp_path) as first:
            fields = dict(line.split("=", 1) for line in sample_slash().split("&"))
            fields.update(
                team_id="T0BATON",
                channel_id="C0GENERAL",
                user_id="U0ALICE",
                command="/baton",
                text="run announce",
                response_url=slack.response_url("C0GENERAL", "U0ALICE"),
            )
            assert await post(first, urlencode(fields).encode()) == 200
            [message] = await slack.wait_for(lambda: approval_messages(slack) or None, timeout=20)
            await wait_for_status(pg_url, RunStatus.WAITING)
        # The first process is gone (SIGKILL): nothing of the run lives in memory any more.
        async with baton_process(slack, pg_url, catalog, tmp_path) as second:
            payload = sample("block_actions_button_click.bolt_tests.json")
            payload.update(
                user={"id": "U0ALICE"},
                team={"id": "T0BATON"},
                channel={"id": "C0GENERAL"},
                trigger_id=slack.trigger_id("U0ALICE"),
            )
            payload["container"].update(message_ts=message.ts, channel_id="C0GENERAL")
            payload["actions"] = [
                {
                    "type": "button",
                    "action_id": ui.APPROVE,
                    "block_id": "b",
                    "value": value_of(message),
                    "action_ts": str(time.time()),
                }
            ]
            assert await post(second, block_actions_body(payload)) == 200
            await slack.wait_for(
                lambda: (
                    [
                        m
                        for m in slack.messages("C0GENERAL")
                        if m.blocks
                        and m.blocks[-1].get("type") == "context"
                        and "Run `" in json.dumps(m.blocks[-1])
                        and "done" in json.dumps(m.blocks[-1])
                    ]
                    or None
                ),
                timeout=20,
            )

    db = Database(pg_url)
    try:
        run = await runs.latest_run(db, channel_id="C0GENERAL")
        assert run is not None and run.status == RunStatus.SUCCEEDED
        # A process starting on this database now resumes what this finds: not this run.
        assert run.id not in (await runs_to_drive(db)).run_ids
        assert len(await tool_calls.for_run(db, run.id)) == 1
        kinds = [e.kind for e in await runs.events(db, run.id)]
        assert kinds.count("task_succeeded") == 1 and "run_resumed" in kinds
    finally:
        await db.dispose()
    assert [m.text for m in slack.messages("C0RANDOM")] == ["Deploy finished"]


async def wait_for_status(db_url: str, status: RunStatus) -> None:
    """Until the run is in `status` and its driver has let go of it (a process killed while
    it still holds the lease leaves the run to whoever takes it once the lease lapses)."""
    db = Database(db_url)
    try:
        for _ in range(400):
            run = await runs.latest_run(db, channel_id="C0GENERAL")
            if run is not None and run.status == status and run.lease_owner is None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the run never reached {status} with nobody driving it")
    finally:
        await db.dispose()


def sample_slash() -> str:
    from testkit.harness import PAYLOADS

    return (PAYLOADS / "slash_command_body.slack_docs.txt").read_text().strip()

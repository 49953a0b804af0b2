"""Slack economy: Web API calls per run against the budget of `tasks + 4`, and the highest
edit rate on one message (Slack allows about one edit per second per message).

A mention starts a run of a chain of 3 or 10 tasks, each a model call that answers after
0.4 s (the fake OpenAI server), with the progress options Baton ships with, streamed and with
`chat.update`. The calls are those the Slack
stand-in recorded for the run (`SlackStandIn.calls`), from the mention's ack to the answer;
an edit is a `chat.update` or `chat.appendStream` on one message ts, and its rate is the most
edits that message had in any 1-s window.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

Row = tuple[str, str, str]
EDITS = ("chat.update", "chat.appendStream")
# Each task's model call takes this long, so that the run's progress spreads over seconds.
STEP_SECONDS = 0.4


def _catalog(n: int) -> str:
    tasks = "\n".join(
        f"      - {{id: t{i}, agent: slow, instruction: step {i}"
        + (f", depends_on: [t{i - 1}]" if i else "")
        + "}"
        for i in range(n)
    )
    return (
        "agents:\n  - {name: slow, description: Answers after a while., "
        "model: 'openai:gpt-4.1-mini'}\n"
        "playbooks:\n  - name: shape\n    description: The bench's shape.\n    tasks:\n"
        + tasks
        + "\n"
    )


def edits_per_second(calls: list[Any]) -> tuple[int, str]:
    """The most edits one message had within one second, and that message's ts."""
    by_ts: dict[str, list[float]] = {}
    for c in calls:
        if c.method in EDITS and c.args.get("ts"):
            by_ts.setdefault(str(c.args["ts"]), []).append(c.at)
    best, where = 0, ""
    for ts, times in by_ts.items():
        times.sort()
        for i, t in enumerate(times):
            within = sum(1 for u in times[i:] if u - t < 1.0)
            if within > best:
                best, where = within, ts
    return best, where


async def one_run(n: int, *, streaming: bool) -> tuple[list[Any], int]:
    """The Web API calls one run of `n` no-op tasks made, and its final status check."""
    from bot.progress import ProgressOptions
    from sandbox.web_api import SlackStandIn
    from storage import runs
    from storage.models import RunStatus
    from testkit.fakes.model_servers import FakeOpenAI, Reply
    from testkit.harness import running_bot

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "agents.yml"
        catalog.write_text(_catalog(n))
        async with (
            SlackStandIn() as slack,
            FakeOpenAI() as models,
            running_bot(
                slack,
                f"sqlite:///{tmp}/b.db",
                progress=ProgressOptions(streaming=streaming),
                baton_agents_file=catalog,
                openai_api_key="sk-bench",
                openai_base_url=models.base_url,
            ) as bot,
        ):
            models.default = Reply(text="done", delay=STEP_SECONDS)
            start = len(slack.calls)
            await bot.mention("run shape")
            await bot.idle()
            run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
            assert run is not None and run.status == RunStatus.SUCCEEDED, run
            # The mention itself is the person's message, not a call Baton made.
            calls = [c for c in slack.calls[start:] if c.method not in ("auth.test",)]
            tasks = len(await runs.list_tasks(bot.baton.db, run.id))
    return calls, tasks


async def slack_economy() -> list[Row]:
    rows: list[Row] = []
    for n in (3, 10):
        for streaming in (True, False):
            calls, tasks = await one_run(n, streaming=streaming)
            assert tasks == n, tasks
            budget = n + 4
            rate, _ = edits_per_second(calls)
            made = Counter(c.method for c in calls)
            detail = ", ".join(f"{m} {k}" for m, k in sorted(made.items()))
            over = f" — over budget: {detail}" if len(calls) > budget else ""
            rows.append(
                (
                    f"Slack economy, {n}-task run ({'streaming' if streaming else 'chat.update'})",
                    "Web API calls / budget (tasks + 4) · most edits of one message in 1 s",
                    f"{len(calls)} / {budget} · {rate}{over}",
                )
            )
    return rows


if __name__ == "__main__":
    import asyncio

    for row in asyncio.run(slack_economy()):
        print("  ".join(row))

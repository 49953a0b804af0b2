"""One run against a real model: llama-cpp-python's server with SmolLM2-135M, on this machine.

The same request and settings as tests/test_real_model.py's free-form run: two specialists
match, so the model plans (or the triggers do when it cannot), checks a local page, writes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from testkit.databases import Site


async def real_model_run(site: Site) -> list[tuple[str, str, str]]:
    from sandbox.web_api import SlackStandIn
    from storage import runs, usage
    from testkit.harness import running_bot
    from testkit.real_model import CATALOG, COMPAT, serving

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with serving(Path(tmp)) as server:
            up = time.perf_counter() - started
            agents = Path(tmp) / "agents.yml"
            agents.write_text(CATALOG)
            async with (
                SlackStandIn() as slack,
                running_bot(
                    slack,
                    f"sqlite:///{tmp}/b.db",
                    openai_base_url=server.base_url,
                    baton_model=f"openai:{server.model}",
                    baton_agents_file=agents,
                    openai_compat=COMPAT,
                ) as bot,
            ):
                t0 = time.perf_counter()
                await bot.mention(f"check {site.url('/ok')} and summarise it")
                await bot.idle()
                elapsed = time.perf_counter() - t0
                run = await runs.latest_run(bot.baton.db, channel_id="C0GENERAL")
                assert run is not None
                calls = await usage.calls(bot.baton.db, run.id)
                by = next(
                    (e.data or {}).get("by")
                    for e in await runs.events(bot.baton.db, run.id)
                    if e.kind == "plan_routed"
                )
    return [
        (
            "real model: llama-cpp-python + SmolLM2-135M, start",
            "server up (model loaded)",
            f"{up:.1f} s",
        ),
        (
            "real model: one check-and-summarise run",
            "wall time · tokens in / out · calls",
            f"{elapsed:.1f} s · {run.input_tokens:,} / {run.output_tokens:,} · "
            f"{len(calls)} ({run.status.value}, planned by {by})",
        ),
    ]

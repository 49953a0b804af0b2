"""What tracing and metrics cost a run: the same offline runs with telemetry off and on.

"On" is what a deployment with OTEL_EXPORTER_OTLP_ENDPOINT set runs: spans for the run,
its tasks, model and tool calls, batched to an OTLP/HTTP collector on 127.0.0.1, plus the
Prometheus counters (Slack calls, tokens, durations). "Off" records nothing. Rounds of each
alternate so that a busy machine slows both alike; CPU time (this process, all threads —
the stand-in and collector included, alike for both) is steadier than wall time there.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from testkit.databases import Site

ROUNDS = 8
RUNS_PER_ROUND = 10
SCRAPES = 20


async def telemetry_cost(site: Site) -> list[tuple[str, str, str]]:
    from agents.telemetry import Telemetry, otlp_exporter
    from sandbox.web_api import SlackStandIn
    from testkit.fakes.otlp_receiver import OtlpReceiver
    from testkit.harness import Bot, running_bot

    async def round_of_runs(bot: Bot, n: int) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(RUNS_PER_ROUND):
            await bot.mention(f"check {site.url('/ok')} and summarise #{n}-{i}")
        await bot.idle()
        return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000

    timings: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    scrapes: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with OtlpReceiver() as collector, SlackStandIn() as slack:
            on = Telemetry.create(exporter=otlp_exporter(collector.root))
            async with (
                running_bot(slack, f"sqlite:///{tmp}/off.db", telemetry=Telemetry.off()) as off,
                running_bot(slack, f"sqlite:///{tmp}/on.db", telemetry=on) as traced,
            ):
                for n in range(ROUNDS):
                    for enabled, bot in ((False, off), (True, traced)):
                        wall, used = await round_of_runs(bot, n)
                        timings[enabled].append(wall)
                        cpu[enabled].append(used)
                for _ in range(SCRAPES):
                    start = time.perf_counter()
                    async with traced.session.get(f"{traced.url}/metrics") as resp:
                        await resp.read()
                    scrapes.append((time.perf_counter() - start) * 1000)
            spans = len(collector.spans)
    without, with_ = statistics.median(timings[False]), statistics.median(timings[True])
    cpu_without, cpu_with = statistics.median(cpu[False]), statistics.median(cpu[True])
    runs = ROUNDS * RUNS_PER_ROUND
    return [
        (
            f"tracing + metrics, {RUNS_PER_ROUND} offline runs at once × {ROUNDS} (SQLite)",
            "p50 round off → on · ratio",
            f"{without:.0f} → {with_:.0f} ms · {with_ / without:.2f}×",
        ),
        (
            "tracing + metrics, CPU per round (same runs)",
            "p50 CPU off → on · ratio",
            f"{cpu_without:.0f} → {cpu_with:.0f} ms · {cpu_with / cpu_without:.2f}×",
        ),
        (
            f"spans exported over OTLP/HTTP for {runs} runs",
            "spans · per run",
            f"{spans} · {spans / runs:.1f}",
        ),
        (
            f"GET /metrics after {runs} runs (SQLite)",
            "p50 / max",
            f"{statistics.median(scrapes):.1f} / {max(scrapes):.1f} ms",
        ),
    ]

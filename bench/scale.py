"""Scale: Baton against references, measured by the same harness.

- ack latency under bursts: the same signed `/baton run` commands and mentions, sent all at
  once from a process of their own and timed until each answer reaches its socket
  (`bench/burst.py`), to a bare Bolt app (acks only) and to Baton's web process
  (`BATON_WORKERS=external`, `baton worker`s, PostgreSQL), with runs in flight in the workers
  (their model calls held by the fake model server, counted in the database as tasks
  running: topped up to 0 / 800, and each burst's runs stay in flight, no task timing out,
  so each row names the counts it was measured between); each burst
  REPEATS times, Bolt's and Baton's taking turns: p50 / p99 (medians), and Baton's p99 over
  Bolt's in the same turn (median and range). Both are warmed up first with a burst of runs
  that finish at once (connections made, statements prepared): the rows measure processes in
  use, not ones just started
- memory per run in flight: after the bursts, the workers' RSS (`/proc/<pid>/status`) read
  before and after each of three steps of 66 more held runs; KB per run, median and range
- orchestration overhead: chains and fan-outs of no-op tasks (the offline `rules` model) in
  one process, SQLite and PostgreSQL: CPU, SQL statements and commits per task, counted with
  SQLAlchemy events, for a run on an engine that has run one like it before (as a running
  worker's has: its statements compiled and prepared), and for one-task runs also on an
  engine that has run nothing; and the same shapes in LangGraph (`bench/langgraph_ref.py`),
  in memory and with its SQLite checkpointer, with each Baton figure over LangGraph+SQLite's
- throughput: bursts of three-task runs finished by 1, 2 and 4 workers, the counts taking
  turns twice: runs whose model calls take 1.5 s, each worker holding 10 at once, and offline
  runs that only the CPU bounds; median runs/s from the first run stored to the last finished,
  and over 1 worker's; with the CPU the workers, the web process, PostgreSQL and the bench
  itself (the Slack and model stand-ins, the sender) spent per run meanwhile, and the runs
  per second the machine's cores allow at that cost

`BATON_BENCH_FULL=1` runs every size the issue names (bursts of 30/100/300 with 0/200/800
runs in flight, once each); by default the bursts are 30/100
with 0/800 in flight, seven times each (a burst's p99 is its slowest ack, so one turn's
ratio ranges from below 1 to 2 and a row's median needs several turns to settle), so that
the ack rows take a few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp

from bench.figures import Row, pct, print_table, spread
from testkit.databases import fresh_pg_database
from testkit.harness import FORM, JSON_TYPE, PAYLOADS, sample
from testkit.processes import ROOT, free_port

T = TypeVar("T")

FULL = os.environ.get("BATON_BENCH_FULL") == "1"
BURSTS = (30, 100, 300) if FULL else (30, 100)
IN_FLIGHT = (0, 200, 800) if FULL else (0, 800)
REPEATS = 1 if FULL else 7
# After the bursts, this many more runs are held in this many steps, the workers' RSS read
# between them.
MEMORY_RUNS, MEMORY_STEPS = 198, 3

CATALOG = """
agents:
  - {name: thinker, description: Thinks (a model held by the bench)., model: 'openai:gpt-4.1-mini'}
  - {name: noop, description: Does nothing much., model: rules}
playbooks:
  - name: think
    description: One step whose model call is held.
    tasks: [{id: think, agent: thinker, instruction: think}]
  - name: quick
    description: Three offline steps.
    tasks:
      - {id: a, agent: noop, instruction: one}
      - {id: b, agent: noop, instruction: two}
      - {id: c, agent: noop, instruction: three, depends_on: [a, b]}
  - name: waits
    description: Three steps whose model calls take the bench's time.
    tasks:
      - {id: a, agent: thinker, instruction: one}
      - {id: b, agent: thinker, instruction: two}
      - {id: c, agent: thinker, instruction: three, depends_on: [a, b]}
"""


class Sender:
    """Signed Slack requests, as Slack sends them, to one app's /slack/events."""

    def __init__(self, session: aiohttp.ClientSession, url: str, team: str) -> None:
        self.session, self.url, self.team = session, url, team
        self.serial = 0

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def command(self, text: str) -> tuple[bytes, str]:
        fields = dict(
            line.split("=", 1)
            for line in (PAYLOADS / "slash_command_body.slack_docs.txt")
            .read_text()
            .strip()
            .split("&")
        )
        n = self._next()
        fields.update(
            team_id=self.team,
            channel_id="C0GENERAL",
            user_id="U0ALICE",
            command="/baton",
            text=text,
            response_url="http://127.0.0.1:9/none",
            trigger_id=f"bench.{time.time_ns()}.{n}",
        )
        return urlencode(fields).encode(), FORM

    def mention(self, text: str, ts: str) -> tuple[bytes, str]:
        envelope = sample("app_mention_event_callback.slack_docs.json")
        event = dict(envelope["event"])
        event.update(
            user="U0ALICE", text=f"<@U0BATON> {text}", ts=ts, channel="C0GENERAL", event_ts=ts
        )
        event.pop("thread_ts", None)
        envelope.update(
            team_id=self.team,
            api_app_id="A0BATON",
            event=event,
            event_id=f"EvBench{time.time_ns()}{self._next()}",
            event_time=int(time.time()),
        )
        return json.dumps(envelope).encode(), JSON_TYPE

    async def burst(self, requests: list[tuple[bytes, str]]) -> list[float]:
        """Send them all at once from a process of its own (`bench/burst.py`): this process
        also serves the Slack stand-in and the model server, which would skew the timing."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as f:
            json.dump([[b.decode("latin-1"), t] for b, t in requests], f)
            f.flush()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.burst",
                self.url,
                f.name,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
        assert proc.returncode == 0, "the burst failed"
        return [float(t) for t in json.loads(out)]


@asynccontextmanager
async def bare_bolt() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """The bare Bolt app (`bench/bare_bolt.py`) in a process of its own: its URL and process."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_bolt",
        str(port),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        from testkit.processes import healthy

        await healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        await proc.wait()


async def _until(check: Callable[[], Awaitable[bool]], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.2)


async def _count(db: Any, model: Any, *where: Any) -> int:
    """How many rows of `model` match `where`."""
    from sqlalchemy import func
    from sqlmodel import select

    async with db.session() as s:
        return int((await s.exec(select(func.count()).select_from(model).where(*where))).one())


async def _unfinished(db: Any, playbook: str) -> int:
    from sqlmodel import col

    from storage.models import Run

    return await _count(db, Run, col(Run.playbook) == playbook, col(Run.finished_at).is_(None))


async def _thinking(db: Any) -> int:
    """Tasks of the `think` playbook started and not ended: their model calls are held."""
    from sqlmodel import col

    from storage.models import TaskRow, TaskStatus

    return await _count(
        db, TaskRow, col(TaskRow.agent) == "thinker", col(TaskRow.status) == TaskStatus.RUNNING
    )


async def _succeeded(db: Any, playbook: str) -> tuple[int, float]:
    """How many of the playbook's runs succeeded, and the seconds from the first one stored
    to the last one finished."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from storage.models import Run, RunStatus

    async with db.session() as s:
        q = select(
            func.count(), func.min(col(Run.created_at)), func.max(col(Run.finished_at))
        ).where(col(Run.playbook) == playbook, col(Run.status) == RunStatus.SUCCEEDED)
        count, first, last = (await s.exec(q)).one()
    return int(count), (last - first).total_seconds() if count else 0.0


async def ack_bursts() -> list[Row]:
    from sandbox.web_api import SlackStandIn
    from storage import Database
    from testkit.fakes.model_servers import FakeOpenAI, Reply
    from testkit.processes import environment, process

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "agents.yml"
        catalog.write_text(CATALOG)
        async with AsyncExitStack() as stack:
            slack = await stack.enter_async_context(SlackStandIn())
            models = await stack.enter_async_context(FakeOpenAI())
            models.when(
                lambda s: s.system.startswith("You are thinker"), lambda s: Reply(hang=True)
            )
            db_url = await stack.enter_async_context(fresh_pg_database())
            env = {
                **environment(slack, db_url, catalog, models),
                "BATON_LEASE_SECONDS": "60",
                "BATON_WORKER_RUNS": "1000",
                # Held model calls stay held: no call, task or run times out mid-bench.
                "BATON_MODEL_TIMEOUT": "3600",
                "BATON_TASK_TIMEOUT": "3600",
                "BATON_RUN_DEADLINE": "3600",
                "BATON_LOG_LEVEL": "ERROR",
            }
            baton_url, web = await stack.enter_async_context(
                process(env, Path(tmp), "run", "--http")
            )
            workers = []
            # Room for every run the bursts leave in flight (BATON_WORKER_RUNS each, at most
            # 1000), and for the memory steps after them: about 2,800 runs by default.
            for _ in range(4):
                workers.append(
                    (await stack.enter_async_context(process(env, Path(tmp), "worker")))[1]
                )
            bolt_url, bolt_proc = await stack.enter_async_context(bare_bolt())
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            )
            db = Database(db_url)
            stack.push_async_callback(db.dispose)
            team = slack.workspace.team_id
            baton, bolt = Sender(session, baton_url, team), Sender(session, bolt_url, team)

            async def requests(
                sender: Sender, kind: str, n: int, text: str
            ) -> list[tuple[bytes, str]]:
                if kind == "command":
                    return [sender.command(text) for _ in range(n)]
                out = []
                for i in range(n):
                    msg = await slack.post_as_user("C0GENERAL", "U0ALICE", f"<@U0BATON> {text} {i}")
                    out.append(sender.mention(text, msg.ts))
                return out

            async def held() -> int:
                """Runs in flight: their one task started, its model call held."""
                return await _thinking(db)

            async def settle(target: int) -> None:
                async def caught_up() -> bool:
                    return await held() >= target

                await _until(caught_up, 300)

            # Warm both up (connections made, statements prepared) with runs that finish at
            # once: the bursts measure a process in use, not one just started.
            await bolt.burst([bolt.command("run quick") for _ in range(BURSTS[0])])
            await baton.burst([baton.command("run quick") for _ in range(BURSTS[0])])

            async def quick_done() -> bool:
                return await _unfinished(db, "quick") == 0

            await _until(quick_done, 300)
            for flight in IN_FLIGHT:
                while await held() < flight:
                    target = min(await held() + 50, flight)
                    await baton.burst(
                        await requests(baton, "mention", target - await held(), "run think")
                    )
                    await settle(target)
                for size in BURSTS:
                    for kind in ("command", "mention"):
                        first, turns = await held(), []
                        for _ in range(REPEATS):
                            before = await held()
                            bare, bare_cpu = await on_cpu(
                                bolt_proc.pid,
                                bolt.burst(await requests(bolt, kind, size, "run think")),
                            )
                            ours, our_cpu = await on_cpu(
                                web.pid, baton.burst(await requests(baton, kind, size, "run think"))
                            )
                            turns.append((bare, bare_cpu, ours, our_cpu))
                            # The burst's runs join those in flight once their model call is held.
                            await settle(before + size)
                        rows.append(_ack_row(size, kind, first, before, turns))
            # Memory per run in flight: the workers' RSS before and after each step of runs
            # held by the model.
            step, kb_per_run, first = MEMORY_RUNS // MEMORY_STEPS, [], await held()
            start_kb = rss_kb(*(w.pid for w in workers))
            for _ in range(MEMORY_STEPS):
                before, kb = await held(), rss_kb(*(w.pid for w in workers))
                await baton.burst(await requests(baton, "mention", step, "run think"))
                await settle(before + step)
                added = await held() - before
                kb_per_run.append((rss_kb(*(w.pid for w in workers)) - kb) / added)
            rows.append(
                (
                    f"memory, {await held() - first} more runs in flight from {first} "
                    f"({len(workers)} worker{'s' if len(workers) > 1 else ''})",
                    f"worker RSS · KB per run in flight over {MEMORY_STEPS} steps",
                    f"{start_kb / 1024:.0f} → {rss_kb(*(w.pid for w in workers)) / 1024:.0f} MB · "
                    f"{spread(kb_per_run, '.0f')} KB",
                )
            )
    return rows


def _ack_row(
    size: int,
    kind: str,
    first: int,
    last: int,
    turns: list[tuple[list[float], float, list[float], float]],
) -> Row:
    """One ack row from its turns (Bolt's acks and CPU seconds, then Baton's)."""
    ratios = [pct(ours, 0.99) / pct(bare, 0.99) for bare, _, ours, _ in turns]
    bolt = [statistics.median([pct(t[0], q) for t in turns]) for q in (0.5, 0.99)]
    baton = [statistics.median([pct(t[2], q) for t in turns]) for q in (0.5, 0.99)]
    cpu = [
        statistics.median([bare_cpu * 1000 / size for _, bare_cpu, _, _ in turns]),
        statistics.median([our_cpu * 1000 / size for _, _, _, our_cpu in turns]),
    ]
    flight = f"{first}–{last}" if last != first else str(first)
    return (
        f"ack, {size} {kind}s at once, {flight} runs in flight (PostgreSQL)",
        "p50 / p99 Bolt → Baton · p99 ratio · CPU per request Bolt → Baton",
        f"{bolt[0]:.0f} / {bolt[1]:.0f} → {baton[0]:.0f} / {baton[1]:.0f} ms · "
        f"{spread(ratios, '.2f')}× · "
        f"{cpu[0]:.2f} → {cpu[1]:.2f} ms",
    )


def rss_kb(*pids: int) -> int:
    """The resident memory of these processes (Linux: VmRSS in /proc/<pid>/status), in KB."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _catalog_for(shape: str, n: int) -> str:
    tasks = []
    for i in range(n):
        after = f", depends_on: [t{i - 1}]" if shape == "chain" and i else ""
        tasks.append(f"      - {{id: t{i}, agent: noop, instruction: step {i}{after}}}")
    return (
        "agents:\n  - {name: noop, description: Does nothing much., model: rules}\n"
        "playbooks:\n  - name: shape\n    description: The bench's shape.\n    tasks:\n"
        + "\n".join(tasks)
        + "\n"
    )


@dataclass
class Overhead:
    """One shape's CPU per task (ms), and its SQL statements and commits per task."""

    cpu_ms: float
    statements: float
    commits: float
    first_cpu_ms: float  # the same run on a database engine that had run nothing yet


# The statements asyncpg sends on its own when a connection first meets a type.
_ASYNCPG_OWN = re.compile(r"typeinfo_tree|set_config\('jit'|current_setting\('jit'\)")


class Statements:
    """The SQL statements a database is sent, and the commits that wrote something (a read
    in autocommit, or a transaction that only read, commits nothing a crash could lose),
    counted while `counting` is set.

    Counted where they are sent: SQLAlchemy's engine events see what goes through
    SQLAlchemy; the drivers' own hooks see the batches `Database.write` sends to them
    directly (`storage.driver`): sqlite3's trace callback every statement on the SQLite
    connections of the event loop's thread, asyncpg's query logger those on PostgreSQL.
    Made before the database's first connection, so that every connection has its hook."""

    def __init__(self, db: Any) -> None:
        from sqlalchemy import event

        self.statements = self.commits = 0
        self.counting = False
        engine, *here = db.engines
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "connect", self._asyncpg_logs)
        for sync in here:  # SQLite, on the loop's thread: sqlite3 traces all of it
            event.listen(sync, "connect", self._sqlite_traces)

    def _statement(self, conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if not self.counting:
            return
        self.statements += 1
        if sql.lstrip()[:6].upper() == "SELECT":
            return
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            self.commits += 1  # a write that is its own transaction
        else:
            conn.info["wrote"] = True

    def _commit(self, conn: Any) -> None:
        if conn.info.pop("wrote", False) and self.counting:
            self.commits += 1

    def _asyncpg_logs(self, _dbapi: Any, record: Any) -> None:
        driver = record.driver_connection
        if hasattr(driver, "add_query_logger"):  # asyncpg (SQLAlchemy's own go prepared)
            driver.add_query_logger(self._logged)

    def _logged(self, query: Any) -> None:
        text = query.query.lstrip()
        word = text[:8].upper()
        if (
            not self.counting
            or word.startswith(("BEGIN", "COMMIT", "ROLLBACK"))  # SQLAlchemy's transactions
            or isinstance(query.args, list)  # SQLAlchemy's executemany: its events count it
            or _ASYNCPG_OWN.search(text)  # asyncpg reading a type a connection first meets
        ):
            return
        self.statements += 1
        if not word.startswith("SELECT"):
            self.commits += 1  # sent directly, in autocommit

    def _sqlite_traces(self, dbapi: Any, _record: Any) -> None:
        dbapi.set_trace_callback(self._traced)

    def _traced(self, sql: str) -> None:
        word = sql.lstrip()[:8].upper()
        if not self.counting or word.startswith(("BEGIN", "ROLLBACK", "PRAGMA")):
            return
        if word.startswith("COMMIT"):
            self.commits += 1  # sqlite3 begins a transaction only for a write
        else:
            self.statements += 1


async def overhead_one(url: str, shape: str, n: int) -> Overhead:
    """CPU, statements and commits per task for a run of `n` no-op tasks, on an engine that
    has run one such run already (as a worker's has: its statements compiled and prepared);
    and the CPU of that first run."""
    from orchestration.limits import Limits
    from storage import Database, runs
    from storage.models import Run, RunStatus
    from testkit.offline import offline_orchestrator

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agents.yml"
        path.write_text(_catalog_for(shape, n))
        db = Database(url)
        counts = Statements(db)
        await db.create_all()
        orch = offline_orchestrator(db, path, limits=Limits(max_tasks=200, max_parallel=32))
        cpu: list[float] = []
        for measured in (False, True):
            run = await runs.create_run(db, Run(id=runs.new_id(), request="go", playbook="shape"))
            assert run is not None
            counts.counting = measured
            gc.collect()  # the harness's own garbage is not collected inside the timing
            start = time.process_time()
            await orch.execute(run.id)
            cpu.append(time.process_time() - start)
            counts.counting = False
            done = await runs.get_run(db, run.id)
            assert done is not None and done.status == RunStatus.SUCCEEDED, (
                done and done.status,
                done and done.error,
            )
        await db.dispose()
    return Overhead(
        cpu_ms=cpu[1] * 1000 / n,
        statements=counts.statements / n,
        commits=counts.commits / n,
        first_cpu_ms=cpu[0] * 1000 / n,
    )


async def langgraph_reference(
    shapes: tuple[str, ...], sizes: tuple[int, ...], repeats: int
) -> dict[tuple[str, int], tuple[list[float], list[float]]] | None:
    """LangGraph's CPU ms per node for each shape and size: in memory, and with its SQLite
    checkpointer (None when the `bench` extra is not installed)."""
    try:
        from bench.langgraph_ref import cpu_per_node
    except ImportError:
        return None
    await cpu_per_node("chain", 10, checkpoint=True)  # first use: imports and caches
    figures: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for shape in shapes:
        for n in sizes:
            memory, sqlite = [], []
            for _ in range(repeats):
                memory.append(await cpu_per_node(shape, n, checkpoint=False))
                sqlite.append(await cpu_per_node(shape, n, checkpoint=True))
            figures[shape, n] = (memory, sqlite)
    return figures


async def overhead() -> list[Row]:
    rows: list[Row] = []
    sizes = (1, 10, 50, 100)
    shapes = ("chain", "fan-out")
    reference = await langgraph_reference(shapes, sizes, 3)
    if reference is None:
        rows.append(
            ("orchestration reference", "LangGraph", "not installed (`pip install .[bench]`)")
        )
    else:
        for shape in shapes:
            for n in sizes:
                memory, sqlite = reference[shape, n]
                rows.append(
                    (
                        f"reference: LangGraph, {shape} of {n} no-op node{'s' if n > 1 else ''}",
                        "CPU per node, in memory · SQLite checkpoint",
                        f"{spread(memory, '.2f')} · {spread(sqlite, '.2f')} ms",
                    )
                )
    for label in ("SQLite", "PostgreSQL"):
        for shape in shapes:
            totals: list[list[float]] = []  # each size's run CPU (ms), by repeat
            for n in sizes:
                figures = []
                for _ in range(3):
                    if label == "SQLite":
                        with tempfile.TemporaryDirectory() as tmp:
                            figures.append(await overhead_one(f"sqlite:///{tmp}/b.db", shape, n))
                    else:
                        async with fresh_pg_database() as url:
                            figures.append(await overhead_one(url, shape, n))
                cpu = [f.cpu_ms for f in figures]
                totals.append([c * n for c in cpu])
                first = figures[0]
                result = f"{spread(cpu)} ms · {first.statements:.1f} · {first.commits:.1f}"
                if reference is not None:
                    # Each repeat over LangGraph's repeat of the same rank (SQLite checkpoint).
                    lg = reference[shape, n][1]
                    ratios = [ours / theirs for ours, theirs in zip(cpu, lg, strict=True)]
                    result += f" · {spread(ratios)}×"
                rows.append(
                    (
                        f"orchestration, {shape} of {n} no-op task{'s' if n > 1 else ''} ({label})",
                        "CPU · statements · commits per task"
                        + (" · CPU over LangGraph+SQLite" if reference is not None else ""),
                        result,
                    )
                )
                if n == 1:
                    cold = [f.first_cpu_ms for f in figures]
                    rows.append(
                        (
                            f"  the same, on a database engine that had run nothing ({label})",
                            "CPU per task (statements compiled and prepared)",
                            f"{spread(cold)} ms",
                        )
                    )
            rows.append(_marginal_row(label, shape, sizes, totals, reference))
    return rows


def _marginal_row(
    label: str,
    shape: str,
    sizes: tuple[int, ...],
    totals: list[list[float]],
    reference: dict[tuple[str, int], tuple[list[float], list[float]]] | None,
) -> Row:
    """A shape's run CPU split by a straight line through its sizes (least squares, one fit
    per repeat): what each task adds, and what a run costs besides its tasks (its lease,
    start, plan, end); LangGraph+SQLite's CPU per added node fitted the same way."""
    fits = [
        statistics.linear_regression(sizes, [total[i] for total in totals])
        for i in range(len(totals[0]))
    ]
    result = f"{spread([f.slope for f in fits], '.2f')} · {spread([f.intercept for f in fits])} ms"
    measure = "CPU per added task · per run besides its tasks (line fit, 1–100)"
    if reference is not None:
        theirs = [
            statistics.linear_regression(
                sizes, [reference[shape, n][1][i] * n for n in sizes]
            ).slope
            for i in range(len(reference[shape, sizes[0]][1]))
        ]
        result += f" · {spread(theirs, '.2f')} ms"
        measure += " · LangGraph+SQLite per added node"
    return (f"orchestration, {shape}: what a task adds to a run ({label})", measure, result)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def precise_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` to the nanosecond, from the scheduler's account of each of the process's
    threads (`/proc/<pid>/task/*/schedstat`): one burst's acks take a few tens of
    milliseconds, and /proc/<pid>/stat counts in ticks of 10 ms. (A thread that has ended
    drops out of the sum; the web process's threads live as long as it does.)"""
    total = 0
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # it ended meanwhile
            total += int((thread / "schedstat").read_text().split()[0])
    return total / 1e9


async def on_cpu(pid: int, work: Awaitable[T]) -> tuple[T, float]:
    """What `work` returns, and the CPU seconds process `pid` used meanwhile."""
    before = precise_cpu_seconds(pid)
    result = await work
    return result, precise_cpu_seconds(pid) - before


def postgres_cpu() -> float:
    """The CPU time of every PostgreSQL process on the machine (the server and backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                pass  # it ended meanwhile
    return total


@dataclass
class Throughput:
    """One burst's runs per second, the CPU each part spent per run meanwhile (ms), and the
    share of the workers' event-loop samples that ran more than 50 ms late."""

    runs_per_second: float
    cpu_ms: dict[str, float]
    loop_late: float


@dataclass(frozen=True)
class Load:
    """A burst of three-task runs for the throughput rows: `n` runs, their model calls
    answered after `model_seconds` (0: offline steps, only the CPU limits them), each worker
    holding up to `capacity` runs at once (None: as configured by default)."""

    n: int
    model_seconds: float = 0.0
    capacity: int | None = None

    @property
    def playbook(self) -> str:
        return "waits" if self.model_seconds else "quick"


async def throughput_once(workers: int, load: Load, catalog: Path) -> Throughput:
    """`load`'s runs sent at once, until `workers` workers finish them."""
    import resource

    from sandbox.web_api import SlackStandIn
    from storage import Database
    from testkit.fakes.model_servers import FakeOpenAI, Reply
    from testkit.processes import environment, process

    n = load.n
    async with AsyncExitStack() as stack:
        slack = await stack.enter_async_context(SlackStandIn())
        models = await stack.enter_async_context(FakeOpenAI())
        models.default = Reply(text="Thought it through.", delay=load.model_seconds)
        db_url = await stack.enter_async_context(fresh_pg_database())
        env = {
            **environment(slack, db_url, catalog, models),
            "BATON_LEASE_SECONDS": "60",
            "BATON_LOG_LEVEL": "ERROR",
            **({"BATON_WORKER_RUNS": str(load.capacity)} if load.capacity else {}),
        }
        url, web = await stack.enter_async_context(process(env, catalog.parent, "run", "--http"))
        pids, metrics = [], []
        for _ in range(workers):
            worker_url, worker = await stack.enter_async_context(
                process(env, catalog.parent, "worker")
            )
            pids.append(worker.pid)
            metrics.append(f"{worker_url}/metrics")
        session = await stack.enter_async_context(aiohttp.ClientSession())
        db = Database(db_url)
        stack.push_async_callback(db.dispose)
        sender = Sender(session, url, slack.workspace.team_id)

        def parts() -> dict[str, float]:
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            return {
                "workers": sum(cpu_seconds(pid) for pid in pids),
                "web": cpu_seconds(web.pid),
                "PostgreSQL": postgres_cpu(),
                # The stand-ins for Slack and the model, the polling below, the burst sender.
                "bench": time.process_time() + children.ru_utime + children.ru_stime,
            }

        lag_before = await loop_lags(session, metrics)
        before = parts()
        await sender.burst([sender.command(f"run {load.playbook}") for _ in range(n)])

        async def drained() -> bool:
            return await _unfinished(db, load.playbook) == 0

        await _until(drained, 600)
        after = parts()
        cpu = {k: (after[k] - before[k]) * 1000 / n for k in before}
        # From the first run stored to the last finished: the sender's start and the
        # polling above are not the workers' time.
        succeeded, elapsed = await _succeeded(db, load.playbook)
        if succeeded != n:
            raise RuntimeError(f"{n - succeeded} of {n} {load.playbook} runs did not succeed")
        lags = await loop_lags(session, metrics)
        lag = {b: c - lag_before.get(b, 0.0) for b, c in lags.items()}
        return Throughput(n / elapsed, cpu, late_share(lag, 0.05))


async def loop_lags(session: aiohttp.ClientSession, urls: list[str]) -> dict[float, float]:
    """The workers' `baton_event_loop_lag_seconds` buckets (upper bound → samples), summed."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    for url in urls:
        async with session.get(url) as resp:
            text = await resp.text()
        for family in text_string_to_metric_families(text):
            if family.name != "baton_event_loop_lag_seconds":
                continue
            for point in family.samples:
                if point.name.endswith("_bucket"):
                    bound = float(point.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + point.value
    return buckets


def late_share(buckets: dict[float, float], limit: float) -> float:
    """The share of loop samples later than `limit` seconds (the buckets are cumulative)."""
    total = buckets.get(float("inf"), 0.0)
    return (total - buckets.get(limit, 0.0)) / total if total else 0.0


async def worker_throughput() -> list[Row]:
    """The same bursts of three-task runs, finished by 1, 2 and 4 workers; the counts take
    turns, so that a slow moment of the machine does not fall on one count only. With the
    CPU each part spent per run: what the machine's cores allow at most.

    Two loads. Runs whose model calls take a while (as real ones do), each worker holding
    a few at once: there a worker is bounded by the runs it may hold, and more workers add
    room until the cores run out. And offline runs, which only the CPU bounds: a worker
    holds BATON_WORKER_RUNS of them at once (50), so one worker also runs with room for the
    whole burst, and the rows of several workers are set against both."""
    # Long enough that what every burst costs once (the sender's start, the first claims,
    # the last look) weighs little against the runs: with 60 it was a third of the time.
    offline = Load(200)
    waiting = Load(80, model_seconds=1.5, capacity=10)
    roomy = Load(200, capacity=200)
    configs: list[tuple[int, Load]] = [
        (1, waiting),
        (2, waiting),
        (4, waiting),
        (1, offline),
        (2, offline),
        (1, roomy),
    ]
    repeats = 2
    results: dict[tuple[int, Load], list[Throughput]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "agents.yml"
        catalog.write_text(CATALOG)
        for _ in range(repeats):
            for workers, load in configs:
                results[(workers, load)].append(await throughput_once(workers, load, catalog))

    def rates(config: tuple[int, Load]) -> list[float]:
        return [t.runs_per_second for t in results[config]]

    def over(config: tuple[int, Load], reference: tuple[int, Load]) -> str:
        """Each repeat over the reference's figure in the same repeat."""
        ratios = [r / o for r, o in zip(rates(config), rates(reference), strict=True)]
        return f" · {spread(ratios, '.2f')}×"

    rows: list[Row] = []
    cores = os.cpu_count() or 1
    for config in configs:
        workers, load = config
        measure, result = f"runs/s, median of {repeats} (range)", spread(rates(config))
        if config not in ((1, waiting), (1, offline)):
            measure += " · over 1 worker"
            result += over(config, (1, load if load is not roomy else offline))
        if load is offline and workers > 1:
            measure += " · over 1 worker holding them all"
            result += over(config, (1, roomy))
        who = f"{workers} worker{'s' if workers > 1 else ''}"
        if load.model_seconds:
            what = f"{load.n} three-task runs, model calls of {load.model_seconds:g} s"
            who += f", each holding {load.capacity} at once"
        else:
            what = f"{load.n} offline three-task runs"
            if load.capacity:
                who += f" holding all {load.capacity} at once"
        rows.append((f"throughput, {what}, {who} (PostgreSQL)", measure, result))
        parts = {
            k: statistics.median(t.cpu_ms[k] for t in results[config])
            for k in results[config][0].cpu_ms
        }
        total = sum(parts.values())
        late = statistics.median(t.loop_late for t in results[config])
        rows.append(
            (
                f"  CPU per run, {who}",
                f"ms: {' · '.join(parts)} → most runs/s {cores} cores allow · "
                "worker loop > 50 ms late",
                " · ".join(f"{v:.0f}" for v in parts.values())
                + f" → {cores * 1000 / total:.0f} · {late:.0%} of samples",
            )
        )
    return rows


async def scale() -> list[Row]:
    return [*await ack_bursts(), *await overhead(), *await worker_throughput()]


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    fn = {"acks": ack_bursts, "overhead": overhead, "workers": worker_throughput}.get(what, scale)
    print_table(asyncio.run(fn()))

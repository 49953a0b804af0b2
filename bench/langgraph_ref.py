"""The reference for orchestration overhead: LangGraph running the same DAG shapes of no-op
nodes, in memory (no checkpointer) and with its SQLite checkpointer (`AsyncSqliteSaver`),
timed as Baton's rows are (`time.process_time` around the invocation, per node).

A chain is `START -> t0 -> t1 -> … -> END`; a fan-out is `START -> t0 … tn-1 -> END` (the
nodes run in one superstep). Each node appends its name to the state, as a Baton task
stores its result. Needs the `bench` extra (`langgraph`, `langgraph-checkpoint-sqlite`).
"""

from __future__ import annotations

import gc
import operator
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict


class State(TypedDict):
    done: Annotated[list[str], operator.add]


def graph(shape: str, n: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder: Any = StateGraph(State)
    names = [f"t{i}" for i in range(n)]
    for name in names:

        async def noop(_: State, name: str = name) -> dict[str, list[str]]:
            return {"done": [name]}

        builder.add_node(name, noop)
    if shape == "chain":
        for before, after in zip([START, *names], [*names, END], strict=True):
            builder.add_edge(before, after)
    else:
        for name in names:
            builder.add_edge(START, name)
            builder.add_edge(name, END)
    return builder


async def cpu_per_node(shape: str, n: int, *, checkpoint: bool) -> float:
    """CPU ms per node for one invocation of a fresh graph (a fresh SQLite file when
    `checkpoint`)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": n + 10}
    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint:
            async with AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "lg.db")) as saver:
                await saver.setup()
                compiled = graph(shape, n).compile(checkpointer=saver)
                gc.collect()  # the harness's own garbage is not collected inside the timing
                cpu = time.process_time()
                out = await compiled.ainvoke({"done": []}, config)
                cpu = time.process_time() - cpu
        else:
            compiled = graph(shape, n).compile()
            gc.collect()
            cpu = time.process_time()
            out = await compiled.ainvoke({"done": []}, config)
            cpu = time.process_time() - cpu
    assert sorted(out["done"]) == sorted(f"t{i}" for i in range(n)), out
    return cpu * 1000 / n

"""An orchestrator with no Slack and, unless given one, no model server: the offline `rules`
model, the built-in tools, and events shown to nobody. What benchmarks drive when only the
engine is measured."""

from __future__ import annotations

from pathlib import Path

from agents.providers.registry import Models, ModelSettings
from agents.spec import load_catalog
from agents.toolbox import Toolbox
from agents.tools.base import ToolContext
from agents.tools.registry import ALL_TOOLS, tool_names
from orchestration.deps import RunDeps
from orchestration.engine import Orchestrator
from orchestration.limits import Limits
from storage import Database
from testkit.sinks import NullSink


def offline_orchestrator(
    db: Database,
    catalog: Path | None = None,
    *,
    allow_hosts: frozenset[str] = frozenset(),
    limits: Limits | None = None,
    models: ModelSettings | None = None,
) -> Orchestrator:
    """`catalog` None is the built-in one; `allow_hosts` are the hosts HTTP tools may reach;
    `models` where the catalog's models are served (by default only `rules` is)."""
    return Orchestrator(
        RunDeps(
            db=db,
            catalog=load_catalog(catalog, known_tools=tool_names()),
            models=Models(models or ModelSettings(), ALL_TOOLS),
            tools=Toolbox(ALL_TOOLS),
            tool_context=lambda r, t, k: ToolContext(
                run_id=r, task_id=t, http_allow_hosts=allow_hosts, idempotency_key=k
            ),
            limits=limits or Limits(),
        ),
        sinks=lambda run: NullSink(),
    )

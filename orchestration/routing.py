"""Hybrid routing: the catalog's triggers first, a planning model only when they are not enough.

A request that exactly one playbook or specialist matches, with certainty, needs no plan
from a model: a playbook's own trigger is certain; a specialist's is when its tools also
find something in the request to act on (a URL for `http_check`, a sum for `calculator`).
Otherwise the matches go to the planning model as hints, and they are the plan of last
resort when the model cannot plan. With the offline `rules` model they are the plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agents.spec import AgentSpec, Catalog, PlaybookSpec
from agents.tools.base import Tool
from agents.verdict import needs_data
from orchestration.errors import PlanningError
from orchestration.plan import Plan, PlannedTask, from_playbook

NO_MATCH = (
    "No specialist knows what to do with that request. "
    "Say what to check (a URL, a #channel, a sum) or run a playbook — "
    "`/baton agents` lists who does what, `/baton help` shows the commands."
)


def _matches(triggers: list[str], request: str) -> list[str]:
    return [t for t in triggers if re.search(t, request, re.IGNORECASE)]


@dataclass(frozen=True)
class Route:
    """What the triggers say about a request."""

    request: str
    agents: tuple[AgentSpec, ...]
    playbooks: tuple[PlaybookSpec, ...]
    certain: Plan | None  # exactly one certain match: the plan, no model needed

    def hints(self) -> str:
        """For the planning model: who the catalog's triggers point at."""
        names = [f"playbook `{p.name}`" for p in self.playbooks] + [a.name for a in self.agents]
        if not names:
            return ""
        return (
            "Hint from the catalog's triggers: this request mentions what these handle: "
            + ", ".join(names)
            + ". Use them if they fit; the request decides."
        )

    def by_triggers(self, *, max_tasks: int) -> Plan:
        """Every matching specialist takes part (the offline planner). PlanningError if none."""
        if self.playbooks and not self.agents:
            return from_playbook(self.playbooks[0], self.request)
        return team_plan(self.request, list(self.agents), max_tasks=max_tasks)


def route(request: str, catalog: Catalog, tools: Mapping[str, Tool]) -> Route:
    """Match the request against every playbook's and specialist's triggers."""
    agents = tuple(a for a in catalog.agents if _matches(a.triggers, request))
    playbooks = tuple(p for p in catalog.playbooks if _matches(p.triggers, request))
    certain: Plan | None = None
    if len(agents) + len(playbooks) == 1:
        if playbooks:
            certain = from_playbook(playbooks[0], request)
        else:
            own = {name: tools[name] for name in agents[0].tools if name in tools}
            if own and needs_data(own, request):
                certain = team_plan(request, list(agents), max_tasks=1)
    return Route(request=request, agents=agents, playbooks=playbooks, certain=certain)


def team_plan(request: str, matched: list[AgentSpec], *, max_tasks: int) -> Plan:
    """A plan with one task per specialist, ordered by their `runs_after`."""
    matched = matched[:max_tasks]
    if not matched:
        raise PlanningError(NO_MATCH)
    names = {a.name for a in matched}
    return Plan(
        title=f"{len(matched)} specialist{'s' if len(matched) > 1 else ''} on it",
        tasks=[
            PlannedTask(
                id=a.name,
                agent=a.name,
                instruction=request,
                depends_on=[o for o in a.runs_after if o in names],
            )
            for a in matched
        ],
    )

"""A plan is a small graph of tasks, each for one specialist."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agents.spec import Catalog, PlaybookSpec, task_graph_problems


class PlannedTask(BaseModel):
    id: str = Field(description="Short unique id, lowercase, e.g. 'check-sites'")
    agent: str = Field(description="The specialist's name, exactly as listed")
    instruction: str = Field(description="What this specialist must do, self-contained")
    depends_on: list[str] = Field(
        default_factory=list, description="Ids of tasks whose results this task needs"
    )
    requires_approval: bool = Field(
        default=False, description="True when a person must approve before this task runs"
    )


class Plan(BaseModel):
    title: str = Field(default="Plan", description="A few words naming the plan")
    tasks: list[PlannedTask]


def plan_schema(catalog: Catalog) -> dict[str, Any]:
    """The plan's JSON schema for a model, with the catalog's specialists as the only agents.

    A server that holds answers to the schema then cannot name an unknown specialist.
    """
    schema = Plan.model_json_schema()
    agent = schema["$defs"]["PlannedTask"]["properties"]["agent"]
    agent["enum"] = [a.name for a in catalog.agents]
    return schema


def problems(plan: Plan, catalog: Catalog, *, max_tasks: int) -> list[str]:
    """Everything wrong with a plan, as sentences a model (or a person) can act on."""
    found: list[str] = []
    if not plan.tasks:
        found.append("the plan has no tasks")
    if len(plan.tasks) > max_tasks:
        found.append(f"the plan has {len(plan.tasks)} tasks; at most {max_tasks} are allowed")
    found.extend(task_graph_problems(plan.tasks, {a.name for a in catalog.agents}))
    return found


def from_playbook(playbook: PlaybookSpec, request: str) -> Plan:
    """A playbook is the plan; extra words after its name are passed to every task."""
    extra = f"\n\nThe request adds: {request}" if request.strip() else ""
    return Plan(
        title=playbook.description or playbook.name,
        tasks=[
            PlannedTask(
                id=t.id,
                agent=t.agent,
                instruction=t.instruction + extra,
                depends_on=list(t.depends_on),
                requires_approval=t.requires_approval,
            )
            for t in playbook.tasks
        ],
    )

"""The agent catalog: specialists and playbooks, as a person writes them in YAML."""

from __future__ import annotations

import graphlib
import re
from collections.abc import Collection, Sequence
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.errors import CatalogError
from agents.mcp import tool_names as mcp_names
from agents.mcp.server_entries import McpServerSpec
from agents.pricing import Price
from agents.providers.capabilities import CompatSettings

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_MODEL = re.compile(r"^(default|rules|(openai|anthropic):[\w.:/-]+)$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use lowercase letters, digits, '-' or '_' (at most 63 characters)")
    return value


def check_model(value: str) -> str:
    """`provider:model-id`, `rules` or `default`; ValueError otherwise."""
    if not _MODEL.match(value):
        raise ValueError(
            f"'{value}': a model is 'provider:model-id' (openai:…, anthropic:…), 'rules' or 'default'"
        )
    return value


def _check_triggers(value: list[str]) -> list[str]:
    for t in value:
        try:
            re.compile(t)
        except re.error as e:
            raise ValueError(f"trigger {t!r} is not a valid regular expression: {e}") from e
    return value


class Reach(BaseModel):
    """Where a specialist's Slack and webhook tools may act, whatever its model asks.

    The request's own channel is always within reach; `slack_history` reads another channel
    only for a requester who is a member of it.
    """

    model_config = ConfigDict(extra="forbid")

    # Channel ids `slack_history` may read besides the request's own; `*`: any of the requester's.
    read_channels: list[str] = Field(default_factory=list)
    # Channel ids `post_message` may post in besides the request's own; `*`: any of the requester's.
    post_channels: list[str] = Field(default_factory=list)
    # Names (from `webhooks:`) `webhook_post` may call; left out: every configured webhook.
    webhooks: list[str] | None = None


class AgentSpec(BaseModel):
    """A specialist: its own model, instructions and tools."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    # `provider:model-id`, `rules`, or `default` (BATON_MODEL).
    model: str = "default"
    # Models that take over, in order, when `model` keeps failing (`rules` may be the last).
    fallbacks: list[str] = Field(default_factory=list)
    instructions: str = ""
    tools: list[str] = Field(default_factory=list)
    # Words or regular expressions that make the offline planner pick this specialist.
    triggers: list[str] = Field(default_factory=list)
    # For the offline planner: when both are in a plan, this specialist waits for these.
    runs_after: list[str] = Field(default_factory=list)
    max_turns: int = Field(default=6, ge=1, le=50)
    # The reviewer checks an answer this specialist worked on before it is posted.
    verify: bool = False
    # Where its tools may read, post and call (see `Reach`).
    reach: Reach = Field(default_factory=Reach)

    _n = field_validator("name")(_check_name)

    def permits(self, tool: str) -> bool:
        """Whether this specialist may call `tool` (a catalog name such as `mcp:docs/search`)."""
        if tool in self.tools:
            return True
        ref = mcp_names.parse(tool)
        return ref is not None and any(
            (mine := mcp_names.parse(entry)) is not None and mine.matches(ref.server, ref.tool)
            for entry in self.tools
        )

    _m = field_validator("model")(check_model)
    _t = field_validator("triggers")(_check_triggers)

    @field_validator("fallbacks")
    @classmethod
    def _fallback_forms(cls, value: list[str]) -> list[str]:
        return [check_model(v) for v in value]


# The specialist that checks answers for `verify: true`.
REVIEWER = "reviewer"


class PlaybookTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    agent: str
    instruction: str
    depends_on: list[str] = Field(default_factory=list)
    requires_approval: bool = False
    # Who decides this task's gates (and its tools' calls), over the catalog's policy.
    approval: ApprovalPolicy | None = None

    _n = field_validator("id")(_check_name)


class PlaybookSpec(BaseModel):
    """A predefined plan: `/baton run <name>` runs it without asking a model to plan."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    tasks: list[PlaybookTask] = Field(min_length=1)
    # Regular expressions: a request that matches only this playbook's runs it, unplanned.
    triggers: list[str] = Field(default_factory=list)
    # The reviewer checks this playbook's answer before it is posted.
    verify: bool = False

    _n = field_validator("name")(_check_name)
    _t = field_validator("triggers")(_check_triggers)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """`30m`, `2h`, `1d`, `90s` (or a number of seconds) as a timedelta; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value))
        if not found:
            raise ValueError(f"'{value}' is not a duration: write it like 90s, 30m, 2h or 1d")
        seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if seconds <= 0:
        raise ValueError(f"'{value}': a duration must be longer than zero")
    return timedelta(seconds=seconds)


class ApprovalPolicy(BaseModel):
    """Who decides a gate and how. Every key left out is inherited (task → tool → global)."""

    model_config = ConfigDict(extra="forbid")

    # Slack user ids (U…/W…) or user-group ids (S…).
    approvers: list[str] | None = None
    # Whether the person who asked may approve their own request. Left out: no for tools
    # that change things, yes for other gates.
    self_approval: bool | None = None
    # How many different people must approve (the same person twice counts once).
    quorum: int | None = Field(default=None, ge=1, le=20)
    # Without a decision after this long, `escalate_to` may decide too (and is told so).
    escalate_after: timedelta | None = None
    escalate_to: list[str] | None = None
    # Without a decision after this long, the gate expires (counts as rejected).
    expires_after: timedelta | None = None

    @field_validator("escalate_after", "expires_after", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    def over(self, base: ApprovalPolicy) -> ApprovalPolicy:
        """This policy, with what it leaves out taken from `base`."""
        mine = self.model_dump(exclude_none=True)
        return base.model_copy(update=mine)


class ApprovalSettings(ApprovalPolicy):
    """The catalog's `approvals:` section: the global policy and its per-tool overrides."""

    approvers: list[str] = Field(default_factory=list)
    # Per tool: who may approve calls of that tool (a list), or a whole policy for it.
    tools: dict[str, list[str] | ApprovalPolicy] = Field(default_factory=dict)
    # MCP tools (`mcp:<server>/<tool>` or `mcp:<server>/*`): whether each call needs a
    # person's approval, overriding what the tool's own annotations say.
    require: dict[str, bool] = Field(default_factory=dict)
    expires_after_hours: float = Field(default=24.0, gt=0)

    def tool_policy(self, tool: str) -> ApprovalPolicy | None:
        """The policy written for `tool` (or for its whole MCP server), if any."""
        entry = self.tools.get(tool)
        if entry is None:
            ref = mcp_names.parse(tool)
            if ref is not None:
                entry = self.tools.get(mcp_names.canonical(ref.server, mcp_names.ANY))
        if entry is None:
            return None
        return ApprovalPolicy(approvers=entry or None) if isinstance(entry, list) else entry

    def approvers_for(self, tool: str) -> list[str]:
        """Who may approve calls of `tool` here (empty: the usual approvers decide)."""
        policy = self.tool_policy(tool)
        return list(policy.approvers or []) if policy is not None else []

    def everyone_named(self) -> set[str]:
        """Every approver named anywhere in this section."""
        named = {*self.approvers, *(self.escalate_to or [])}
        for tool in self.tools:
            policy = self.tool_policy(tool)
            if policy is not None:
                named.update(policy.approvers or [])
                named.update(policy.escalate_to or [])
        return named


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agents: list[AgentSpec] = Field(min_length=1)
    playbooks: list[PlaybookSpec] = Field(default_factory=list)
    prices: dict[str, Price] = Field(default_factory=dict)
    # Named webhook targets for the webhook tool (name -> https URL).
    webhooks: dict[str, str] = Field(default_factory=dict)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    # Hosts the HTTP tools may reach even on private or loopback addresses.
    http_allow_hosts: list[str] = Field(default_factory=list)
    # Model Context Protocol servers whose tools specialists may list as `mcp:<server>/…`.
    mcp_servers: list[McpServerSpec] = Field(default_factory=list)
    # What the OpenAI-compatible endpoint (OPENAI_BASE_URL) accepts; OPENAI_COMPAT wins.
    openai_compat: CompatSettings = Field(default_factory=CompatSettings)

    def agent(self, name: str) -> AgentSpec | None:
        return next((a for a in self.agents if a.name == name), None)

    def playbook(self, name: str) -> PlaybookSpec | None:
        return next((p for p in self.playbooks if p.name == name), None)


def _entry_name(raw: Any, loc: tuple[int | str, ...]) -> str:
    """`agents[2] (web-checker)` for an error location, naming the entry a person wrote."""
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw, dict):
        section, index = loc[0], loc[1]
        items = raw.get(str(section))
        label = f"{section}[{index}]"
        if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
            name = items[index].get("name")
            if name:
                label += f" ({name})"
        rest = ".".join(str(p) for p in loc[2:])
        return f"{label}.{rest}" if rest else label
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_catalog(text: str, *, source: str, known_tools: set[str]) -> Catalog:
    """Parse and check a catalog; every problem is named with file, entry and what is wrong."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CatalogError(f"{source}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise CatalogError(f"{source}: expected a mapping with 'agents:' (and 'playbooks:')")
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as e:
        problems = [f"{source}: {_entry_name(raw, err['loc'])}: {err['msg']}" for err in e.errors()]
        raise CatalogError("\n".join(problems)) from e
    problems = _cross_check(catalog, known_tools)
    if problems:
        raise CatalogError("\n".join(f"{source}: {p}" for p in problems))
    return catalog


class GraphTask(Protocol):
    """A task in a graph: a playbook's or a planner's."""

    id: str
    agent: str
    depends_on: list[str]


def task_graph_problems(tasks: Sequence[GraphTask], agents: Collection[str]) -> list[str]:
    """What is wrong with a graph of tasks, one sentence each: an id used twice, an unknown
    specialist or task, a task that depends on itself, a cycle."""
    found: list[str] = []
    ids = [t.id for t in tasks]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        found.append(f"task id '{dup}' is used more than once")
    graph: dict[str, list[str]] = {}
    for t in tasks:
        if t.agent not in agents:
            found.append(f"task '{t.id}' uses unknown agent '{t.agent}'")
        for d in t.depends_on:
            if d not in ids:
                found.append(f"task '{t.id}' depends on unknown task '{d}'")
            if d == t.id:
                found.append(f"task '{t.id}' depends on itself")
        graph[t.id] = [d for d in t.depends_on if d != t.id]
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        found.append(f"tasks depend on each other in a cycle: {' -> '.join(e.args[1])}")
    return found


def _cross_check(catalog: Catalog, known_tools: set[str]) -> list[str]:
    problems: list[str] = []
    names = [a.name for a in catalog.agents]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"agents: the name '{dup}' is used twice")
    servers = [s.name for s in catalog.mcp_servers]
    for dup in sorted({n for n in servers if servers.count(n) > 1}):
        problems.append(f"mcp_servers: the name '{dup}' is used twice")

    def unknown(tool: str) -> str | None:
        """What is wrong with a tool name, or None."""
        if mcp_names.is_mcp(tool):
            ref = mcp_names.parse(tool)
            if ref is None:
                return f"'{tool}' is not of the form mcp:<server>/<tool> or mcp:<server>/*"
            if ref.server not in servers:
                known = ", ".join(servers) or "none are configured"
                return f"'{tool}' names the MCP server '{ref.server}', which is not in mcp_servers ({known})"
            return None
        if tool not in known_tools:
            return f"unknown tool '{tool}' (known: {', '.join(sorted(known_tools))}, or mcp:<server>/<tool>)"
        return None

    for agent in catalog.agents:
        for tool in agent.tools:
            if (problem := unknown(tool)) is not None:
                problems.append(f"agents ({agent.name}): {problem}")
        for other in agent.runs_after:
            if other not in names:
                problems.append(f"agents ({agent.name}): runs_after names unknown agent '{other}'")
    for tool in catalog.approvals.tools:
        if (problem := unknown(tool)) is not None:
            problems.append(f"approvals.tools: {problem}")
    for tool in catalog.approvals.require:
        if not mcp_names.is_mcp(tool):
            problems.append(
                f"approvals.require: '{tool}' is a built-in tool, which decides for itself; "
                "list MCP tools here (mcp:<server>/<tool> or mcp:<server>/*)"
            )
        elif (problem := unknown(tool)) is not None:
            problems.append(f"approvals.require: {problem}")
    for pb in catalog.playbooks:
        problems.extend(
            f"playbooks ({pb.name}): {problem}" for problem in task_graph_problems(pb.tasks, names)
        )
    if REVIEWER not in names:
        for agent in catalog.agents:
            if agent.verify:
                problems.append(
                    f"agents ({agent.name}): verify: true needs a specialist named '{REVIEWER}'"
                )
        for pb in catalog.playbooks:
            if pb.verify:
                problems.append(
                    f"playbooks ({pb.name}): verify: true needs a specialist named '{REVIEWER}'"
                )
    for agent in catalog.agents:
        for hook in agent.reach.webhooks or []:
            if hook not in catalog.webhooks:
                problems.append(
                    f"agents ({agent.name}): reach.webhooks names '{hook}', which is not in webhooks:"
                )
    for name, url in catalog.webhooks.items():
        if not url.startswith(("https://", "http://")):
            problems.append(f"webhooks ({name}): '{url}' is not an http(s) URL")
    return problems


def load_catalog(path: Path | None, *, known_tools: set[str]) -> Catalog:
    """Load `path`, or the built-in catalog when `path` is None."""
    if path is None:
        text = resources.files("agents").joinpath("catalog.yml").read_text(encoding="utf-8")
        return parse_catalog(text, source="built-in catalog", known_tools=known_tools)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogError(f"{path}: cannot read the file: {e.strerror}") from e
    return parse_catalog(text, source=str(path), known_tools=known_tools)

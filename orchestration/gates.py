"""Approval gates: where a run stops for a person, and what their decision does.

Opening a gate writes an `Approval` row and puts the task into `waiting`; nothing waits in
memory. `settle` applies a decision (or an expiry) to the task the next time the run is
driven, in whichever process that happens.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agents.messages import Message
from agents.runner import NeedsApproval
from agents.spec import ApprovalPolicy
from orchestration.deps import RunDeps
from orchestration.run_events import ApprovalRequested, RunEvent
from storage import approvals, run_states, runs
from storage.models import Approval, ApprovalKind, ApprovalStatus, Run, TaskRow, TaskStatus

Show = Callable[[RunEvent], Awaitable[None]]

# A specialist that starts its answer with this asks for a person's go-ahead.
NEEDS_HUMAN = "NEEDS HUMAN:"


@dataclass(frozen=True)
class GateRules:
    """The policy as it applies to one gate."""

    approvers: list[str]
    self_approval: bool
    quorum: int
    expires_at: datetime
    escalate_at: datetime | None
    escalate_to: list[str]


class Gates:
    def __init__(self, deps: RunDeps) -> None:
        self.db = deps.db
        self.catalog = deps.catalog
        self.limits = deps.limits
        self.tools = deps.tools

    def policy_for(self, run: Run, task: TaskRow, tool: str | None) -> ApprovalPolicy:
        """The catalog's policy for this gate: the playbook task's keys over the tool's over
        the global ones."""
        settings = self.catalog.approvals
        policy: ApprovalPolicy = settings
        if tool and (for_tool := settings.tool_policy(tool)) is not None:
            policy = for_tool.over(policy)
        playbook = self.catalog.playbook(run.playbook) if run.playbook else None
        step = next((t for t in playbook.tasks if t.id == task.task_id), None) if playbook else None
        if step is not None and step.approval is not None:
            policy = step.approval.over(policy)
        return policy

    def rules_for(self, run: Run, task: TaskRow, kind: ApprovalKind, tool: str | None) -> GateRules:
        """Who decides, how many, and until when — fixed when the gate opens."""
        policy = self.policy_for(run, task, tool)
        approvers = list(policy.approvers or [])
        if not approvers:
            # Nobody is named: the requester decides, as the only one who can.
            approvers = [run.user_id] if run.user_id else []
            self_ok = True
        elif policy.self_approval is not None:
            self_ok = policy.self_approval
        else:
            # A tool that changes things is not approved by whoever asked for it — unless
            # they are the only person the catalog names.
            self_ok = kind != ApprovalKind.TOOL or approvers == [run.user_id]
        now = self.db.clock()
        expires = policy.expires_after or timedelta(
            hours=self.catalog.approvals.expires_after_hours
        )
        escalate_to = list(policy.escalate_to or [])
        escalate_at = now + policy.escalate_after if policy.escalate_after and escalate_to else None
        return GateRules(
            approvers=approvers,
            self_approval=self_ok,
            quorum=policy.quorum or 1,
            expires_at=now + expires,
            escalate_at=escalate_at,
            escalate_to=escalate_to if escalate_at else [],
        )

    async def _gates_its_own_calls(self, task: TaskRow) -> bool:
        """The task's specialist has tools that each need approval: those exact calls are
        asked about instead, so a person is not asked twice for one action."""
        spec = self.catalog.agent(task.agent)
        return spec is not None and await self.tools.needs_approval(spec)

    async def before_start(self, run: Run, task: TaskRow, show: Show) -> bool:
        """Open a gate if the task may not start yet. True when it must wait."""
        if (
            task.requires_approval
            and not task.approved
            and not await self._gates_its_own_calls(task)
        ):
            await self.open(
                run,
                task,
                show,
                kind=ApprovalKind.TASK,
                summary=f"{task.agent} will: {task.instruction}",
            )
            return True
        over_usd = run.budget_usd is not None and run.cost_usd >= run.budget_usd
        token_budget = self.token_budget(run)
        used = run.input_tokens + run.output_tokens
        over_tokens = token_budget is not None and used >= token_budget
        if over_usd or over_tokens:
            if any(
                a.kind == ApprovalKind.BUDGET and a.status == ApprovalStatus.PENDING
                for a in await approvals.for_run(self.db, run.id)
            ):
                return True  # one budget question at a time; this task waits its turn
            if over_usd:
                extra = self.limits.budget_usd or run.budget_usd or 1.0
                summary = (
                    f"This run has spent ${run.cost_usd:.4f} of its ${run.budget_usd:.2f} budget. "
                    f"Continue for up to ${extra:.2f} more?"
                )
                await self.open(
                    run,
                    task,
                    show,
                    kind=ApprovalKind.BUDGET,
                    summary=summary,
                    extra_budget_usd=extra,
                )
            else:
                assert token_budget is not None
                more = self.limits.budget_tokens or token_budget
                summary = (
                    f"This run has used {used:,} tokens of its {token_budget:,}-token budget. "
                    f"Continue for up to {more:,} more?"
                )
                await self.open(
                    run,
                    task,
                    show,
                    kind=ApprovalKind.BUDGET,
                    summary=summary,
                    extra_budget_tokens=more,
                )
            return True
        return False

    def has_budget(self, run: Run) -> bool:
        """Whether the run has a budget a start must check (in dollars or tokens)."""
        return run.budget_usd is not None or self.token_budget(run) is not None

    def token_budget(self, run: Run) -> int | None:
        """The run's own token budget (raised by approvals), else the configured one."""
        return run.budget_tokens if run.budget_tokens is not None else self.limits.budget_tokens

    async def open(
        self,
        run: Run,
        task: TaskRow,
        show: Show,
        *,
        kind: ApprovalKind,
        summary: str,
        tool_name: str | None = None,
        tool_args: dict[str, Any] | None = None,
        call_id: str | None = None,
        transcript: list[Message] | None = None,
        output: str | None = None,
        extra_budget_usd: float | None = None,
        extra_budget_tokens: int | None = None,
    ) -> Approval:
        """Write the approval and put the task into waiting, then show it."""
        rules = self.rules_for(run, task, kind, tool_name)
        approval = Approval(
            id=approvals.new_approval_id(),
            run_id=run.id,
            team_id=run.team_id,
            task_id=task.task_id,
            kind=kind,
            expires_at=rules.expires_at,
            summary=summary,
            tool_name=tool_name,
            tool_args=tool_args,
            call_id=call_id,
            approvers=rules.approvers,
            channel_id=run.channel_id,
            extra_budget_usd=extra_budget_usd,
            extra_budget_tokens=extra_budget_tokens,
            requested_by=run.user_id,
            self_approval=rules.self_approval,
            quorum=rules.quorum,
            escalate_at=rules.escalate_at,
            escalate_to=rules.escalate_to,
        )
        fields: dict[str, Any] = {}
        if transcript is not None:
            fields["transcript"] = [m.model_dump(mode="json") for m in transcript]
        if output is not None:
            fields["output"] = output
        await approvals.create(self.db, approval, task_fields=fields)
        await show(ApprovalRequested(run_id=run.id, task_id=task.task_id, approval_id=approval.id))
        return approval

    async def grant_for_run(self, run: Run, task: TaskRow, asked: NeedsApproval) -> bool:
        """Whether an identical call (same tool, same arguments) was approved "for this run";
        if so, this call is recorded as approved by that decision (audit included)."""
        args = asked.args.model_dump(mode="json")
        grant = next(
            (
                a
                for a in await approvals.for_run(self.db, run.id)
                if a.for_run
                and a.status == ApprovalStatus.APPROVED
                and a.tool_name == asked.tool.name
                and _same(a.edited_args if a.edited_args is not None else a.tool_args, args)
            ),
            None,
        )
        if grant is None:
            return False
        await approvals.grant_for_run(
            self.db,
            Approval(
                id=approvals.new_approval_id(),
                run_id=run.id,
                task_id=task.task_id,
                kind=ApprovalKind.TOOL,
                expires_at=self.db.clock(),
                summary=grant.summary,
                tool_name=asked.tool.name,
                tool_args=args,
                call_id=asked.call.id,
                approvers=grant.approvers,
                channel_id=run.channel_id,
                requested_by=run.user_id,
                team_id=run.team_id,
            ),
            grant=grant,
            task_fields={"transcript": [m.model_dump(mode="json") for m in asked.transcript]},
        )
        return True

    async def settle(self, task: TaskRow) -> Approval | None:
        """Apply the task's latest decided approval to it; None while it is still undecided."""
        gates = [
            a for a in await approvals.for_run(self.db, task.run_id) if a.task_id == task.task_id
        ]
        if not gates:
            return None
        latest = gates[-1]
        if latest.status == ApprovalStatus.PENDING:
            return None
        approved = latest.status == ApprovalStatus.APPROVED
        decision = {"approval_id": latest.id, "status": latest.status.value}
        if not approved:
            await run_states.task_rejected(
                self.db, task.run_id, task.task_id, describe_refusal(latest), data=decision
            )
        elif latest.kind == ApprovalKind.AGENT:  # the specialist's own question: its answer stands
            await run_states.approval_applied(
                self.db, task.run_id, task.task_id, TaskStatus.SUCCEEDED, data=decision
            )
        else:  # a tool call goes ahead, a task may start, a budget is raised
            await run_states.approval_applied(
                self.db,
                task.run_id,
                task.task_id,
                TaskStatus.PENDING,
                data=decision,
                approved=latest.kind == ApprovalKind.TASK,
                run=await self._raised_budget(task.run_id, latest),
            )
        if latest.kind == ApprovalKind.BUDGET and not approved:
            await self._reject_rest(task.run_id, describe_refusal(latest))
        return latest

    async def _raised_budget(self, run_id: str, latest: Approval) -> dict[str, Any] | None:
        """The run's new budget when a budget approval said yes (None for other gates)."""
        if latest.kind != ApprovalKind.BUDGET:
            return None
        run = await runs.get_run(self.db, run_id)
        assert run is not None
        fields: dict[str, Any] = {}
        if latest.extra_budget_usd is not None:
            fields["budget_usd"] = (run.budget_usd or 0.0) + latest.extra_budget_usd
        if latest.extra_budget_tokens is not None:
            used = run.input_tokens + run.output_tokens
            fields["budget_tokens"] = used + latest.extra_budget_tokens
        return fields

    async def _reject_rest(self, run_id: str, reason: str) -> None:
        """A refused budget stops every task that has not started."""
        for t in await runs.list_tasks(self.db, run_id):
            if t.status == TaskStatus.PENDING:
                await run_states.task_rejected(self.db, run_id, t.task_id, reason)


def _same(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Two calls' arguments are the same (key order aside)."""
    return json.dumps(a or {}, sort_keys=True, default=str) == json.dumps(
        b, sort_keys=True, default=str
    )


def describe_refusal(approval: Approval) -> str:
    """For people: what did not happen, and why (never an instruction meant for a model)."""
    if approval.tool_name:
        what = f"`{approval.tool_name}` was not called"
    elif approval.kind == ApprovalKind.BUDGET:
        what = "not run: no more budget was approved"
    else:
        what = "not done"
    if approval.status == ApprovalStatus.EXPIRED:
        return f"{what}: the approval expired without a decision"
    if approval.status == ApprovalStatus.WITHDRAWN:
        return f"{what}: the run was stopped by <@{approval.decided_by}>"
    why = f" — “{approval.reason}”" if approval.reason else ""
    return f"{what}: rejected by <@{approval.decided_by}>{why}"

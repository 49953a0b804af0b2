"""`baton mcp`: Baton as an MCP server over stdio, so other agents and IDEs can start runs.

Three tools. `run_playbook` starts a playbook in a Slack channel, exactly as `/baton run`
would: the request, the live task list, every approval and the answer appear in that
channel's thread, and steps that change something still wait for a person's Approve there.
`run_status` and `list_approvals` read the database. The Baton that serves Slack (on the same
`BATON_DATABASE_URL`) receives the clicks and finishes the runs; this process only starts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel
from slack_sdk.errors import SlackApiError

from bot.blocks import section
from bot.intake import accept_message, stored
from bot.reports import permalink
from bot.slack_ops import slack_error
from bot.text import truncate
from bot.work import hand_over
from storage import approvals, runs
from storage.models import Approval, ApprovalStatus, RunSource

if TYPE_CHECKING:
    from bot.app import Baton

READS = ToolAnnotations(read_only_hint=True)
# Starting a run adds a thread; whatever it would change waits for a person in Slack.
STARTS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)


class StartedRun(BaseModel):
    run_id: str
    status: str
    channel: str
    thread: str  # a link to the run's thread in Slack


class TaskState(BaseModel):
    id: str
    agent: str
    status: str
    error: str | None = None


class WaitingApproval(BaseModel):
    approval_id: str
    run_id: str
    what: str
    link: str | None = None


class RunState(BaseModel):
    run_id: str
    status: str
    request: str
    tasks: list[TaskState]
    waiting_for: list[WaitingApproval]
    answer: str | None = None
    thread: str | None = None


class Approvals(BaseModel):
    waiting: list[WaitingApproval]


def baton_mcp(baton: Baton) -> MCPServer[Any]:
    """The MCP server, its tools bound to a running Baton."""
    server: MCPServer[Any] = MCPServer(
        "baton",
        instructions=(
            "Start Baton runs in Slack and follow them. Steps that change something wait for "
            "a person's approval in the run's Slack thread; check back with run_status."
        ),
        log_level="WARNING",
    )

    @server.tool(annotations=STARTS)
    async def run_playbook(
        playbook: str, channel: str, details: str = "", user: str = ""
    ) -> StartedRun:
        """Start one of Baton's playbooks in a Slack channel (its id, e.g. C0123456).

        Progress, approvals and the answer appear in a new thread there. `user` is the Slack
        user id the run is for: they may approve its steps unless the catalog names approvers.
        """
        if baton.catalog.playbook(playbook) is None:
            names = ", ".join(p.name for p in baton.catalog.playbooks) or "none are configured"
            raise ToolError(f"There is no playbook called '{playbook}'. Playbooks: {names}.")
        who = f"<@{user}> asked" if user else "Asked through MCP"
        text = f"{who}: {truncate(f'run `{playbook}` {details}'.strip(), 2500)}"
        try:
            posted = await baton.client.chat_postMessage(
                channel=channel, text=text, blocks=[section(text)]
            )
        except SlackApiError as e:
            raise ToolError(
                f"Baton cannot post in {channel} ({slack_error(e)}): invite it to the channel."
            ) from e
        thread_ts = str(posted["ts"])
        pending = await accept_message(
            baton,
            source=RunSource.MCP,
            request=details,
            playbook=playbook,
            team_id=None,
            channel_id=channel,
            thread_ts=thread_ts,
            user_id=user or None,
            event_id=None,
            new_thread=True,  # the message just posted starts it
        )
        accepted = await stored(pending, "a run asked for over MCP")
        if accepted is None:
            raise ToolError(
                "Baton could not store the run (its database did not answer); try again."
            )
        run = accepted.run
        baton.background.spawn(hand_over(baton, run.id), name=f"mcp-{run.id}")
        return StartedRun(
            run_id=run.id,
            status=run.status.value,
            channel=channel,
            thread=permalink(channel, thread_ts),
        )

    @server.tool(annotations=READS)
    async def run_status(run_id: str) -> RunState:
        """A run's state, its tasks, the approvals it waits for, and its answer once finished."""
        run = await runs.get_run(baton.db, run_id)
        if run is None:
            raise ToolError(f"There is no run '{run_id}'.")
        tasks = await runs.list_tasks(baton.db, run.id)
        waiting = [
            a
            for a in await approvals.for_run(baton.db, run.id)
            if a.status == ApprovalStatus.PENDING
        ]
        return RunState(
            run_id=run.id,
            status=run.status.value,
            request=f"run {run.playbook} {run.request}".strip() if run.playbook else run.request,
            tasks=[
                TaskState(id=t.task_id, agent=t.agent, status=t.status.value, error=t.error)
                for t in tasks
            ],
            waiting_for=[_waiting(a) for a in waiting],
            answer=run.answer if run.status.is_final else None,
            thread=permalink(run.channel_id, run.thread_ts)
            if run.channel_id and run.thread_ts
            else None,
        )

    @server.tool(annotations=READS)
    async def list_approvals(channel: str) -> Approvals:
        """Approvals waiting for a person in a Slack channel, with links to them."""
        pending = await approvals.pending_in_channel(baton.db, channel)
        return Approvals(waiting=[_waiting(a) for a in pending])

    return server


def _waiting(approval: Approval) -> WaitingApproval:
    what = f"call `{approval.tool_name}`" if approval.tool_name else f"a {approval.kind} step"
    args = ", ".join(f"{k}: {v}" for k, v in (approval.tool_args or {}).items())
    link = (
        permalink(approval.channel_id, approval.message_ts)
        if approval.channel_id and approval.message_ts
        else None
    )
    return WaitingApproval(
        approval_id=approval.id,
        run_id=approval.run_id,
        what=truncate(f"{what} ({args})" if args else what, 500),
        link=link,
    )

"""`/baton …` text to a command. Pure: no Slack, no database."""

from __future__ import annotations

from dataclasses import dataclass

from agents.spec import Catalog
from bot.text import escape


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class ListAgents:
    pass


@dataclass(frozen=True)
class RunPlaybook:
    name: str
    extra: str


@dataclass(frozen=True)
class Status:
    run_id: str | None


@dataclass(frozen=True)
class ListApprovals:
    pass


@dataclass(frozen=True)
class Cancel:
    run_id: str | None


@dataclass(frozen=True)
class Audit:
    run_id: str | None


@dataclass(frozen=True)
class ScheduleCommand:
    args: str


@dataclass(frozen=True)
class Ask:
    request: str


@dataclass(frozen=True)
class Invalid:
    message: str


Command = (
    Help
    | ListAgents
    | RunPlaybook
    | Status
    | ListApprovals
    | Cancel
    | Audit
    | ScheduleCommand
    | Ask
    | Invalid
)


def parse(text: str) -> Command:
    text = text.strip()
    word, _, rest = text.partition(" ")
    rest = rest.strip()
    match word.lower():
        case "" | "help" | "?":
            return Help()
        case "agents":
            return ListAgents()
        case "run":
            name, _, extra = rest.partition(" ")
            if not name:
                return Invalid(
                    "Say which playbook to run: `/baton run <playbook>` (`/baton agents` lists them)."
                )
            return RunPlaybook(name=name, extra=extra.strip())
        case "status":
            return Status(run_id=rest.split()[0] if rest else None)
        case "approvals":
            return ListApprovals()
        case "cancel" | "stop":
            return Cancel(run_id=rest.split()[0] if rest else None)
        case "audit":
            return Audit(run_id=rest.split()[0] if rest else None)
        case "schedule" | "schedules":
            return ScheduleCommand(args=rest)
        case _:
            return Ask(request=text)


def unknown_playbook(name: str, catalog: Catalog) -> str:
    """What `run <name>` gets when there is no such playbook, however it was asked."""
    names = ", ".join(f"`{p.name}`" for p in catalog.playbooks) or "none are configured"
    return f"There is no playbook called `{escape(name)}`. Playbooks: {names}."


HELP = """*Baton* runs a team of AI specialists for you.
• `/baton <request>` — ask for anything; I plan it, run the specialists and answer in a thread
• `@Baton <request>` in a channel, or a DM — the same; reply in the thread to follow up
• `/baton agents` — the specialists, their models and tools, and the playbooks
• `/baton run <playbook> [details]` — run a predefined workflow, no planning model needed
• `/baton status [run-id]` — a run's tasks, states, timings and cost (default: the latest here; another channel's runs only if you asked for them or decide on them)
• `/baton approvals` — approvals waiting in this channel
• `/baton cancel [run-id]` — stop a run (default: the newest one still going here); the Stop button on a task list does the same
• `/baton audit [run-id]` — who asked, what was planned, every decision and side effect (default: the latest run here; admins and the run's channel)
• `/baton schedule add "<when>" <request>` — recurring runs (`/baton schedule help`)
• `/baton help` — this message"""

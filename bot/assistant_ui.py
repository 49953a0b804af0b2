"""What Baton says in Slack's assistant container. Pure: catalog and run state in, text out."""

from __future__ import annotations

from collections.abc import Sequence

from agents.spec import Catalog
from agents.tools.extract import plain
from bot.text import truncate

MAX_PROMPTS = 4  # Slack's limit for assistant.threads.setSuggestedPrompts
PROMPTS_TITLE = "Try one of these:"
PLANNING = "is planning…"
CLEARED = ""


def welcome(catalog: Catalog) -> str:
    """The first line in a new assistant thread: who is on the team, what to ask."""
    team = ", ".join(f"*{a.name}*" for a in catalog.agents[:6])
    more = f" and {len(catalog.agents) - 6} more" if len(catalog.agents) > 6 else ""
    return (
        f"Hi! I plan the work and hand it to my specialists ({team}{more}). "
        "Ask me anything below, or pick a suggestion. Steps that change something wait "
        "for a person's approval."
    )


def suggested_prompts(catalog: Catalog) -> list[dict[str, str]]:
    """Up to four `{title, message}`: the catalog's playbooks that run as they are (one that
    works on what is "given after the name" needs more than a click), then *What can you do?*."""
    ready = [p for p in catalog.playbooks if "after the name" not in p.description.lower()]
    prompts = [
        {
            "title": truncate(f"Run {p.name}: {_first_clause(p.description)}", 75),
            "message": f"run {p.name}",
        }
        for p in ready[: MAX_PROMPTS - 1]
    ]
    prompts.append({"title": "What can you do?", "message": "help"})
    return prompts[:MAX_PROMPTS]


def _first_clause(text: str) -> str:
    for stop in (" — ", ". ", " ("):
        if stop in text:
            text = text.split(stop, 1)[0]
    return text.rstrip(".").lower()


def thread_title(request: str) -> str:
    """The thread's name in the container's History: the first request, shortened."""
    first = " ".join(plain(request).split())
    return truncate(first or "A request to Baton", 60)


def working(running: Sequence[tuple[str, str]]) -> str:
    """The status while steps run: `web-checker is calling http_check…`.

    `running` holds (agent, what it is doing) for each step in progress.
    """
    if not running:
        return "is working…"
    if len(running) == 1:
        agent, doing = running[0]
        return truncate(f"{agent} is {doing}…", 100)
    agents = list(dict.fromkeys(a for a, _ in running))
    if len(agents) == 1:
        return truncate(f"{agents[0]} is working on {len(running)} steps…", 100)
    return truncate(f"{', '.join(agents[:-1])} and {agents[-1]} are working…", 100)


def doing(detail: str) -> str:
    """A step's latest progress line as a status phrase (`calling `http_check`` → calling http_check)."""
    return truncate(detail.replace("`", "").strip().rstrip(".") or "working", 80)


def waiting_for(names: Sequence[str]) -> str:
    """`is waiting for Bob's approval`; `… for approval from Bob or Carol`."""
    if not names:
        return "is waiting for a person's approval"
    if len(names) == 1:
        return truncate(f"is waiting for {names[0]}'s approval", 100)
    shown = list(names[:3])
    who = ", ".join(shown[:-1]) + f" or {shown[-1]}"
    return truncate(f"is waiting for approval from {who}", 100)

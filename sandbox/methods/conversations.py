"""Who is asking (`auth.test`), people (`users.info`) and reading channels (`conversations.*`)."""

from __future__ import annotations

from sandbox.methods._args import Handler, in_window, page, required
from sandbox.workspace import JSON, SlackError, Workspace, dm_id


def auth_test(ws: Workspace, args: JSON) -> JSON:
    """Who the token belongs to."""
    return {
        "ok": True,
        "url": ws.web_url or ws.base_url,
        "team": ws.team_name,
        "user": ws.bot.name,
        "team_id": ws.team_id,
        "user_id": ws.bot.id,
        "bot_id": ws.bot.bot_id,
        "is_enterprise_install": False,
    }


def users_info(ws: Workspace, args: JSON) -> JSON:
    """A person's profile, time zone included."""
    return {"ok": True, "user": ws.user(args.get("user")).to_slack(ws.team_id)}


def conversations_info(ws: Workspace, args: JSON) -> JSON:
    """A channel's description."""
    return {"ok": True, "channel": ws.channel(args.get("channel")).to_slack()}


def conversations_history(ws: Workspace, args: JSON) -> JSON:
    """Top-level messages, newest first."""
    channel = ws.channel(args.get("channel"))
    top = [m for m in ws.all_messages(channel.id) if not m.is_reply and m.ephemeral_for is None]
    newest_first = list(reversed(in_window(top, args)))
    chosen, paging = page(newest_first, args, default_limit=100)
    return {"ok": True, "messages": [ws.render(m) for m in chosen], "pin_count": 0, **paging}


def conversations_replies(ws: Workspace, args: JSON) -> JSON:
    """A thread: its parent, then the replies oldest first."""
    channel = ws.channel(args.get("channel"))
    root = ws.thread_root(channel.id, required(args, "ts")) or ""
    thread = ws.replies(channel.id, root)
    try:
        thread.insert(0, ws.message(channel.id, root))
    except SlackError:
        if not thread:
            raise SlackError("thread_not_found") from None
    chosen, paging = page(in_window(thread, args), args, default_limit=1000)
    return {"ok": True, "messages": [ws.render(m) for m in chosen], **paging}


def conversations_members(ws: Workspace, args: JSON) -> JSON:
    """The ids of a channel's members, paged like Slack's."""
    channel = ws.channel(args.get("channel"))
    chosen, paging = page(ws.members_of(channel), args, default_limit=100)
    return {"ok": True, "members": chosen, **paging}


def conversations_open(ws: Workspace, args: JSON) -> JSON:
    """The bot's DM with one person (`users`), as Slack opens or finds it."""
    users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
    if not users and not args.get("channel"):
        raise SlackError("users_list_not_supplied")
    if args.get("channel"):
        return {"ok": True, "channel": {"id": ws.channel(args.get("channel")).id}}
    if len(users) > 1:
        raise SlackError("not_supported_yet", ["this stand-in opens DMs with one person"])
    user = ws.user(users[0])
    dm = ws.channel(dm_id(user.id))
    return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": dm.id}}


def usergroup_members(ws: Workspace, args: JSON) -> JSON:
    """The members of a user group (S…)."""
    group = required(args, "usergroup")
    if group not in ws.usergroups:
        raise SlackError("no_such_subteam")
    return {"ok": True, "users": list(ws.usergroups[group])}


METHODS: dict[str, Handler] = {
    "usergroups.users.list": usergroup_members,
    "auth.test": auth_test,
    "users.info": users_info,
    "conversations.info": conversations_info,
    "conversations.history": conversations_history,
    "conversations.members": conversations_members,
    "conversations.replies": conversations_replies,
    "conversations.open": conversations_open,
}

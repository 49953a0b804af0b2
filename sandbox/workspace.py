"""The state of a fake Slack workspace: people, channels, messages, streams and open views."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Required, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

JSON = dict[str, Any]

ChangeType = Literal[
    "message_posted",
    "message_updated",
    "message_deleted",
    "message_streamed",
    "stream_stopped",
    "stream_expired",
    "reaction_added",
    "status_set",
    "assistant_thread_changed",
    "view_opened",
    "view_updated",
    "view_pushed",
    "views_closed",
    "home_published",
]


class Change(TypedDict, total=False):
    """One thing that changed, for live views of the workspace."""

    type: Required[ChangeType]
    channel: str
    ts: str
    message: JSON
    user: str
    view: JSON
    thread_ts: str
    status: str
    loading_messages: list[str]
    thread: JSON


class SlackError(Exception):
    """A Slack error code (`channel_not_found`, …), answered as `{"ok": false, "error": …}`."""

    def __init__(self, error: str, messages: Iterable[str] = ()) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)

    def body(self) -> JSON:
        """The JSON body Slack answers with."""
        body: JSON = {"ok": False, "error": self.error}
        if self.messages:
            if self.error in ("invalid_blocks", "invalid_arguments"):
                body["errors"] = self.messages
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


@dataclass(frozen=True)
class User:
    """A member of the workspace."""

    id: str
    name: str
    real_name: str = ""
    tz: str = "UTC"
    is_admin: bool = False
    is_bot: bool = False
    bot_id: str | None = None

    def to_slack(self, team_id: str) -> JSON:
        """The `user` object of `users.info`."""
        try:
            zone = ZoneInfo(self.tz)
        except ZoneInfoNotFoundError:
            zone = ZoneInfo("UTC")
        now = datetime.now(zone)
        offset = now.utcoffset()
        profile: JSON = {
            "real_name": self.real_name or self.name,
            "display_name": self.name,
            "team": team_id,
        }
        if self.bot_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name or self.name,
            "deleted": False,
            "tz": self.tz,
            "tz_label": now.tzname() or self.tz,
            "tz_offset": int(offset.total_seconds()) if offset else 0,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": profile,
        }


@dataclass(frozen=True)
class Channel:
    """A public channel, or (with `is_im`) the bot's DM with one person."""

    id: str
    name: str
    is_im: bool = False
    is_private: bool = False
    user: str | None = None
    bot_is_member: bool = True
    # Who is in it; None: everyone in the workspace (a DM: its person).
    members: tuple[str, ...] | None = None

    def to_slack(self) -> JSON:
        """The `channel` object of `conversations.info`."""
        if self.is_im:
            return {"id": self.id, "is_im": True, "user": self.user, "is_open": True}
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_private": self.is_private,
            "is_archived": False,
            "is_member": self.bot_is_member,
        }


@dataclass(frozen=True)
class Edited:
    """Who edited a message, and when."""

    user: str
    ts: str


@dataclass
class Message:
    """A message as the workspace holds it; replies have `thread_ts`, top-level ones do not."""

    channel: str
    ts: str
    user: str
    text: str = ""
    blocks: list[JSON] = field(default_factory=list)
    attachments: list[JSON] = field(default_factory=list)
    thread_ts: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    edited: Edited | None = None
    ephemeral_for: str | None = None
    metadata: JSON | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    streaming: bool = False
    stream_expired: bool = False
    chunks: list[JSON] = field(default_factory=list)
    tasks: dict[str, JSON] = field(default_factory=dict)
    plan_title: str | None = None
    task_display_mode: str | None = None
    stream_active_at: float = field(default=0.0, repr=False)
    # `assistant_app_thread` for the parent of a thread in the assistant container.
    subtype: str | None = None

    @property
    def is_reply(self) -> bool:
        """Whether the message sits inside a thread rather than in the channel."""
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass
class View:
    """A modal open for one person; `views.push` stacks them."""

    id: str
    user: str
    body: JSON
    hash: str
    root_view_id: str
    previous_view_id: str | None = None


@dataclass
class AssistantThread:
    """A conversation in the assistant container: its title, context and suggested prompts."""

    channel: str
    thread_ts: str
    user: str
    context_channel: str | None = None
    title: str = ""
    prompts: list[JSON] = field(default_factory=list)
    prompts_title: str = ""
    # When the prompts were set (a ts): a person's later message makes them stale.
    prompts_at: str | None = None

    def to_json(self) -> JSON:
        """What the page draws the container from."""
        return {
            "channel": self.channel,
            "thread_ts": self.thread_ts,
            "user": self.user,
            "context_channel": self.context_channel,
            "title": self.title,
            "prompts": self.prompts,
            "prompts_title": self.prompts_title,
            "prompts_at": self.prompts_at,
        }


def dm_id(user_id: str) -> str:
    """The id of the bot's DM with `user_id` (U0ALICE -> D0ALICE)."""
    return "D" + user_id[1:]


DEFAULT_USERS = (
    User("U0ALICE", "alice", "Alice", tz="Europe/Berlin", is_admin=True),
    User("U0BOB", "bob", "Bob", tz="America/New_York"),
)
DEFAULT_CHANNELS = (Channel("C0GENERAL", "general"), Channel("C0RANDOM", "random"))
DEFAULT_BOT = User("U0BATON", "baton", "Baton", is_bot=True, bot_id="B0BATON")


class Workspace:
    """People, channels and everything posted, with the lookups Slack's methods need."""

    def __init__(
        self,
        *,
        team_id: str = "T0BATON",
        team_name: str = "Baton Sandbox",
        app_id: str = "A0BATON",
        bot: User = DEFAULT_BOT,
        users: Iterable[User] = DEFAULT_USERS,
        channels: Iterable[Channel] = DEFAULT_CHANNELS,
        stream_ttl: float = 300.0,
        trigger_ttl: float = 3.0,
    ) -> None:
        self.team_id = team_id
        self.team_name = team_name
        self.app_id = app_id
        self.bot = bot
        self.stream_ttl = stream_ttl
        self.trigger_ttl = trigger_ttl
        self.base_url = "http://127.0.0.1/"
        self.users: dict[str, User] = {u.id: u for u in (bot, *users)}
        self.channels: dict[str, Channel] = {c.id: c for c in channels}
        for user in self.users.values():
            if not user.is_bot and dm_id(user.id) not in self.channels:
                dm = Channel(dm_id(user.id), name=user.name, is_im=True, user=user.id)
                self.channels[dm.id] = dm
        self.views: dict[str, View] = {}
        # App Home tabs as last published, per person.
        self.home_views: dict[str, JSON] = {}
        # User groups (S…) and their members, for approval rules.
        self.usergroups: dict[str, list[str]] = {}
        # Who is in a channel, where a test says so; otherwise everyone (and a DM: its person).
        self.channel_members: dict[str, list[str]] = {}
        self.view_stacks: dict[str, list[str]] = {}
        self.statuses: dict[tuple[str, str], str] = {}
        self.loading_messages: dict[tuple[str, str], list[str]] = {}
        self.assistant_threads: dict[tuple[str, str], AssistantThread] = {}
        # The address people open, which permalinks point at (the page, in the sandbox).
        self.web_url: str | None = None
        self._messages: dict[str, dict[str, Message]] = {c: {} for c in self.channels}
        self._triggers: dict[str, tuple[str, float]] = {}
        self._last_us = 0
        self._serial = 0
        self._pending: list[Change] = []

    # ids and time

    def next_ts(self) -> str:
        """A fresh message ts: the wall clock, nudged so every ts is unique and increasing."""
        self._last_us = max(int(time.time() * 1_000_000), self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def next_id(self, prefix: str) -> str:
        """A fresh id such as V000000001."""
        self._serial += 1
        return f"{prefix}{self._serial:09d}"

    def new_trigger_id(self, user: str) -> str:
        """A trigger id for `user`, usable for `views.open` within `trigger_ttl` seconds."""
        self._serial += 1
        trigger = f"{self._serial}.{self.team_id}.{self._last_us:x}"
        self._triggers[trigger] = (user, time.monotonic())
        return trigger

    def trigger_user(self, trigger_id: str) -> str:
        """Whose click made `trigger_id`; ids not issued here belong to the first person."""
        issued = self._triggers.get(trigger_id)
        if issued is None:
            return next(u.id for u in self.users.values() if not u.is_bot)
        user, at = issued
        if time.monotonic() - at > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        return user

    # lookups

    def channel(self, ref: Any) -> Channel:
        """The channel an id, a `#name`, or a user id (meaning the DM) refers to."""
        ref = str(ref or "")
        if ref in self.channels:
            return self.channels[ref]
        if ref in self.users and dm_id(ref) in self.channels:
            return self.channels[dm_id(ref)]
        for channel in self.channels.values():
            if not channel.is_im and channel.name == ref.lstrip("#"):
                return channel
        raise SlackError("channel_not_found")

    def members_of(self, channel: Channel) -> list[str]:
        """`conversations.members`: the people in a channel, the bot too when it is in."""
        if channel.id in self.channel_members:
            people = list(self.channel_members[channel.id])
        elif channel.is_im:
            people = [channel.user] if channel.user else []
        elif channel.members is not None:
            people = list(channel.members)
        else:
            people = [u.id for u in self.users.values() if not u.is_bot]
        bot = [self.bot.id] if channel.bot_is_member and self.bot.id not in people else []
        return people + bot

    def user(self, ref: Any) -> User:
        """The user with id `ref`."""
        if str(ref) not in self.users:
            raise SlackError("user_not_found")
        return self.users[str(ref)]

    def message(self, channel: str, ts: Any) -> Message:
        """The visible message at `ts` (ephemeral ones cannot be addressed)."""
        found = self._messages.get(channel, {}).get(str(ts))
        if found is None or found.ephemeral_for is not None:
            raise SlackError("message_not_found")
        return found

    def thread_root(self, channel: str, thread_ts: Any) -> str | None:
        """The parent ts a reply to `thread_ts` belongs under (a reply's ts means its parent)."""
        if not thread_ts:
            return None
        parent = self._messages.get(channel, {}).get(str(thread_ts))
        if parent is not None and parent.thread_ts:
            return parent.thread_ts
        return str(thread_ts)

    def all_messages(self, channel: str) -> list[Message]:
        """Every message in the channel, replies and ephemeral ones included, oldest first."""
        self.expire_streams()
        return self._in_order(channel)

    def _in_order(self, channel: str) -> list[Message]:
        return sorted(self._messages.get(channel, {}).values(), key=lambda m: float(m.ts))

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The visible replies under `thread_ts`, oldest first."""
        return [
            m
            for m in self._in_order(channel)
            if m.thread_ts == thread_ts and m.ts != thread_ts and m.ephemeral_for is None
        ]

    # the assistant container

    def set_status(
        self, channel: str, thread_ts: str, status: str, loading: list[str] | None = None
    ) -> None:
        """Show `status` under a thread ("is checking 2 URLs…"); an empty one clears it."""
        key = (channel, thread_ts)
        if not status and key not in self.statuses:
            return
        if status:
            self.statuses[key] = status
            self.loading_messages[key] = list(loading or [])
        else:
            self.statuses.pop(key, None)
            self.loading_messages.pop(key, None)
        self.emit_change(
            {
                "type": "status_set",
                "channel": channel,
                "thread_ts": thread_ts,
                "status": status,
                "loading_messages": list(loading or []) if status else [],
            }
        )

    def start_assistant_thread(self, user: str, context_channel: str | None) -> AssistantThread:
        """A person opens the assistant container: a new thread in their DM with the app."""
        person = self.user(user)
        dm = self.channel(dm_id(person.id))
        root = self.add_message(
            Message(
                channel=dm.id,
                ts=self.next_ts(),
                user=self.bot.id,
                bot_id=self.bot.bot_id,
                app_id=self.app_id,
                subtype="assistant_app_thread",
            )
        )
        thread = AssistantThread(dm.id, root.ts, person.id, context_channel=context_channel)
        self.assistant_threads[(dm.id, root.ts)] = thread
        self.thread_changed(thread)
        return thread

    def assistant_thread(self, channel: str, thread_ts: str) -> AssistantThread:
        """The assistant thread at `thread_ts`, or Slack's `invalid_thread_ts`."""
        found = self.assistant_threads.get((channel, self.thread_root(channel, thread_ts) or ""))
        if found is None:
            raise SlackError("invalid_thread_ts")
        return found

    def thread_changed(self, thread: AssistantThread) -> None:
        """Announce a change of an assistant thread's title, prompts or context."""
        self.emit_change(
            {
                "type": "assistant_thread_changed",
                "channel": thread.channel,
                "thread": thread.to_json(),
            }
        )

    # changes

    def add_message(self, message: Message) -> Message:
        """Store a new message and announce it."""
        self._messages.setdefault(message.channel, {})[message.ts] = message
        if message.thread_ts and message.user == self.bot.id and not message.ephemeral_for:
            # Slack clears the "is thinking…" status once the app replies in the thread.
            self.set_status(message.channel, message.thread_ts, "")
        self.emit("message_posted", message)
        return message

    def remove_message(self, message: Message) -> None:
        """Delete a message and announce it."""
        self._messages[message.channel].pop(message.ts, None)
        self.emit("message_deleted", message)

    def add_user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[JSON] | None = None,
    ) -> Message:
        """Post as a person (what a human typing in Slack would leave in the channel)."""
        where = self.channel(channel)
        return self.add_message(
            Message(
                channel=where.id,
                ts=self.next_ts(),
                user=self.user(user).id,
                text=text,
                blocks=list(blocks or []),
                thread_ts=self.thread_root(where.id, thread_ts),
            )
        )

    def expire_streams(self) -> None:
        """End streams idle for longer than `stream_ttl`, as Slack does on its side."""
        now = time.monotonic()
        for messages in self._messages.values():
            for m in messages.values():
                if m.streaming and now - m.stream_active_at > self.stream_ttl:
                    m.streaming = False
                    m.stream_expired = True
                    self.emit("stream_expired", m)

    def emit(self, kind: ChangeType, message: Message) -> None:
        """Queue a change about `message` for the subscribers."""
        self._pending.append(
            {
                "type": kind,
                "channel": message.channel,
                "ts": message.ts,
                "message": self.snapshot(message),
            }
        )

    def emit_change(self, change: Change) -> None:
        """Queue any other change for the subscribers."""
        self._pending.append(change)

    def take_changes(self) -> list[Change]:
        """The changes since the last call, oldest first."""
        changes, self._pending = self._pending, []
        return changes

    # rendering

    def render(self, m: Message) -> JSON:
        """The message as Slack's methods return it."""
        out: JSON = {
            "type": "message",
            "ts": m.ts,
            "user": m.user,
            "text": m.text,
            "team": self.team_id,
        }
        if m.subtype:
            out["subtype"] = m.subtype
        if m.subtype == "assistant_app_thread":
            thread = self.assistant_threads.get((m.channel, m.ts))
            out["assistant_app_thread"] = {"title": thread.title if thread else ""}
        if m.bot_id:
            out.update(bot_id=m.bot_id, app_id=m.app_id)
        if m.blocks:
            out["blocks"] = m.blocks
        if m.attachments:
            out["attachments"] = m.attachments
        if m.metadata:
            out["metadata"] = m.metadata
        if m.edited:
            out["edited"] = {"user": m.edited.user, "ts": m.edited.ts}
        if m.reactions:
            out["reactions"] = [
                {"name": name, "users": users, "count": len(users)}
                for name, users in m.reactions.items()
            ]
        if m.thread_ts and m.thread_ts != m.ts:
            out["thread_ts"] = m.thread_ts
            parent = self._messages.get(m.channel, {}).get(m.thread_ts)
            if parent is not None:
                out["parent_user_id"] = parent.user
        else:
            replies = self.replies(m.channel, m.ts)
            if replies:
                out.update(
                    thread_ts=m.ts,
                    reply_count=len(replies),
                    reply_users=sorted({r.user for r in replies}),
                    reply_users_count=len({r.user for r in replies}),
                    latest_reply=replies[-1].ts,
                )
        return out

    def snapshot(self, m: Message) -> JSON:
        """The message with what only the sandbox sees: stream state, tasks, who an ephemeral is for."""
        out = self.render(m)
        out.update(
            channel=m.channel,
            streaming=m.streaming,
            stream_expired=m.stream_expired,
            ephemeral_for=m.ephemeral_for,
            plan_title=m.plan_title,
            task_display_mode=m.task_display_mode,
            tasks=list(m.tasks.values()),
        )
        # A copy: the message keeps changing (streams grow in place), a snapshot must not.
        return copy.deepcopy(out)

    def render_view(self, view: View) -> JSON:
        """The view as Slack's `views.*` methods return it."""
        body = view.body
        return {
            "id": view.id,
            "team_id": self.team_id,
            "type": body.get("type", "modal"),
            "blocks": body.get("blocks", []),
            "private_metadata": body.get("private_metadata", ""),
            "callback_id": body.get("callback_id", ""),
            "state": {"values": {}},
            "hash": view.hash,
            "title": body.get("title"),
            "clear_on_close": bool(body.get("clear_on_close", False)),
            "notify_on_close": bool(body.get("notify_on_close", False)),
            "close": body.get("close"),
            "submit": body.get("submit"),
            "previous_view_id": view.previous_view_id,
            "root_view_id": view.root_view_id,
            "app_id": self.app_id,
            "external_id": body.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot.bot_id,
        }

    def state(self) -> JSON:
        """Everything a live view needs to draw the workspace from scratch."""
        return {
            "team": {"id": self.team_id, "name": self.team_name},
            "bot": self.bot.to_slack(self.team_id),
            "users": [u.to_slack(self.team_id) for u in self.users.values() if not u.is_bot],
            "channels": [c.to_slack() | {"name": c.name} for c in self.channels.values()],
            "messages": {
                c: [self.snapshot(m) for m in self.all_messages(c)] for c in self.channels
            },
            "views": {
                user: [self.render_view(self.views[v]) for v in stack]
                for user, stack in self.view_stacks.items()
            },
            "statuses": [
                {
                    "channel": c,
                    "thread_ts": ts,
                    "status": status,
                    "loading_messages": self.loading_messages.get((c, ts), []),
                }
                for (c, ts), status in self.statuses.items()
            ],
            "assistant_threads": [t.to_json() for t in self.assistant_threads.values()],
        }

    def open_views(self, user: str) -> list[View]:
        """The modals open for `user`, bottom of the stack first."""
        return [self.views[v] for v in self.view_stacks.get(user, [])]

    def close_views(self, user: str) -> None:
        """Close every modal `user` has open (they submitted or cancelled)."""
        for view_id in self.view_stacks.pop(user, []):
            self.views.pop(view_id, None)
        self.emit_change({"type": "views_closed", "user": user})

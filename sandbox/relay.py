"""What people do on the sandbox page, delivered to Baton exactly as Slack delivers it.

A message is stored in the workspace first (Slack keeps it whether or not an app hears of
it), then Baton gets the signed event Slack would send: `app_mention` when a channel message
names it, `message` for a DM or a reply in a channel thread. Slash commands, clicks and modal
submissions go out signed to the same URL, and Slack's side of each answer is applied to the workspace: a command's
reply shows as an ephemeral message, a modal closes or shows its field errors.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp

from sandbox import methods, slack_payloads
from sandbox.compose import SlashCommand, mentions, rich_text, slack_text, slash_command
from sandbox.perspective import sees_channel
from sandbox.signing import (
    FORM,
    JSON_TYPE,
    block_actions_body,
    deliver,
    event_callback_body,
    view_submission_body,
)
from sandbox.web_api import SlackStandIn
from sandbox.workspace import JSON, AssistantThread, Message, SlackError, View

log = logging.getLogger(__name__)

SLACKBOT = "USLACKBOT"
COMMANDS = ("/baton",)
# Slack waits 3 s for an answer; the sandbox is more patient so a busy laptop still works.
DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass(frozen=True)
class Outcome:
    """How an action on the page went, for the page to show."""

    ok: bool = True
    detail: str = ""
    ts: str | None = None
    delivered: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> JSON:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "ts": self.ts,
            "delivered": self.delivered,
            "errors": self.errors,
        }


class Relay:
    """Slack's half of the conversation with Baton, for the people on the page."""

    def __init__(self, slack: SlackStandIn, *, events_url: str, signing_secret: str) -> None:
        self.slack = slack
        self.ws = slack.workspace
        self.events_url = events_url
        self._secret = signing_secret
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # messages and commands

    async def say(
        self, user: str, channel: str, typed: str, *, thread_ts: str | None = None
    ) -> Outcome:
        """A person sends what they typed: a slash command, or a message (maybe to Baton)."""
        if not typed.strip():
            return Outcome(ok=False, detail="Type a message first.")
        self._may_use(user, channel)
        command = slash_command(typed)
        if command is not None:
            return await self.command(user, channel, command)
        text = slack_text(typed, self.ws)
        message = await self.slack.post_as_user(
            channel,
            user,
            text,
            thread_ts=thread_ts,
            blocks=[rich_text(text, block_id=secrets.token_urlsafe(3))],
        )
        where = self.ws.channel(message.channel)
        if where.is_im:
            event = slack_payloads.message_event(self.ws, message, kind="message")
        elif mentions(message.text, self.ws.bot.id):
            if not where.bot_is_member:
                await self._slackbot(
                    user,
                    where.id,
                    f"You mentioned <@{self.ws.bot.id}>, but they're not in this channel.",
                    thread_ts=message.thread_ts,
                )
                return Outcome(ts=message.ts)
            event = slack_payloads.message_event(self.ws, message, kind="app_mention")
        elif message.is_reply and where.bot_is_member:
            # message.channels / message.groups: Baton takes a reply in its own threads as a
            # follow-up and ignores the rest.
            event = slack_payloads.message_event(self.ws, message, kind="message")
        else:
            return Outcome(ts=message.ts)
        outcome = await self._event(event)
        return Outcome(ok=outcome.ok, detail=outcome.detail, ts=message.ts, delivered=event["type"])

    async def command(self, user: str, channel: str, command: SlashCommand) -> Outcome:
        """A slash command: signed form fields to Baton; its immediate reply shown to the person."""
        where = self.ws.channel(channel)
        if command.command not in COMMANDS:
            await self._slackbot(
                user,
                where.id,
                f"`{command.command}` is not a valid command. In Slack, all messages that start "
                'with the "/" character are interpreted as commands.',
            )
            return Outcome()
        person = self.ws.user(user)
        fields = {
            "token": slack_payloads.TOKEN,
            "team_id": self.ws.team_id,
            "team_domain": slack_payloads.team(self.ws)["domain"],
            "channel_id": where.id,
            "channel_name": "directmessage" if where.is_im else where.name,
            "user_id": person.id,
            "user_name": person.name,
            "command": command.command,
            "text": command.text,
            "api_app_id": self.ws.app_id,
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(where.id, person.id),
            "trigger_id": self.slack.trigger_id(person.id),
        }
        status, answer = await self._post(urlencode(fields).encode(), FORM)
        if status != 200:
            await self._slackbot(
                user, where.id, f'{command.command} failed with the error "dispatch_failed"'
            )
            return Outcome(ok=False, detail=_failed(status, answer), delivered="slash_command")
        reply = _reply(answer)
        if reply:
            await self.slack.respond(where.id, person.id, reply, via="command_ack")
        return Outcome(delivered="slash_command")

    async def open_home(self, user: str) -> Outcome:
        """The person opened Baton's Home tab: `app_home_opened`."""
        return await self._event(slack_payloads.home_opened_event(self.ws, self.ws.user(user).id))

    # the assistant container

    async def open_assistant(self, user: str, context_channel: str | None) -> Outcome:
        """A person opens the assistant container: a new thread and `assistant_thread_started`."""
        context = self._context(user, context_channel)
        thread = self.ws.start_assistant_thread(user, context)
        return await self._thread_event(thread, "assistant_thread_started")

    async def _thread_event(
        self,
        thread: AssistantThread,
        kind: Literal["assistant_thread_started", "assistant_thread_context_changed"],
    ) -> Outcome:
        """Show the thread as it is now, then send Baton the assistant event `kind` about it."""
        await self.slack.publish()
        event = slack_payloads.assistant_thread_event(self.ws, thread, kind=kind)
        outcome = await self._event(event)
        return Outcome(
            ok=outcome.ok, detail=outcome.detail, ts=thread.thread_ts, delivered=event["type"]
        )

    async def change_context(self, user: str, thread_ts: str, context_channel: str) -> Outcome:
        """The person moved to another channel while the container is open."""
        thread = self.ws.assistant_thread(self.ws.channel(user).id, thread_ts)
        if thread.user != user:
            raise SlackError("channel_not_found")
        context = self._context(user, context_channel)
        if context is None or context == thread.context_channel:
            return Outcome(ts=thread.thread_ts)
        thread.context_channel = context
        self.ws.thread_changed(thread)
        return await self._thread_event(thread, "assistant_thread_context_changed")

    def _context(self, user: str, channel: str | None) -> str | None:
        """The channel a person is looking at, if they may see it (their DM counts)."""
        if channel is None:
            return None
        self._may_use(user, channel)
        return self.ws.channel(channel).id

    # clicks and modals

    async def click(
        self,
        user: str,
        channel: str,
        ts: str,
        *,
        action_id: str,
        block_index: int | None,
        feedback: slack_payloads.Feedback | None = None,
    ) -> Outcome:
        """A button in a message: `block_actions`, built from the message as stored.

        `feedback` says which of a `feedback_buttons` pair was pressed.
        """
        self._may_use(user, channel)
        message = self._message(channel, ts)
        if message.ephemeral_for not in (None, user):
            return Outcome(ok=False, detail="That message is not visible to you.")
        payload = slack_payloads.message_click(
            self.ws,
            message,
            user_id=user,
            action_id=action_id,
            block_index=block_index,
            trigger_id=self.slack.trigger_id(user),
            response_url=self.slack.response_url(message.channel, user),
            feedback=feedback,
        )
        status, answer = await self._post(block_actions_body(payload), FORM)
        return _acked(status, answer, "block_actions")

    async def click_in_view(
        self,
        user: str,
        view_id: str,
        *,
        action_id: str,
        block_index: int | None,
        values: dict[str, Any],
    ) -> Outcome:
        """A button inside an open modal: `block_actions` with the view."""
        view = self._view(user, view_id)
        payload = slack_payloads.view_click(
            self.ws,
            view,
            user_id=user,
            action_id=action_id,
            block_index=block_index,
            values=values,
            trigger_id=self.slack.trigger_id(user),
        )
        status, answer = await self._post(block_actions_body(payload), FORM)
        return _acked(status, answer, "block_actions")

    async def click_in_home(
        self, user: str, *, action_id: str, block_index: int | None = None
    ) -> Outcome:
        """A button on the person's App Home tab: `block_actions` with the home view."""
        payload = slack_payloads.home_click(
            self.ws,
            user_id=self.ws.user(user).id,
            action_id=action_id,
            block_index=block_index,
            trigger_id=self.slack.trigger_id(user),
        )
        status, answer = await self._post(block_actions_body(payload), FORM)
        return _acked(status, answer, "block_actions")

    async def submit(self, user: str, view_id: str, values: dict[str, Any]) -> Outcome:
        """The modal's submit button: `view_submission`, then what Baton's answer asks for."""
        view = self._view(user, view_id)
        payload = slack_payloads.view_submission(
            self.ws, view, user_id=user, values=values, trigger_id=self.slack.trigger_id(user)
        )
        status, answer = await self._post(view_submission_body(payload), FORM)
        if status != 200:
            return Outcome(ok=False, detail=_failed(status, answer), delivered="view_submission")
        reply = _reply(answer) or {}
        action = reply.get("response_action")
        if action == "errors":
            errors = {str(k): str(v) for k, v in dict(reply.get("errors") or {}).items()}
            return Outcome(ok=False, errors=errors, delivered="view_submission")
        try:
            if action == "update":
                methods.call(self.ws, "views.update", {"view_id": view.id, "view": reply["view"]})
            elif action == "push":
                trigger = self.ws.new_trigger_id(user)
                methods.call(self.ws, "views.push", {"trigger_id": trigger, "view": reply["view"]})
            else:
                # An empty answer (or `clear`) closes the modal.
                self.ws.close_views(user)
        except SlackError as e:
            return Outcome(ok=False, detail=f"Baton's answer was refused: {e.error}")
        finally:
            await self.slack.publish()
        return Outcome(delivered="view_submission")

    async def close(self, user: str, view_id: str, values: dict[str, Any]) -> Outcome:
        """The modal's close button; Baton hears of it only if the view asked (`notify_on_close`)."""
        view = self._view(user, view_id)
        self.ws.close_views(user)
        await self.slack.publish()
        if not view.body.get("notify_on_close"):
            return Outcome()
        payload = slack_payloads.view_closed(self.ws, view, user_id=user, values=values)
        status, answer = await self._post(view_submission_body(payload), FORM)
        return _acked(status, answer, "view_closed")

    # plumbing

    def _may_use(self, user: str, channel: str) -> None:
        """Nobody can post in, or click in, someone else's DM with Baton."""
        if not sees_channel(self.ws, self.ws.channel(channel).id, self.ws.user(user).id):
            raise SlackError("channel_not_found")

    def _message(self, channel: str, ts: str) -> Message:
        channel_id = self.ws.channel(channel).id
        for message in self.ws.all_messages(channel_id):
            if message.ts == ts:
                return message
        raise SlackError("message_not_found")

    def _view(self, user: str, view_id: str) -> View:
        view = next((v for v in self.ws.open_views(user) if v.id == view_id), None)
        if view is None:
            raise SlackError("view_not_found")
        return view

    async def _slackbot(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None
    ) -> None:
        """A note from Slack itself, shown only to `user`."""
        self.ws.add_message(
            Message(
                channel=channel,
                ts=self.ws.next_ts(),
                user=SLACKBOT,
                text=text,
                thread_ts=thread_ts,
                ephemeral_for=user,
            )
        )
        await self.slack.publish()

    async def _event(self, event: JSON) -> Outcome:
        body = event_callback_body(
            event,
            team_id=self.ws.team_id,
            api_app_id=self.ws.app_id,
            bot_user_id=self.ws.bot.id,
        )
        status, answer = await self._post(body, JSON_TYPE)
        return _acked(status, answer, str(event["type"]))

    async def _post(self, body: bytes, content_type: str) -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=DELIVERY_TIMEOUT)
        try:
            return await deliver(
                self._session, self.events_url, self._secret, body=body, content_type=content_type
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("could not reach Baton at %s: %s", self.events_url, e)
            return 0, f"Baton is not reachable at {self.events_url} ({type(e).__name__})"


def _reply(answer: str) -> JSON | None:
    """The JSON (or plain text) an app answered a command or submission with, if any."""
    if not answer.strip():
        return None
    try:
        data = json.loads(answer)
    except ValueError:
        return {"text": answer}
    return data if isinstance(data, dict) else {"text": answer}


def _failed(status: int, answer: str) -> str:
    if status == 0:
        return answer
    return f"Baton answered HTTP {status}" + (f": {answer[:200]}" if answer.strip() else "")


def _acked(status: int, answer: str, delivered: str) -> Outcome:
    if status == 200:
        return Outcome(delivered=delivered)
    return Outcome(ok=False, detail=_failed(status, answer), delivered=delivered)

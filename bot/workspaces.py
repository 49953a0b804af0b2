"""Many workspaces (OAuth mode): installations on Baton's own tables, a token per team.

Bolt runs the install flow (`/slack/install` → Slack → `/slack/oauth_redirect`) through the
stores below, which keep installations and states in Baton's database over its async engine:
tables the migrations own, one row per workspace. (slack_sdk's synchronous SQLAlchemy store
holds the event loop for every query; its async one makes tables of its own outside the
migrations — `bench/installation_stores.py` measures all three.) Every request is authorised from the
stored installation without a Web API call, so the ack never waits on Slack. Anything that calls Slack outside a request (the outbox, schedules,
the sweep) asks `Workspaces.client(team_id)` for a client that carries that team's token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import Bot
from slack_sdk.oauth.installation_store import Installation as SlackInstallation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.errors import BotError
from storage import installations
from storage.db import Database
from storage.models import Installation

log = logging.getLogger(__name__)

# Slack's answers that mean the token Baton holds for a team is no good any more.
DEAD_TOKEN = frozenset({"invalid_auth", "token_revoked", "account_inactive", "not_installed"})


class NotInstalled(SlackApiError, BotError):
    """Baton holds no token for this workspace (never installed, or uninstalled)."""

    def __init__(self, message: str, response: AsyncSlackResponse) -> None:
        super().__init__(message, response)  # type: ignore[no-untyped-call]


class InstallationStore(AsyncInstallationStore):
    """slack_sdk's installation store interface over `storage.installations`."""

    def __init__(self, db: Database, *, on_change: Callable[[str], None]) -> None:
        self.db = db
        self.on_change = on_change

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: SlackInstallation) -> None:
        if not installation.team_id or not installation.bot_token:
            # An org-wide (Enterprise Grid) install has no workspace: Baton serves workspaces.
            # Bolt turns this error into its failure page.
            raise BoltError("Baton installs into a workspace, not a whole organisation")
        await installations.save(
            self.db,
            Installation(
                team_id=installation.team_id,
                enterprise_id=installation.enterprise_id,
                team_name=installation.team_name,
                app_id=installation.app_id,
                bot_token=installation.bot_token,
                bot_id=installation.bot_id,
                bot_user_id=installation.bot_user_id,
                bot_scopes=",".join(installation.bot_scopes or []),
                installed_by=installation.user_id,
            ),
        )
        self.on_change(installation.team_id)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        found = await self.async_find_installation(enterprise_id=enterprise_id, team_id=team_id)
        return found.to_bot() if found is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> SlackInstallation | None:
        row = await installations.find(self.db, team_id) if team_id else None
        if row is None:
            return None
        return SlackInstallation(
            app_id=row.app_id,
            enterprise_id=row.enterprise_id,
            team_id=row.team_id,
            team_name=row.team_name,
            bot_token=row.bot_token,
            bot_id=row.bot_id,
            bot_user_id=row.bot_user_id,
            bot_scopes=row.bot_scopes or "",
            user_id=row.installed_by or "",
            installed_at=row.installed_at,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if team_id:
            await installations.remove(self.db, team_id)
            self.on_change(team_id)


class StateStore(AsyncOAuthStateStore):
    """One-use install states, kept in the database so any replica can finish an install."""

    def __init__(self, db: Database, *, lifetime: timedelta = timedelta(minutes=10)) -> None:
        self.db = db
        self.lifetime = lifetime

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await installations.issue_state(self.db, lifetime=self.lifetime)

    async def async_consume(self, state: str) -> bool:
        return await installations.consume_state(self.db, state)


class StoredAuthorize(AsyncAuthorize):
    """Who Baton is in the request's workspace, from its installation: one query, no Web API
    call (Bolt's own authorize asks `auth.test` on every request, before the ack)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        row = await installations.find(self.db, team_id) if team_id else None
        if row is None:
            log.warning("a request from workspace %s, where Baton is not installed", team_id)
            return None
        return AuthorizeResult(
            enterprise_id=row.enterprise_id,
            team_id=row.team_id,
            team=row.team_name,
            bot_user_id=row.bot_user_id,
            bot_id=row.bot_id,
            bot_token=row.bot_token,
            bot_scopes=row.bot_scopes,
            user_id=user_id,
        )


class OfWorkspace(Protocol):
    team_id: str | None


Row = TypeVar("Row", bound=OfWorkspace)


def seen_from(row: Row | None, team_id: str | None) -> Row | None:
    """The run or schedule, if a person in `team_id` may reach it by its id: each workspace
    reaches its own."""
    if row is None or (row.team_id and team_id and row.team_id != team_id):
        return None
    return row


class TeamClient(AsyncWebClient):
    """A Web API client for one workspace: its token is read from the installation when first
    needed, and read again after Slack refuses it."""

    def __init__(self, db: Database, team_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db
        self.team_id = team_id

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        if self.token is None:
            row = await installations.find(self.db, self.team_id)
            if row is None:
                raise NotInstalled(
                    f"Baton is not installed in workspace {self.team_id}",
                    AsyncSlackResponse(
                        client=self,
                        http_verb="POST",
                        api_url=f"{self.base_url}{api_method}",
                        req_args={},
                        data={"ok": False, "error": "not_installed"},
                        headers={},
                        status_code=200,
                    ),
                )
            self.token = row.bot_token
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as e:
            if e.response.get("error") in DEAD_TOKEN:
                self.token = None
            raise


class Workspaces:
    """One client per workspace Baton is installed in, made on first use."""

    def __init__(self, db: Database, template: AsyncWebClient) -> None:
        self.db = db
        self.template = template
        self._clients: dict[str, TeamClient] = {}

    def client(self, team_id: str | None) -> AsyncWebClient:
        """The client for `team_id`; a run without a team (none in OAuth mode) gets one that
        says Baton is not installed."""
        team = team_id or ""
        found = self._clients.get(team)
        if found is None:
            found = TeamClient(
                self.db,
                team,
                base_url=self.template.base_url,
                timeout=self.template.timeout,
                session=self.template.session,
                retry_handlers=self.template.retry_handlers,
            )
            self._clients[team] = found
        return found

    def forget(self, team_id: str) -> None:
        """The team's installation changed: its token is read again on the next call."""
        found = self._clients.get(team_id)
        if found is not None:
            found.token = None

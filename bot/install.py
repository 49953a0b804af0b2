"""The install flow in OAuth mode: `GET /slack/install` sends the browser to Slack with a
one-use state (and a cookie binding it to that browser); `GET /slack/oauth_redirect` checks
both, exchanges the code with `oauth.v2.access` and keeps the workspace's installation."""

from __future__ import annotations

from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

from bot.config import Settings, secret
from bot.manifest import REDIRECT_PATH, bot_scopes
from bot.workspaces import InstallationStore, StateStore, Workspaces
from storage.db import Database

INSTALL_PATH = "/slack/install"


def oauth_settings(settings: Settings, db: Database, workspaces: Workspaces) -> AsyncOAuthSettings:
    """Bolt's OAuth flow over Baton's tables, asking for the scopes the manifest lists."""
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=secret(settings.slack_client_secret),
        scopes=bot_scopes(),
        user_scopes=[],
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        # Straight to Slack's consent page: Baton has nothing to say before it.
        install_page_rendering_enabled=False,
        installation_store=InstallationStore(db, on_change=workspaces.forget),
        installation_store_bot_only=True,
        state_store=StateStore(db),
    )
